"""Scale benchmark: the whole `imgtfx run` on contest-shaped trees at two sizes, step by step.

  python bench/bench.py --scale [--scale-sizes 22026,88102] [--min-accuracy 0.1]
  python bench/scale.py [same options] [--copies none,bursts,repeats] [--shape long-tail]
  python bench/scale.py --tinted 1049   # the adversarial tree for copies (about 6 minutes)

For each size it writes (once) a tree shaped like the Dacon landmark contest with its own
generator (bench/contest_data.py: 960x540 JPEGs of ~110 KB, 1,049 landmarks of 66-101 photos,
ids `<landmark name>_<NNN>` mapped to int landmark ids by train.csv; `--shape long-tail` for
the stress shape), then runs `imgtfx run` in a new process as a user would
(300 steps at 64 px by default) and reads back, per step, the wall seconds and the peak RSS the
run recorded (pipeline/steps.py resets the high-water mark at each step), plus the whole
command's wall time, the peak RSS of its process tree and the bytes it read from disk.

It prints one table (per step: both sizes and their ratio), then, for each copy density of
`--copies` beyond "none", the larger tree at that density beside the one without copies;
checks the goals of the contest run, and writes bench/results/scale-<date>.json. Before each
run the tree is read once, so the photos come from the page cache as in any run after the
first (the disk here reads ~50 MB/s: 9 GB of photos alone would take three minutes cold).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.contest_data import COPIES, SHAPES  # noqa: E402
from bench.provenance import provenance  # noqa: E402
from imgtfx.pipeline.run_summary import summary_path  # noqa: E402
from imgtfx.trainer.options import INDEX_FILE  # noqa: E402

COPY_COUNTS = ("duplicate_groups", "duplicate_images", "exact_groups", "cross_label_groups")
GOAL_SECONDS = 300
GOAL_COPIES_RSS_RATIO = 1.5  # a density's ImageExampleGen peak over the copy-free tree's
GOAL_COPIES_STATS_RATIO = 3.0  # ImageExampleGen's time over StatisticsGen's, at any density
GOAL_PEAK_GIB = 3.0
GOAL_RSS_RATIO = 1.25
GOAL_REPORT_MB = 5.0


def warm(images: str) -> float:
    """Reads every file of the tree once (page cache); returns GB read."""
    total = 0
    for folder, _, names in os.walk(images):
        for name in names:
            with open(os.path.join(folder, name), "rb") as f:
                total += len(f.read())
    return total / 1e9


def run_pipeline(tree: dict, root: str, args) -> dict:
    """`imgtfx run` in a new process: its summary, wall time, peak RSS and disk reads."""
    import psutil

    shutil.rmtree(root, ignore_errors=True)
    argv = [
        os.path.join(os.path.dirname(sys.executable), "imgtfx"), "run",
        "--images", tree["images"], "--root", root,
        "--train-steps", str(args.train_steps), "--image-size", str(args.image_size),
        "--min-accuracy", str(args.min_accuracy),
    ]  # fmt: skip
    if tree.get("labels_csv"):
        argv += ["--labels", tree["labels_csv"]]
    start = time.monotonic()
    log = open(root + ".log", "w")
    child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, text=True)
    peak, disk = [0], [0]

    def sample():
        process = psutil.Process(child.pid)
        while child.poll() is None:
            try:
                members = [process, *process.children(recursive=True)]
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in members))
                disk[0] = max(disk[0], process.io_counters().read_bytes)
            except psutil.Error:
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    child.wait()
    sampler.join()
    seconds = time.monotonic() - start
    log.close()
    if child.returncode != 0:
        raise RuntimeError(f"imgtfx run failed; see {root}.log")
    with open(summary_path(root), encoding="utf-8") as f:
        summary = json.load(f)
    report = os.path.join(root, "report", "index.html")
    with open(os.path.join(summary["examples_uri"], "report.json"), encoding="utf-8") as f:
        converted = json.load(f)
    copies = {k: converted.get(k) for k in COPY_COUNTS}
    # The examples are as large as the tree: the densities' runs at 88,102 photos would keep
    # another 30 GB.
    shutil.rmtree(summary["examples_uri"], ignore_errors=True)
    model_bytes = sum(
        os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(summary["model"] or "")
        for name in names
    )
    index = None  # what the Trainer's neighbour index holds and cost (trainer/serving.py)
    index_file = os.path.join(summary["model"] or "", INDEX_FILE)
    if os.path.exists(index_file):
        with open(index_file, encoding="utf-8") as f:
            index = json.load(f)
    return {
        "copies": copies,
        "model_mb": round(model_bytes / 1e6, 1),
        "neighbour_index": index,
        "converted": converted,
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(peak[0] / 2**20),
        "disk_read_gb": round(disk[0] / 1e9, 2),
        "report_mb": round(os.path.getsize(report) / 1e6, 2),
        "summary": summary,
    }


def write_results(results: dict, folder: str, name: str) -> str:
    """Writes a benchmark's results as folder/name (JSON) and says where."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False, indent=2)
    print(f"\nwritten: {path}")
    return path


