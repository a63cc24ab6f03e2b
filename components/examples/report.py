"""report.json and rejects.jsonl read back, and what a reader says about them.

report.json (written by ImageExampleGen's outputs.py): files_seen, examples, rejected, skipped
and whether they reconcile; examples per split and per class and split; the classes a split has
no example of; counts per reject and skip reason, per source format and EXIF orientation; the
conversion's options (their `features` name the examples' features).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import tensorflow as tf

from components.examples.features import FeatureNames
from components.examples.layout import REJECTS_FILE, REPORT_FILE
from components.examples.reasons import Outcome


def read_report(examples_uri: str) -> dict:
    """The conversion report (counts, splits, classes, reasons) of an Examples artifact."""
    with tf.io.gfile.GFile(os.path.join(examples_uri, REPORT_FILE)) as f:
        return json.load(f)


def write_report(examples_uri: str, report: dict) -> None:
    with tf.io.gfile.GFile(os.path.join(examples_uri, REPORT_FILE), "w") as f:
        json.dump(report, f, ensure_ascii=False, indent=2)


def features_of(report: dict) -> FeatureNames:
    """The feature names the examples were written with (the conversion's options)."""
    return FeatureNames.from_dict(report.get("options", {}).get("features"))


def iter_rejects(examples_uri: str) -> Iterator[Outcome]:
    """rejects.jsonl's records, in its order (status, then path), streamed; none where an older
    artifact has no file."""
    path = os.path.join(examples_uri, REJECTS_FILE)
    if not tf.io.gfile.exists(path):
        return
    with tf.io.gfile.GFile(path) as f:
        for line in f:
            yield Outcome(**json.loads(line))


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
