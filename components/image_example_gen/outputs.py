"""What ImageExampleGen writes beside the shards: labels.txt, label_names.json (a display name
per label), report.json (counts that reconcile every file seen), rejects.jsonl and
duplicates.jsonl, as the Examples contract (components/examples) lays them out."""

from __future__ import annotations

import collections
import os

import apache_beam as beam
import tensorflow as tf

from imgtfx.components.examples import reasons
from imgtfx.components.examples.conversion_report import ConversionReport, write_report
from imgtfx.components.examples.layout import (
    DUPLICATES_FILE,
    LABEL_NAMES_FILE,
    LABELS_FILE,
    REJECTS_FILE,
)
from imgtfx.components.examples.vocabulary import write_label_names_file, write_labels_file
from imgtfx.components.image_example_gen import duplicates, duplicates_jsonl, rejects, sorted_runs
from imgtfx.components.image_example_gen.options import ImageOptions

REJECT_RUNS_FOLDER = "_reject_runs"  # rejects.py's sorted runs, deleted once merged
DUPLICATE_RUNS_FOLDER = "_duplicate_runs"  # duplicates.jsonl's sorted runs, likewise
EXAMPLES_SHOWN = 5  # groups named in report.json per warning (duplicates.jsonl lists all)


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
    duplicate_runs: list[str] = (),
) -> None:
    write_labels_file(os.path.join(output_uri, LABELS_FILE), vocabulary)
    write_label_names_file(
        os.path.join(output_uri, LABEL_NAMES_FILE), vocabulary, label_names or vocabulary
    )
    by_status = {
        s: collections.Counter() for s in (reasons.REJECTED, reasons.SKIPPED, reasons.CSV_ROW)
    }
    for outcome in rejects.merge_runs(runs, os.path.join(output_uri, REJECTS_FILE)):
        by_status[outcome.status][outcome.reason] += 1
    copies = _merge_duplicates(duplicate_runs, os.path.join(output_uri, DUPLICATES_FILE))
    for folder in (REJECT_RUNS_FOLDER, DUPLICATE_RUNS_FOLDER):
        runs_folder = os.path.join(output_uri, folder)
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
    rejected = sum(by_status[reasons.REJECTED].values())
    skipped = sum(by_status[reasons.SKIPPED].values())
    report = ConversionReport(
        image_root=input_base,
        labels_csv=options.labels_csv,
        files_seen=files_seen,
        examples=examples,
        rejected=rejected,
        skipped=skipped,
        reconciled=files_seen == examples + rejected + skipped,
        csv_ids_without_image=sum(by_status[reasons.CSV_ROW].values()),
        num_classes=len(vocabulary),
        splits=splits,
        moved_to_cover_classes=moved,
        classes=classes,
        classes_without_examples={
            split: [label for label, counts in classes.items() if not counts.get(split)]
            for split in split_names
        },
        rejected_by_reason=dict(sorted(by_status[reasons.REJECTED].items())),
        skipped_by_reason=dict(sorted(by_status[reasons.SKIPPED].items())),
        source_formats=dict(sorted(formats.items())),
        transcoded=sum(s["transcoded"] for s in shard_stats),
        turned_upright=sum(orientations.values()),
        exif_orientations=dict(sorted(orientations.items())),
        **copies,
        options=options.to_dict(),
    )
    write_report(output_uri, report)


def _merge_duplicates(runs: list[str], path: str) -> dict:
    """Merges duplicates.jsonl's runs into `path`; its counts for report.json, and the first
    EXAMPLES_SHOWN groups of each kind of warning (their first two paths)."""
    counts = collections.Counter()
    examples: dict[str, list] = {"cross_label_examples": [], "straddling_examples": []}
    lines = sorted_runs.merge_runs(
        runs,
        path,
        duplicates_jsonl.line_key,
        duplicates_jsonl.encode_line,
        duplicates_jsonl.decode_line,
    )
    for line in lines:
        counts["duplicate_groups"] += 1
        counts["duplicate_images"] += len(line["paths"])
        counts["exact_groups"] += line["kind"] == "exact"
        for kind, found in (
            ("cross_label", len(set(line["labels"])) > 1),
            ("straddling", duplicates_jsonl.is_straddling(line)),
        ):
            counts[f"{kind}_groups"] += found
            if found and len(examples[f"{kind}_examples"]) < EXAMPLES_SHOWN:
                examples[f"{kind}_examples"].append(line["paths"][:2])
    keys = (
        "duplicate_groups",
        "duplicate_images",
        "exact_groups",
        "cross_label_groups",
        "straddling_groups",
    )
    return {
        **{key: counts[key] for key in keys},
        "duplicate_threshold_bits": duplicates.THRESHOLD,
        **examples,
    }


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
            duplicate_runs=beam.pvalue.AsList(planned.duplicate_runs),
            input_base=input_base,
            options=options,
            split_names=split_names,
        )
    )
