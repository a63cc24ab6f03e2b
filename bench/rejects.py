"""Peak memory of writing rejects.jsonl as the rejects grow to 1,000,000 (measured side by side).

  python bench/rejects.py [--counts 10000,1000000]

A labels CSV that lists far more ids than the tree holds images (a 4-million-row CSV over a
subset of the photos) makes one `csv_id_without_image` reject per extra row.

1. The rejects step alone, on the in-memory runner (the outcomes made inside the pipeline, a
   CSV row each): ImageExampleGen's sorted runs and streaming merge (components/image_example_
   gen/rejects.py) against gathering every reject on one worker (a side-input list, sorted and
   joined: how rejects.jsonl was written before). Peak RSS of the process at each count, and
   the ratio of the larger count's to the smaller's.
2. `imgtfx convert` of a 200-photo contest-shaped tree whose labels CSV has that many more ids
   than images: the whole conversion's peak RSS and seconds at each count.

Each measurement is a new process; peak RSS is its whole process tree's, sampled every 50 ms.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout

from bench.bench import REPO, run_sampled  # noqa: E402
from bench.provenance import provenance  # noqa: E402
from bench.scale import table, write_results  # noqa: E402

STEPS = ("sorted_runs", "gathered_on_one_worker")


def _outcomes(count: int):
    """`count` CSV rows without an image, in no particular order, as the CSV join makes them."""
    from imgtfx.components.examples.reasons import CSV_ID_WITHOUT_IMAGE, CSV_ROW, Outcome

    for i in range(count):
        yield Outcome(f"{(i * 7_919) % count:08d}", CSV_ROW, CSV_ID_WITHOUT_IMAGE)


def _gathered(_, outcomes: list, path: str) -> None:
    """The way before: every reject in one list on one worker, sorted, joined, written once."""
    import tensorflow as tf

    outcomes = sorted(outcomes, key=lambda o: (o.status, o.path, o.reason))
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("".join(json.dumps(o._asdict(), ensure_ascii=False) + "\n" for o in outcomes))


def _merged(_, runs: list, path: str) -> None:
    from imgtfx.components.image_example_gen import rejects

    for _ in rejects.merge_runs(runs, path):
        pass


def rejects_step(step: str, count: int, out: str) -> None:
    import apache_beam as beam

    from imgtfx.components.image_example_gen import rejects

    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "rejects.jsonl")
    with beam.Pipeline(argv=["--direct_running_mode=in_memory"]) as pipeline:
        outcomes = pipeline | beam.Impulse() | beam.FlatMap(lambda _: _outcomes(count))
        once = pipeline | "Once" >> beam.Create([None])
        if step == "sorted_runs":
            runs = outcomes | beam.ParDo(rejects.WriteRuns(os.path.join(out, "runs")))
            _ = once | beam.Map(_merged, runs=beam.pvalue.AsList(runs), path=path)
        else:
            _ = once | beam.Map(_gathered, outcomes=beam.pvalue.AsList(outcomes), path=path)
    with open(path, "rb") as f:
        lines = sum(1 for _ in f)
    assert lines == count, (lines, count)


def tree_with_extra_ids(count: int, work: str) -> tuple[str, str]:
    """A 200-photo contest-shaped tree and a labels CSV with `count` more ids than photos,
    written once (outside the measured process); returns (images, csv)."""
    from bench.contest_data import write_contest_tree

    tree = write_contest_tree(os.path.join(work, "contest-200"), 200, 20)
    csv = os.path.join(work, f"rejects-{count}.csv")
    if not os.path.exists(csv):
        with open(tree["labels_csv"], encoding="utf-8") as f:
            text = f.read()
        with open(csv + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
            f.writelines(f"missing{i:08d},{i % 20}\n" for i in range(count))
        os.replace(csv + ".tmp", csv)
    return tree["images"], csv


def convert_with_extra_ids(count: int, out: str, work: str) -> None:
    from imgtfx.components.image_example_gen.convert import convert
    from imgtfx.components.image_example_gen.options import ImageOptions

    images, csv = tree_with_extra_ids(count, work)
    report = convert(images, out, ImageOptions(labels_csv=csv))
    assert report.csv_ids_without_image == count, report.csv_ids_without_image


def child(args) -> int:
    import shutil

    shutil.rmtree(args.to, ignore_errors=True)
    start = time.perf_counter()
    if args.measure == "convert":
        convert_with_extra_ids(args.count, args.to, args.work)
    else:
        rejects_step(args.measure, args.count, args.to)
    print(json.dumps({"seconds": time.perf_counter() - start}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10000,1000000", help="the two reject counts")
    parser.add_argument("--work", default=os.path.join(REPO, "bench", "work"))
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--to", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return child(args)
    small, large = sorted(int(n) for n in args.counts.split(","))
    for count in (small, large):
        tree_with_extra_ids(count, args.work)
    rows = []
    for name in (*STEPS, "convert"):
        peaks, seconds = {}, {}
        for count in (small, large):
            argv = [
                sys.executable, __file__, "--measure", name, "--count", str(count),
                "--to", os.path.join(args.work, "out", f"rejects-{name}"), "--work", args.work,
            ]  # fmt: skip
            stdout, peak = run_sampled(argv, f"{name} at {count}")
            peaks[count] = peak / 2**20
            seconds[count] = json.loads(stdout.strip().splitlines()[-1])["seconds"]
        rows.append(
            {
                "measurement": name,
                f"peak_rss_mib@{small}": round(peaks[small]),
                f"peak_rss_mib@{large}": round(peaks[large]),
                "peak_ratio": round(peaks[large] / peaks[small], 2),
                f"seconds@{small}": round(seconds[small], 1),
                f"seconds@{large}": round(seconds[large], 1),
            }
        )
    print(table(rows, f"rejects.jsonl at {small:,} and {large:,} CSV ids without an image:"))
    results = {
        **provenance(),
        "counts": [small, large],
        "rejects": rows,
    }
    write_results(results, args.out, f"rejects-{datetime.date.today().isoformat()}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
