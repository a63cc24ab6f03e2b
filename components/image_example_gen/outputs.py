"""What ImageExampleGen writes beside the shards, read back, and checked: labels.txt,
label_names.json (a display name per label), report.json (counts that reconcile every file
seen) and rejects.jsonl."""

from __future__ import annotations

import collections
import json
import os
from typing import TYPE_CHECKING

import tensorflow as tf

from components.image_example_gen import config, images
from components.image_example_gen.options import ImageOptions

if TYPE_CHECKING:
    import apache_beam as beam

LABELS_FILE = "labels.txt"

LABEL_NAMES_FILE = "label_names.json"

REPORT_FILE = "report.json"

REJECTS_FILE = "rejects.jsonl"

REJECT_RUNS_FOLDER = "_reject_runs"  # rejects.py's sorted runs, deleted once merged


class ImageExampleGenError(RuntimeError):
    """The data cannot make a usable dataset; the message says what to do."""


def write_outputs(
    _,
    output_uri: str,
    vocabulary: list[str],
    runs: list[str],
    shard_stats: list[dict],
    files_seen: int,
    input_base: str,
    options: ImageOptions,
    split_names: list[str],
    moved: int = 0,
    label_names: list[str] | None = None,
) -> None:
    from components.image_example_gen import rejects  # Beam's: readers of the outputs need none

    write_labels_file(os.path.join(output_uri, LABELS_FILE), vocabulary)
    write_label_names_file(
        os.path.join(output_uri, LABEL_NAMES_FILE), vocabulary, label_names or vocabulary
    )
    by_status = {
        s: collections.Counter() for s in (images.REJECTED, images.SKIPPED, images.CSV_ROW)
    }
    for outcome in rejects.merge_runs(runs, os.path.join(output_uri, REJECTS_FILE)):
        by_status[outcome.status][outcome.reason] += 1
    runs_folder = os.path.join(output_uri, REJECT_RUNS_FOLDER)
    if tf.io.gfile.exists(runs_folder):  # with the runs of retried bundles, if any
        tf.io.gfile.rmtree(runs_folder)
    splits = dict.fromkeys(split_names, 0)
    classes: dict[str, dict[str, int]] = {label: {} for label in vocabulary}
    formats = collections.Counter()
    orientations = collections.Counter()
    for stats in shard_stats:
        splits[stats["split"]] += stats["examples"]
        formats.update(stats["formats"])
        orientations.update(stats["orientations"])
        for label, n in stats["classes"].items():
            classes[label][stats["split"]] = classes[label].get(stats["split"], 0) + n
    # In the splits' order, not the order shards finished in (which differs between runners).
    classes = {
        label: {s: counts[s] for s in split_names if s in counts}
        for label, counts in classes.items()
    }
    examples = sum(splits.values())
    rejected = sum(by_status[images.REJECTED].values())
    skipped = sum(by_status[images.SKIPPED].values())
    report = {
        "image_root": input_base,
        "labels_csv": options.labels_csv,
        "files_seen": files_seen,
        "examples": examples,
        "rejected": rejected,
        "skipped": skipped,
        "reconciled": files_seen == examples + rejected + skipped,
        "csv_ids_without_image": sum(by_status[images.CSV_ROW].values()),
        "num_classes": len(vocabulary),
        "splits": splits,
        # Images moved out of their hash split so that their class has one in every split.
        "moved_to_cover_classes": moved,
        "classes": classes,
        # Labels a split got no example of: a class without train examples cannot be learned,
        # one without eval examples is not measured.
        "classes_without_examples": {
            split: [label for label, counts in classes.items() if not counts.get(split)]
            for split in split_names
        },
        "rejected_by_reason": dict(sorted(by_status[images.REJECTED].items())),
        "skipped_by_reason": dict(sorted(by_status[images.SKIPPED].items())),
        "source_formats": dict(sorted(formats.items())),
        "transcoded": sum(s["transcoded"] for s in shard_stats),
        # Photos stored sideways (EXIF orientation tag -> count), written upright.
        "turned_upright": sum(orientations.values()),
        "exif_orientations": dict(sorted(orientations.items())),
        "options": options.to_dict(),
    }
    with tf.io.gfile.GFile(os.path.join(output_uri, REPORT_FILE), "w") as f:
        json.dump(report, f, ensure_ascii=False, indent=2)