def table(rows: list[dict], title: str) -> str:
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    lines = [title, "  " + "  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    for r in rows:
        lines.append(
            "  " + "  ".join(str(r[c]).rjust(w) for c, w in zip(columns, widths, strict=True))
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from bench.contest_data import write_contest_tree

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale-sizes", default="22026,88102", help="two tree sizes")
    parser.add_argument("--shape", default="contest", choices=SHAPES)
    parser.add_argument(
        "--copies",
        default="none",
        help=f"copy densities to run the larger tree at, comma-separated: {', '.join(COPIES)}",
    )
    parser.add_argument("--classes", type=int, default=1049)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument(
        "--min-accuracy",
        type=float,
        default=0.005,
        help="the bound a model must reach to be pushed (300 steps from scratch reach 0.012 on "
        "the real shape's 1,049 balanced landmarks, 12x chance)",
    )
    parser.add_argument(
        "--classes-sweep",
        help="instead: class counts to run (e.g. 1049,10000,40000), 2 small photos a class",
    )
    parser.add_argument("--sweep-train-steps", type=int, default=50)
    parser.add_argument("--work", default=os.path.join(REPO, "bench", "work"))
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    parser.add_argument(
        "--tinted",
        type=int,
        help="instead: a tree of this many classes, each a tint of one of 3 shots, its photos "
        "crops of the tint (bench/copies_data.py), 8 photos a class, through the whole run",
    )
    args, _ = parser.parse_known_args(argv)
    if args.classes_sweep or args.tinted:
        from bench import stress

        return stress.class_sweep(args) if args.classes_sweep else stress.tinted_run(args)
    sizes = sorted({int(n) for n in args.scale_sizes.split(",")})
    small, large = sizes[0], sizes[-1]  # one size: no size table, only its run and densities
    densities = [d for d in args.copies.split(",") if d != "none"]
    if set(densities) - set(COPIES):
        parser.error(f"--copies: each of {', '.join(COPIES)}")

    runs = {}
    for n in sizes:
        started = time.monotonic()
        tree = write_contest_tree(
            os.path.join(args.work, f"contest-{n}-{args.shape}"), n, args.classes, shape=args.shape
        )
        print(f"tree of {n:,} photos ready in {time.monotonic() - started:.0f} s", flush=True)
        print(f"  read once into the page cache: {warm(tree['images']):.1f} GB", flush=True)
        runs[n] = run_pipeline(tree, os.path.join(args.work, f"run-{n}"), args)
        run = runs[n]
        print(f"  imgtfx run: {run['seconds']} s, peak {run['peak_rss_mib']} MiB", flush=True)

    steps = list(runs[large]["summary"]["step_times"])
    rows = []
    for step in steps:
        a = runs[small]["summary"]["step_times"].get(step, {})
        b = runs[large]["summary"]["step_times"][step]
        rows.append(
            {
                "step": step,
                f"s@{small}": a.get("seconds", "-"),
                f"s@{large}": b["seconds"],
                "time ratio": _ratio(b.get("seconds"), a.get("seconds")),
                f"MiB@{small}": a.get("peak_rss_mib", "-"),
                f"MiB@{large}": b.get("peak_rss_mib", "-"),
                "RSS ratio": _ratio(b.get("peak_rss_mib"), a.get("peak_rss_mib")),
                f"rate@{large}": _rate(b),
            }
        )
    rows.append(
        {
            "step": "whole run",
            f"s@{small}": runs[small]["seconds"],
            f"s@{large}": runs[large]["seconds"],
            "time ratio": _ratio(runs[large]["seconds"], runs[small]["seconds"]),
            f"MiB@{small}": runs[small]["peak_rss_mib"],
            f"MiB@{large}": runs[large]["peak_rss_mib"],
            "RSS ratio": _ratio(runs[large]["peak_rss_mib"], runs[small]["peak_rss_mib"]),
            f"rate@{large}": "",
        }
    )
    print(table(rows, f"\nimgtfx run, contest-shaped trees ({args.classes:,} classes), 2 cores:"))

    big = runs[large]["summary"]
    ratios = [r["RSS ratio"] for r in rows[:-1] if isinstance(r["RSS ratio"], float)]
    goals = {
        f"whole run at {large:,} <= {GOAL_SECONDS} s": runs[large]["seconds"] <= GOAL_SECONDS,
        f"peak RSS at {large:,} <= {GOAL_PEAK_GIB} GiB": runs[large]["peak_rss_mib"]
        <= GOAL_PEAK_GIB * 1024,
        f"every step's peak RSS within {GOAL_RSS_RATIO}x from {small:,} to {large:,}": bool(ratios)
        and max(ratios) <= GOAL_RSS_RATIO,
        "every photo an example": sum(big["examples"].values()) == large and big["rejected"] == 0,
        f"blessed and pushed at --min-accuracy {args.min_accuracy}": bool(
            big["blessed"] and big["pushed_model"]
        ),
        f"report <= {GOAL_REPORT_MB} MB": runs[large]["report_mb"] <= GOAL_REPORT_MB,
    }
    if small == large:  # one size: nothing to compare it with
        goals = {k: v for k, v in goals.items() if not k.startswith("every step's")}
    for n in sizes:  # the contest tree has no copies planted: every group is false
        copies = runs[n]["copies"]
        print(
            f"copies found at {n:,}: {copies['duplicate_groups']:,} groups of "
            f"{copies['duplicate_images']:,} photos ({copies['exact_groups']:,} exact, "
            f"{copies['cross_label_groups']:,} under two labels)"
        )
    print(
        f"\naccuracy at {large:,}: {big['accuracy']:.3f}, top-{big['top_k']} "
        f"{big['top_k_accuracy']:.3f}; report {runs[large]['report_mb']} MB; disk read "
        f"{runs[large]['disk_read_gb']} GB"
    )
    print(
        f"GAP at {large:,}: {big['gap']}; by method {big.get('gap_by_method')}; exported model "
        f"{runs[large]['model_mb']} MB; neighbour index {runs[large]['neighbour_index']}"
    )
    results = {
        **provenance(),
        "shape": args.shape,
        "sizes": [small, large],
        "classes": args.classes,
        "train_steps": args.train_steps,
        "image_size": args.image_size,
        "min_accuracy": args.min_accuracy,
        "steps": rows,
        "runs": {str(n): recorded(r) for n, r in runs.items()},
        "goals": goals,
    }
    if densities:
        results["densities"] = density_runs(args, large, runs[large], densities, goals)
    print("\nGoals:")
    for key, ok in goals.items():
        print(f"  {'met' if ok else 'NOT met':8} {key}")
    write_results(results, args.out, f"scale-{datetime.date.today().isoformat()}.json")
    return 0 if all(goals.values()) else 1


def density_runs(args, size: int, plain: dict, densities: list[str], goals: dict) -> dict:
    """The tree of `size` photos at each copy density beside the copy-free run `plain`: per step
    seconds and peak RSS, the goals of a tree full of copies added to `goals`."""
    from bench.contest_data import write_contest_tree

    found = {}
    for density in densities:
        tree = write_contest_tree(
            os.path.join(args.work, f"contest-{size}-{args.shape}-{density}"),
            size,
            args.classes,
            shape=args.shape,
            copies=density,
        )
        warm(tree["images"])
        run = run_pipeline(tree, os.path.join(args.work, f"run-{size}-{density}"), args)
        found[density] = run
        steps = run["summary"]["step_times"]
        base = plain["summary"]["step_times"]
        rows = [
            {
                "step": step,
                "s none": base.get(step, {}).get("seconds", "-"),
                f"s {density}": steps[step]["seconds"],
                "MiB none": base.get(step, {}).get("peak_rss_mib", "-"),
                f"MiB {density}": steps[step].get("peak_rss_mib", "-"),
                "RSS ratio": _ratio(
                    steps[step].get("peak_rss_mib"), base.get(step, {}).get("peak_rss_mib")
                ),
            }
            for step in steps
        ]
        rows.append(
            {
                "step": "whole run",
                "s none": plain["seconds"],
                f"s {density}": run["seconds"],
                "MiB none": plain["peak_rss_mib"],
                f"MiB {density}": run["peak_rss_mib"],
                "RSS ratio": _ratio(run["peak_rss_mib"], plain["peak_rss_mib"]),
            }
        )
        print(table(rows, f"\nthe {size:,}-photo tree with copies={density} beside none:"))
        copies = run["copies"]
        print(
            f"copies found: {copies['duplicate_groups']:,} groups of "
            f"{copies['duplicate_images']:,} photos ({copies['exact_groups']:,} exact)"
        )
        example_gen = steps["ImageExampleGen"]
        goals[f"copies={density}: ImageExampleGen <= {GOAL_COPIES_STATS_RATIO}x StatisticsGen"] = (
            example_gen["seconds"] <= GOAL_COPIES_STATS_RATIO * steps["StatisticsGen"]["seconds"]
        )
        goals[f"copies={density}: ImageExampleGen peak <= {GOAL_COPIES_RSS_RATIO}x none's"] = (
            example_gen["peak_rss_mib"]
            <= GOAL_COPIES_RSS_RATIO * base["ImageExampleGen"]["peak_rss_mib"]
        )
        goals[f"copies={density}: whole run <= {GOAL_PEAK_GIB} GiB"] = (
            run["peak_rss_mib"] <= GOAL_PEAK_GIB * 1024
        )
        run["rows"] = rows
        print(f"GAP by method: {run['summary'].get('gap_by_method')}")
    return {density: recorded(run) for density, run in found.items()}


def recorded(run: dict) -> dict:
    """What the results file keeps of a run: its figures and its summary's scores."""
    summary = run["summary"]
    return {k: v for k, v in run.items() if k not in ("summary", "converted")} | {
        "accuracy": summary["accuracy"],
        "top_k_accuracy": summary["top_k_accuracy"],
        "gap": summary["gap"],
        "gap_by_method": summary.get("gap_by_method"),
        "examples": summary["examples"],
        "blessed": summary["blessed"],
    }


def _ratio(a, b):
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return "-"
    return round(a / b, 2)


def _rate(step: dict) -> str:
    if "examples_per_s" in step:
        return f"{step['examples_per_s']:,.0f} ex/s"
    if "steps_per_s" in step:
        return f"{step['steps_per_s']:.2f} steps/s"
    return ""


if __name__ == "__main__":
    sys.exit(main())
