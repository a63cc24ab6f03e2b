"""Reads what the report shows from a run's artifacts: ImageExampleGen's outputs, TFDV's
statistics and anomalies, the Trainer's TensorBoard logs, TFMA's metrics and the trained model
run over eval images. Each reader streams its input and keeps only what the page shows.
"""

from __future__ import annotations

import collections
import glob
import heapq
import os
import re

import numpy as np
import tensorflow as tf

from imgtfx.components.examples import reader
from imgtfx.components.examples.conversion_report import (
    ConversionReport,
    iter_duplicates,
    iter_rejects,
    read_report,
)
from imgtfx.components.examples.decode import decode_image
from imgtfx.components.examples.features import FeatureNames
from imgtfx.components.examples.layout import split_files
from imgtfx.components.examples.report_warnings import copy_warnings, split_warnings
from imgtfx.components.examples.vocabulary import read_label_names, read_vocabulary
from imgtfx.pipeline.run_summary import RunSummary, read_summary
from imgtfx.report.data import (
    CROSS_LABEL_SHOWN,
    LARGEST_GROUPS_SHOWN,
    LIST_SHOWN,
    MAX_CLASSES_SHOWN,
    MAX_EVAL_PREDICTED,
    MEMBERS_SHOWN,
    REJECTS_SHOWN,
    SAMPLES_PER_CLASS,
    THUMBNAIL,
    WORST_SHOWN,
    Anomaly,
    Copies,
    CopyGroup,
    Dataset,
    FeatureStatistics,
    Mistake,
    Predictions,
    RejectGroup,
    RunResults,
    Samples,
    Slices,
    SplitStatistics,
    Statistics,
)

SAMPLES_READ = 5000  # train examples scanned for samples


def read_run(summary: RunSummary) -> RunResults:
    """Everything the page shows of a run, from its summary (see pipeline.results.summarize)."""
    examples = summary.examples_uri
    dataset = read_dataset(examples)
    features = FeatureNames.of_report(dataset.report)  # the conversion's own
    model = summary.model
    return RunResults(
        summary=summary,
        dataset=dataset,
        samples=read_samples(examples, features, dataset.report.splits),
        statistics=read_statistics(summary.statistics_uri, summary.anomalies_uri),
        curves=read_curves(summary.model_run_uri) if summary.model_run_uri else {},
        slices=read_slices(summary.evaluation_uri) if summary.evaluation_uri else None,
        predictions=(
            read_predictions(model, examples, features, dataset.report.splits)
            if model and tf.io.gfile.exists(model)
            else None
        ),
        copies=read_copies(examples, features, dataset.report),
    )


def read_dataset(examples_uri: str) -> Dataset:
    report = read_report(examples_uri)
    names = dict(zip(read_vocabulary(examples_uri), read_label_names(examples_uri), strict=True))
    warnings = [*split_warnings(report), *copy_warnings(report)[1:]]
    return Dataset(report, names, warnings, read_rejects(examples_uri))


def read_copies(examples_uri: str, names: FeatureNames, report: ConversionReport) -> Copies | None:
    """The groups the page shows (the LARGEST_GROUPS_SHOWN largest, the first
    CROSS_LABEL_SHOWN under two or more labels), streamed from duplicates.jsonl, and the
    thumbnails of their first MEMBERS_SHOWN members, read from the examples until every one is
    found; None when no copies were found."""
    if not report.duplicate_groups:
        return None
    cross_label: list[dict] = []

    def lines():
        for line in iter_duplicates(examples_uri):
            if len(set(line["labels"])) > 1 and len(cross_label) < CROSS_LABEL_SHOWN:
                cross_label.append(line)
            yield line

    largest = heapq.nlargest(LARGEST_GROUPS_SHOWN, lines(), key=lambda line: len(line["paths"]))
    wanted = {p for line in largest + cross_label for p in line["paths"][:MEMBERS_SHOWN]}
    pictures: dict[str, np.ndarray] = {}
    for split in report.splits:
        if len(pictures) == len(wanted):
            break
        dataset = reader.read_examples(
            split_files(examples_uri, split, report.splits),
            names,
            keys=[names.path, names.image],
        )
        for example in dataset:
            path = example[names.path].numpy().decode()
            if path in wanted:
                pictures[path] = thumbnail(example[names.image].numpy())
                if len(pictures) == len(wanted):
                    break

    def group(line: dict) -> CopyGroup:
        shown = line["paths"][:MEMBERS_SHOWN]
        return CopyGroup(
            line["kind"],
            line["paths"],
            line["labels"],
            line["splits"],
            line["distances"],
            [pictures.get(p) for p in shown],
        )

    return Copies([group(line) for line in largest], [group(line) for line in cross_label])