def write_outputs_step(
    pipeline: beam.Pipeline,
    planned,
    written,
    output_uri: str,
    input_base: str,
    options: ImageOptions,
    split_names: list[str],
) -> None:
    """The Beam step that writes labels.txt, label_names.json, rejects.jsonl and report.json once
    every shard is written. Rejects are written where they arise, in sorted runs of at most
    RUN_RECORDS; one step merges the runs (streaming) with the counts, vocabulary and shard
    statistics, which arrive as small side inputs."""
    import apache_beam as beam  # here only: readers of the outputs need no Beam

    from components.image_example_gen import rejects

    runs = (
        (planned.outcomes, written.outcomes)
        | "AllOutcomes" >> beam.Flatten()
        | "SortedRuns"
        >> beam.ParDo(rejects.WriteRuns(os.path.join(output_uri, REJECT_RUNS_FOLDER)))
    )
    _ = (
        pipeline
        | "Once" >> beam.Create([None])
        | "WriteReport"
        >> beam.Map(
            write_outputs,
            output_uri=output_uri,
            vocabulary=beam.pvalue.AsSingleton(planned.vocabulary),
            runs=beam.pvalue.AsList(runs),
            shard_stats=beam.pvalue.AsList(written.stats),
            files_seen=beam.pvalue.AsSingleton(planned.files_seen),
            moved=beam.pvalue.AsSingleton(planned.moved),
            label_names=beam.pvalue.AsSingleton(planned.label_names),
            input_base=input_base,
            options=options,
            split_names=split_names,
        )
    )


def read_report(examples_uri: str) -> dict:
    """The conversion report (counts, splits, classes, reasons) of an Examples artifact."""
    with tf.io.gfile.GFile(os.path.join(examples_uri, REPORT_FILE)) as f:
        return json.load(f)


def read_vocabulary(examples_uri: str) -> list[str]:
    """The label vocabulary of an Examples artifact: label index i names vocabulary[i]."""
    return read_labels_file(os.path.join(examples_uri, LABELS_FILE))


def read_label_names(examples_uri: str) -> list[str]:
    """Display names aligned with the vocabulary (name i is label i's), of an Examples artifact
    or an exported model's folder: the labels themselves where label_names.json is absent
    (made before names were written).

    Raises:
      ValueError: label_names.json is not a list of one text per label.
    """
    vocabulary = read_vocabulary(examples_uri)
    path = os.path.join(examples_uri, LABEL_NAMES_FILE)
    if not tf.io.gfile.exists(path):
        return vocabulary
    with tf.io.gfile.GFile(path, "rb") as f:
        names = json.loads(f.read().decode("utf-8"))
    if (
        not isinstance(names, list)
        or len(names) != len(vocabulary)
        or not all(isinstance(n, str) for n in names)
    ):
        raise ValueError(
            f"{path} must list one name per line of {LABELS_FILE} ({len(vocabulary)}); it is "
            "written with it: rerun the conversion."
        )
    return names


def write_label_names_file(path: str, vocabulary: list[str], names: list[str]) -> None:
    """label_names.json: a JSON list, name i for label i of labels.txt (same length, order)."""
    if len(names) != len(vocabulary):
        raise ValueError(f"{len(names)} label names for {len(vocabulary)} labels in {path}.")
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(list(names), ensure_ascii=False))


def write_labels_file(path: str, vocabulary: list[str]) -> None:
    """labels.txt: label i on line i, UTF-8, each line ended by '\\n'. The plan rejects blank
    labels and labels holding line breaks, so every label is one non-empty line."""
    for label in vocabulary:
        if config.label_problem(label):
            raise ValueError(
                f"label {label!r} cannot be written to {path}: {config.label_problem(label)}"
            )
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("".join(f"{label}\n" for label in vocabulary))


def read_labels_file(path: str) -> list[str]:
    """The one reader of labels.txt (the Examples' and the exported model's): line i is label i.

    Split on '\\n' only, as it was written; a blank line is an error, never skipped, since
    skipping one would shift every later label's index.
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        text = f.read().decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        if config.label_problem(line):
            raise ValueError(
                f"{path} line {number}: {config.label_problem(line)}; labels.txt is "
                "written by ImageExampleGen, one label per line: rerun the conversion."
            )
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


def check_report(report: dict, options: ImageOptions) -> None:
    """Fails with a clear message when the converted data is not usable.

    Raises:
      ImageExampleGenError: nothing usable, too many rejects, an empty split, or unreconciled
        counts.
    """
    summary = (
        f"{report['files_seen']} files seen, {report['examples']} examples, "
        f"{report['rejected']} rejected, {report['skipped']} skipped"
    )
    if not report["reconciled"]:
        raise ImageExampleGenError(f"file counts do not add up ({summary}); please report a bug.")
    if report["examples"] == 0:
        reasons = report["rejected_by_reason"] or "no image files found"
        raise ImageExampleGenError(f"no usable images under {report['image_root']}: {reasons}.")
    candidates = report["examples"] + report["rejected"]
    fraction = report["rejected"] / candidates
    if fraction > options.max_reject_fraction:
        raise ImageExampleGenError(
            f"{fraction:.0%} of the images were rejected, over max_reject_fraction="
            f"{options.max_reject_fraction} ({summary}; reasons: {report['rejected_by_reason']})."
            f" See {REJECTS_FILE} in the output, or raise max_reject_fraction."
        )
    empty = [name for name, n in report["splits"].items() if n == 0]
    if empty:
        raise ImageExampleGenError(
            f"split(s) {empty} got no examples ({summary}): add images or change the split sizes."
        )
