"""report.json and rejects.jsonl read back, and what a reader says about them.

report.json (written by ImageExampleGen's outputs.py): files_seen, examples, rejected, skipped
and whether they reconcile; examples per split and per class and split; the classes a split has
no example of; counts per reject and skip reason, per source format and EXIF orientation; the
groups of copies of one picture (duplicate_groups, duplicate_images, exact_groups,
cross_label_groups, straddling_groups, the first few of the last two kinds); the conversion's
options (their `features` name the examples' features).

duplicates.jsonl: a line per group of copies, its first image first: kind ("exact": the same
image data, "near": within duplicate_threshold_bits of the first image's fingerprint), paths,
labels, splits (or "skipped: ..." / "rejected: ..." for a copy kept out), distances (bits from
the first image), max_distance.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import tensorflow as tf

from imgtfx.components.examples.layout import DUPLICATES_FILE, REJECTS_FILE, REPORT_FILE
from imgtfx.components.examples.reasons import Outcome


def read_report(examples_uri: str) -> dict:
    """The conversion report (counts, splits, classes, reasons) of an Examples artifact."""
    with tf.io.gfile.GFile(os.path.join(examples_uri, REPORT_FILE)) as f:
        return json.load(f)


def write_report(examples_uri: str, report: dict) -> None:
    with tf.io.gfile.GFile(os.path.join(examples_uri, REPORT_FILE), "w") as f:
        json.dump(report, f, ensure_ascii=False, indent=2)


def iter_rejects(examples_uri: str) -> Iterator[Outcome]:
    """rejects.jsonl's records, in its order (status, then path), streamed; none where an older
    artifact has no file."""
    return (Outcome(**record) for record in _json_lines(examples_uri, REJECTS_FILE))


def iter_duplicates(examples_uri: str) -> Iterator[dict]:
    """duplicates.jsonl's groups, in its order (by first path), streamed; none where an older
    artifact has no file."""
    return _json_lines(examples_uri, DUPLICATES_FILE)


def _json_lines(examples_uri: str, name: str) -> Iterator[dict]:
    path = os.path.join(examples_uri, name)
    if not tf.io.gfile.exists(path):
        return
    with tf.io.gfile.GFile(path) as f:
        for line in f:
            yield json.loads(line)


def duplicate_lines(report: dict) -> list[str]:
    """What a person is told of the copies found: one line when there are any, and a warning
    each for groups under two or more labels and for groups on both sides of a split."""
    groups = report.get("duplicate_groups")
    if not groups:
        return []
    exact = report.get("exact_groups", 0)
    lines = [
        f"copies: {groups:,} group{'' if groups == 1 else 's'} of copies of one picture "
        f"({report['duplicate_images']:,} images; {exact:,} of exact copies), each in one split "
        "where the split is chosen here; see duplicates.jsonl."
    ]
    for key, what in (
        (
            "cross_label",
            "lie under two or more labels: one picture teaches several classes "
            "(--reject-conflicting-duplicates rejects them)",
        ),
        (
            "straddling",
            "lie in more than one split: the eval split holds copies of training "
            "images, and its accuracy counts them",
        ),
    ):
        n = report.get(f"{key}_groups", 0)
        if n:
            shown = "; ".join(" and ".join(paths) for paths in report.get(f"{key}_examples", []))
            lines.append(f"warning: {n:,} group{'' if n == 1 else 's'} of copies {what} ({shown}).")
    return lines


def split_warnings(report: dict, shown: int = 5) -> list[str]:
    """One line per split that some classes have no example in, with what to do about it."""
    lines = []
    for split, labels in report.get("classes_without_examples", {}).items():
        if not labels:
            continue
        names = ", ".join(labels[:shown]) + (", ..." if len(labels) > shown else "")
        hint = (
            "the model cannot learn them; lower --eval-percent or add images"
            if split == "train"
            else "they are not evaluated; raise --eval-percent or add images"
        )
        lines.append(
            f"warning: {len(labels):,} of {report['num_classes']:,} classes have no {split} "
            f"example ({names}): {hint}."
        )
    return lines