def read_rejects(examples_uri: str) -> list[RejectGroup]:
    """rejects.jsonl grouped by (status, reason): every file counted, the first REJECTS_SHOWN
    of each group kept."""
    groups: dict[tuple[str, str], RejectGroup] = {}
    for outcome in iter_rejects(examples_uri):
        key = (outcome.status, outcome.reason)
        group = groups.setdefault(key, RejectGroup(*key, 0, []))
        group.count += 1
        if len(group.files) < REJECTS_SHOWN:
            group.files.append((outcome.path, outcome.detail))
    return [groups[key] for key in sorted(groups)]


def thumbnail(encoded: bytes) -> np.ndarray:
    """The picture as the trainer sees it, THUMBNAIL pixels at most on a side: decoded by the
    trainer's own decoder (RGB, 8 bits, upright), so 16-bit, CMYK, palette and grayscale
    images all show as what was learned."""
    from PIL import Image

    try:
        pixels = decode_image(tf.constant(encoded)).numpy()
    except tf.errors.OpError:  # never for a converted example; a thumbnail must not fail a run
        pixels = np.full((THUMBNAIL, THUMBNAIL, 3), 200, np.uint8)
    image = Image.fromarray(pixels)
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    return np.asarray(image)


def read_samples(
    examples_uri: str, names: FeatureNames, split_names: list[str] | None = None
) -> Samples:
    """Up to SAMPLES_PER_CLASS train images of each of the first MAX_CLASSES_SHOWN classes in
    the vocabulary's order, from the first SAMPLES_READ train examples."""
    encoded: dict[str, list[bytes]] = collections.defaultdict(list)
    dataset = reader.read_examples(
        split_files(examples_uri, "train", split_names),
        names,
        keys=[names.image, names.label_name],
    )
    for example in dataset.take(SAMPLES_READ):
        label = example[names.label_name].numpy().decode()
        if len(encoded[label]) < SAMPLES_PER_CLASS:
            encoded[label].append(example[names.image].numpy())
    order = {label: i for i, label in enumerate(read_vocabulary(examples_uri))}
    shown = sorted(encoded, key=lambda label: order.get(label, len(order)))[:MAX_CLASSES_SHOWN]
    return Samples({label: [thumbnail(b) for b in encoded[label]] for label in shown}, len(encoded))


def read_statistics(statistics_uri: str | None, anomalies_uri: str | None) -> Statistics | None:
    """StatisticsGen's per-split feature statistics and ExampleValidator's anomalies."""
    from tensorflow_data_validation import load_stats_binary
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    if not statistics_uri:
        return None
    splits = []
    for split_dir in sorted(tf.io.gfile.glob(os.path.join(glob.escape(statistics_uri), "Split-*"))):
        stats = load_stats_binary(os.path.join(split_dir, "FeatureStats.pb")).datasets[0]
        features = [_feature(feature) for feature in stats.features]
        split = os.path.basename(split_dir)[len("Split-") :]
        splits.append(SplitStatistics(split, stats.num_examples, [f for f in features if f]))
    anomalies = []
    if anomalies_uri:
        pattern = os.path.join(glob.escape(anomalies_uri), "Split-*", "SchemaDiff.pb")
        for path in sorted(tf.io.gfile.glob(pattern)):
            split = os.path.basename(os.path.dirname(path))[len("Split-") :]
            with tf.io.gfile.GFile(path, "rb") as f:
                found = anomalies_pb2.Anomalies.FromString(f.read())
            for feature, info in found.anomaly_info.items():
                anomalies.append(Anomaly(split, feature, info.short_description, info.description))
    return Statistics(splits, anomalies)


def _feature(feature) -> FeatureStatistics | None:
    name = feature.path.step[0] if feature.path.step else feature.name
    if feature.HasField("num_stats"):
        s = feature.num_stats
        return FeatureStatistics(name, "number", s.common_stats.num_missing, s.min, s.max, s.mean)
    if feature.HasField("string_stats"):
        s = feature.string_stats
        top = [v.value for v in s.top_values[:3]]
        if top and top[0] == "__BYTES_VALUE__":  # TFDV's stand-in for values that are not text
            return FeatureStatistics(name, "encoded", s.common_stats.num_missing, unique=s.unique)
        counted = bool(s.top_values or s.unique)  # id and path are left uncounted (pipeline.py)
        return FeatureStatistics(
            name,
            "text",
            s.common_stats.num_missing,
            unique=s.unique if counted else None,
            top=top,
            average_length=s.avg_length,
        )
    if feature.HasField("bytes_stats"):
        s = feature.bytes_stats
        return FeatureStatistics(
            name,
            "bytes",
            s.common_stats.num_missing,
            s.min_num_bytes,
            s.max_num_bytes,
            s.avg_num_bytes,
        )
    return None


