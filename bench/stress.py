"""The scale benchmark's stress runs (bench/scale.py --classes-sweep, --tinted): steps against
the number of classes, and the adversarial tree for copies, through the whole `imgtfx run`."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import time

from bench.provenance import provenance
from bench.scale import (
    GOAL_PEAK_GIB,
    GOAL_REPORT_MB,
    run_pipeline,
    table,
    warm,
    write_results,
)

TINTED_GOAL_SECONDS = 600


def class_sweep(args) -> int:
    """Steps against the number of classes: trees of N classes x 2 small photos, few training
    steps, and a straight-line extrapolation of each step's seconds and peak RSS to Google
    Landmarks v2 (203,094 classes)."""
    from bench.contest_data import write_contest_tree

    counts = sorted(int(n) for n in args.classes_sweep.split(","))
    runs = {}
    for n in counts:
        tree = write_contest_tree(
            os.path.join(args.work, f"classes-{n}"), 2 * n, n, size=(96, 54), grain=4.0
        )
        sweep_args = argparse.Namespace(
            train_steps=args.sweep_train_steps, image_size=32, min_accuracy=0.0
        )
        runs[n] = run_pipeline(tree, os.path.join(args.work, f"classes-run-{n}"), sweep_args)
        print(f"  {n:,} classes: {runs[n]['seconds']} s, peak {runs[n]['peak_rss_mib']} MiB")
    steps = list(runs[counts[-1]]["summary"]["step_times"])
    target = 203_094
    rows = []
    for step in steps:
        row = {"step": step}
        for n in counts:
            record = runs[n]["summary"]["step_times"].get(step, {})
            row[f"s@{n}"] = record.get("seconds", "-")
            row[f"MiB@{n}"] = record.get("peak_rss_mib", "-")
        for key in ("s", "MiB"):
            a, b = row[f"{key}@{counts[-2]}"], row[f"{key}@{counts[-1]}"]
            if isinstance(a, int | float) and isinstance(b, int | float):
                slope = (b - a) / (counts[-1] - counts[-2])
                row[f"{key}@{target} (extrapolated)"] = round(b + slope * (target - counts[-1]))
        rows.append(row)
    title = f"\nSteps against classes (2 photos a class, {args.sweep_train_steps} steps):"
    print(table(rows, title))
    results = {
        **provenance(),
        "classes": counts,
        "steps": rows,
        "runs": {
            str(n): {k: v for k, v in r.items() if k not in ("summary", "converted")}
            for n, r in runs.items()
        },
    }
    write_results(results, args.out, f"classes-{datetime.date.today().isoformat()}.json")
    return 0


def tinted_run(args) -> int:
    """The tree where a hash blind to colour would chain every class into one group: each
    class a tint of one of 3 shots, its photos 5-10% crops of it, 960x540 like the contest's.
    Checks that groups stay bounded and the split still trains and evaluates every class,
    within the contest run's time and memory, with a report a person can read."""
    from bench.copies_data import write_tinted_tree
    from imgtfx.components.image_example_gen.duplicates import THRESHOLD

    photos = 8
    tree_dir = os.path.join(args.work, f"tinted-{args.tinted}")
    marker = os.path.join(tree_dir, "written")
    if not os.path.exists(marker):
        shutil.rmtree(tree_dir, ignore_errors=True)
        started = time.monotonic()
        write_tinted_tree(tree_dir, args.tinted, photos, size=(960, 540))
        open(marker, "w").close()
        print(f"tinted tree written in {time.monotonic() - started:.0f} s", flush=True)
    tree = {"images": os.path.join(tree_dir, "images")}
    print(f"  read once into the page cache: {warm(tree['images']):.1f} GB", flush=True)
    run_args = argparse.Namespace(**{**vars(args), "min_accuracy": 0.0})  # not what it tests
    run = run_pipeline(tree, os.path.join(args.work, f"tinted-run-{args.tinted}"), run_args)
    converted, summary = run["converted"], run["summary"]
    examples = summary["examples_uri"]
    with open(os.path.join(examples, "duplicates.jsonl"), encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    largest = max((len(line["paths"]) for line in lines), default=0)
    widest = max((max(line["distances"]) for line in lines), default=0)
    report_json_mb = os.path.getsize(os.path.join(examples, "report.json")) / 1e6
    missing = converted["classes_without_examples"]
    figures = {
        "photos": args.tinted * photos,
        "classes": args.tinted,
        "seconds": run["seconds"],
        "peak_rss_mib": run["peak_rss_mib"],
        **run["copies"],
        "straddling_groups": converted.get("straddling_groups"),
        "largest_group": largest,
        "widest_distance_bits": widest,
        "classes_without_train_examples": len(missing.get("train", [])),
        "classes_without_eval_examples": len(missing.get("eval", [])),
        "report_mb": run["report_mb"],
        "report_json_mb": round(report_json_mb, 2),
        "accuracy": summary["accuracy"],
    }
    print(table([figures], f"\nimgtfx run on the tinted tree ({args.tinted:,} classes):"))
    goals = {
        f"no group wider than {THRESHOLD} bits from its first photo": widest <= THRESHOLD,
        "every class trained and evaluated": not missing.get("train") and not missing.get("eval"),
        f"whole run <= {TINTED_GOAL_SECONDS} s": run["seconds"] <= TINTED_GOAL_SECONDS,
        f"peak RSS <= {GOAL_PEAK_GIB} GiB": run["peak_rss_mib"] <= GOAL_PEAK_GIB * 1024,
        f"report <= {GOAL_REPORT_MB} MB": run["report_mb"] <= GOAL_REPORT_MB,
    }
    print("\nGoals:")
    for key, ok in goals.items():
        print(f"  {'met' if ok else 'NOT met':8} {key}")
    results = {
        **provenance(),
        "figures": figures,
        "goals": goals,
    }
    write_results(results, args.out, f"tinted-{datetime.date.today().isoformat()}.json")
    return 0 if all(goals.values()) else 1