def read_curves(model_run_uri: str) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """{'train'|'validation': {metric: [(epoch, value)]}} from the Trainer's TensorBoard logs."""
    curves: dict[str, dict[str, list]] = {}
    for run in ("train", "validation"):
        folder = glob.escape(os.path.join(model_run_uri, run))
        for path in sorted(tf.io.gfile.glob(os.path.join(folder, "events.out.tfevents.*"))):
            for record in tf.data.TFRecordDataset(path):
                event = tf.compat.v1.Event.FromString(record.numpy())
                for value in event.summary.value:
                    if not value.tag.startswith("epoch_"):
                        continue
                    number = (
                        float(tf.make_ndarray(value.tensor))
                        if value.HasField("tensor")
                        else value.simple_value
                    )
                    metric = value.tag[len("epoch_") :]
                    curves.setdefault(run, {}).setdefault(metric, []).append((event.step, number))
    return curves


def natural(text: str) -> tuple:
    """Sort key that orders numbers inside names as numbers ('id=2' before 'id=10')."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def read_slices(evaluation_uri: str) -> Slices:
    """TFMA's overall metrics and the class slices the page lists: all of them, by name, when
    there are at most MAX_CLASSES_SHOWN, else the LIST_SHOWN with the lowest accuracy. Slices
    are streamed and only those are kept, whatever the number of classes."""
    from imgtfx.components.image_evaluator.properties import ACCURACY
    from imgtfx.pipeline.results import OVERALL, slice_metrics

    overall, first, total = None, [], 0

    def class_slices():
        nonlocal overall, total
        for name, values in slice_metrics(evaluation_uri):
            if name == OVERALL:
                overall = values
                continue
            total += 1
            if len(first) <= MAX_CLASSES_SHOWN:
                first.append((name, values))
            yield name, values

    # Lowest accuracy first, equal accuracies in name order; nsmallest keeps LIST_SHOWN rows.
    worst = heapq.nsmallest(
        LIST_SHOWN,
        class_slices(),
        key=lambda row: (row[1].get(ACCURACY, float("inf")), natural(row[0])),
    )
    rows = sorted(first, key=lambda row: natural(row[0])) if total <= MAX_CLASSES_SHOWN else worst
    return Slices(overall, rows, total)


def read_predictions(
    model_path: str,
    examples_uri: str,
    names: FeatureNames,
    split_names: list[str] | None = None,
) -> Predictions:
    """The serving model (its images signature) over up to MAX_EVAL_PREDICTED eval examples.

    Streamed: only the (true, predicted) counts and the WORST_SHOWN most confident mistakes'
    images are kept, so neither the eval split's images nor an n x n matrix is ever held.
    """
    from imgtfx.trainer import model as trainer_model

    predict = tf.saved_model.load(model_path).signatures[trainer_model.IMAGES_SIGNATURE]
    pairs: collections.Counter = collections.Counter()
    mistakes: list = []  # min-heap of (confidence, seen, true, predicted, image, path)
    seen = 0
    dataset = reader.read_examples(
        split_files(examples_uri, "eval", split_names),
        names,
        keys=[names.image, names.label, names.path],
    )
    for batch in dataset.take(MAX_EVAL_PREDICTED).batch(64):
        probabilities = predict(images=batch[names.image])[trainer_model.PROBABILITIES].numpy()
        truth = batch[names.label].numpy()
        predicted = probabilities.argmax(axis=1)
        confidence = probabilities.max(axis=1)
        for i in range(len(truth)):
            t, p = int(truth[i]), int(predicted[i])
            pairs[t, p] += 1
            if t != p:
                item = (float(confidence[i]), seen, t, p)
                if len(mistakes) < WORST_SHOWN or item > mistakes[0][:4]:
                    keep = (*item, batch[names.image][i].numpy(), batch[names.path][i].numpy())
                    (heapq.heappush if len(mistakes) < WORST_SHOWN else heapq.heapreplace)(
                        mistakes, keep
                    )
            seen += 1
    return Predictions(
        labels=read_vocabulary(examples_uri),
        names=read_label_names(examples_uri),
        pairs=pairs,
        seen=seen,
        mistakes=[
            Mistake(confidence, t, p, thumbnail(image), path.decode())
            for confidence, _, t, p, image, path in sorted(mistakes, reverse=True)
        ],
    )


def read_reportable_summary(root: str) -> RunSummary:
    """ROOT/summary.json of a run that produced examples, or a ValueError a person can act
    on."""
    summary = read_summary(root)
    if not summary.examples_uri:
        raise ValueError(f"the run in {root} produced no examples: nothing to report.")
    return summary
