"""Beam executor of ImageExampleGen: image tree (+ labels CSV) -> sharded gzipped TFRecords.

The work is planned on file paths, which are small, and images are read only in the last fused
step that also writes them, so memory does not grow with the number of images:

  list files -> label (folder or CSV join) -> drop duplicates -> vocabulary (side input)
  -> assign split (TFX's own hash partition) -> group paths into shards
  -> read, check and write each shard -> report, rejects, labels.txt

TFX's base executor writes through a Reshuffle of the finished examples, which the local Beam
runner holds in memory; writing shards from grouped paths avoids that and makes the output files
identical from run to run.
"""

from __future__ import annotations

import collections
import concurrent.futures
import glob
import hashlib
import json
import math
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.base_example_gen_executor import (
    BaseExampleGenExecutor,
    _PartitionFn,
)
from tfx.components.example_gen.write_split import DEFAULT_FILE_NAME
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.image_example_gen import images
from components.image_example_gen.images import FoundFile, ImageInfo, Outcome
from components.image_example_gen.options import FeatureNames, ImageOptions

LABELS_FILE = "labels.txt"
REPORT_FILE = "report.json"
REJECTS_FILE = "rejects.jsonl"
_NUMBER = re.compile(r"-?\d+")


class LabeledImage(NamedTuple):
    file: FoundFile
    id: str
    label_name: str
    split: str = ""  # the output split, once assigned


class ImageExampleGenError(RuntimeError):
    """The data cannot make a usable dataset; the message says what to do."""


# ---------------------------------------------------------------------------------------------
# Configuration read back from exec_properties.


def read_configs(exec_properties: dict[str, Any]):
    """Returns (input_config, output_config, options) from an executor's exec_properties."""
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config
    )
    output_config = example_gen_pb2.Output()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config
    )
    custom = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    custom_config = None
    if custom:
        custom_config = example_gen_pb2.CustomConfig()
        proto_utils.json_to_proto(custom, custom_config)
    return input_config, output_config, ImageOptions.from_custom_config(custom_config)


def split_tops(input_base: str, pattern: str) -> list[str]:
    """The files and folders a split pattern names under the image root, sorted."""
    full = os.path.join(input_base, pattern)
    if "://" in full:
        return sorted(tf.io.gfile.glob(full))
    return sorted(glob.glob(full))


def labels_csv_columns(options: ImageOptions) -> tuple[str, str]:
    """Checks the labels CSV header and returns (id_column, label_column).

    Raises:
      ValueError: the CSV is missing or lacks the named columns; the message lists what it has.
    """
    import pandas as pd

    path = options.labels_csv
    if not tf.io.gfile.exists(path):
        raise ValueError(f"labels CSV {path} does not exist.")
    with tf.io.gfile.GFile(path, "r") as f:
        columns = [nfc_strip(c) for c in pd.read_csv(f, nrows=0, dtype=str).columns]
    if options.id_column not in columns:
        raise ValueError(
            f"labels CSV {path} has no id column '{options.id_column}' (columns: {columns}); "
            "name it with id_column (--id-column)."
        )
    label_column = options.label_column
    if label_column is None:
        others = [c for c in columns if c != options.id_column]
        if len(others) != 1:
            raise ValueError(
                f"labels CSV {path} has columns {columns}: name the label column with "
                "label_column (--label-column)."
            )
        label_column = others[0]
    elif label_column not in columns:
        raise ValueError(
            f"labels CSV {path} has no label column '{label_column}' (columns: {columns})."
        )
    return options.id_column, label_column


def nfc_strip(text: str) -> str:
    return images.nfc(str(text).strip())


def sort_labels(labels: Iterable[str]) -> list[str]:
    """Sorted label vocabulary: numerically when every label is an integer, else by text."""
    labels = sorted(set(labels))
    if labels and all(_NUMBER.fullmatch(label) for label in labels):
        return sorted(labels, key=int)
    return labels


def partition_feature(options: ImageOptions, output_config: example_gen_pb2.Output) -> str:
    """The feature whose hash picks an image's split: the CSV id, else the relative path."""
    name = output_config.split_config.partition_feature_name
    if name:
        return name
    return options.features.id if options.labels_csv else options.features.path


# ---------------------------------------------------------------------------------------------
# Beam steps on paths.


def _list_split(split_and_top: tuple[str, str], root: str, ignore: frozenset[str]) -> Iterator:
    split, top = split_and_top
    for entry in images.walk(split, root, top, ignore):
        if isinstance(entry, FoundFile):
            yield entry
        else:
            yield beam.pvalue.TaggedOutput("outcomes", entry)


def _label_from_folder(found: FoundFile, level: int) -> Iterator:
    label = images.folder_label(found.path, level)
    if label is None:
        yield beam.pvalue.TaggedOutput(
            "outcomes",
            Outcome(found.path, images.REJECTED, images.NO_LABEL_FOLDER, f"label_level={level}"),
        )
    else:
        yield LabeledImage(found, images.image_id(found.path), label)


def read_labels_csv(path: str, id_column: str, label_column: str) -> Iterator[tuple[str, str]]:
    """(normalised id, label) rows of a labels CSV, read in chunks (any size, local or gs://)."""
    import pandas as pd

    with tf.io.gfile.GFile(path, "r") as f:
        for chunk in pd.read_csv(f, dtype=str, keep_default_na=False, chunksize=50_000):
            chunk.columns = [nfc_strip(c) for c in chunk.columns]
            for raw_id, label in zip(chunk[id_column], chunk[label_column], strict=True):
                yield images.csv_id(raw_id), nfc_strip(label)


def _join_csv(element: tuple[str, dict[str, list]]) -> Iterator:
    image_id, groups = element
    found: list[FoundFile] = sorted(groups["images"], key=lambda f: f.path)
    labels = sorted(set(groups["labels"]))
    if not found:
        yield beam.pvalue.TaggedOutput(
            "outcomes", Outcome(image_id, images.CSV_ROW, images.CSV_ID_WITHOUT_IMAGE)
        )
        return
    if not labels or len(labels) > 1:
        reason = images.ID_NOT_IN_CSV if not labels else images.CONFLICTING_LABELS
        detail = "" if not labels else f"labels {labels}"
        for f in found:
            yield beam.pvalue.TaggedOutput(
                "outcomes", Outcome(f.path, images.REJECTED, reason, detail)
            )
        return
    yield LabeledImage(found[0], image_id, labels[0])
    for duplicate in found[1:]:
        yield beam.pvalue.TaggedOutput(
            "outcomes",
            Outcome(duplicate.path, images.REJECTED, images.DUPLICATE_ID, f"kept {found[0].path}"),
        )


def _first_of_same_path(element: tuple[str, Iterable[LabeledImage]]) -> Iterator:
    """Keeps one image per NFC path: NFC and NFD spellings of a name are the same image name."""
    _, group = element
    ordered = sorted(group, key=lambda r: r.file.uri)
    yield ordered[0]
    for duplicate in ordered[1:]:
        yield beam.pvalue.TaggedOutput(
            "outcomes",
            Outcome(
                duplicate.file.path,
                images.REJECTED,
                images.DUPLICATE_PATH,
                f"{duplicate.file.uri} is named as {ordered[0].file.uri} after Unicode NFC",
            ),
        )


def _assign_split(
    record: LabeledImage,
    feature_name: str,
    features: FeatureNames,
    output_config: example_gen_pb2.Output,
) -> LabeledImage:
    """Picks the split with TFX's own partition function, on the same feature bytes."""
    split_config = output_config.split_config
    if not split_config.splits:
        return record._replace(split=record.file.split)
    values = {
        features.id: record.id,
        features.path: record.file.path,
        features.label_name: record.label_name,
    }
    if feature_name not in values:
        raise ValueError(
            f"partition_feature_name '{feature_name}' must be one of {sorted(values)}: "
            "the split is chosen before images are read."
        )
    key = tf.train.Example()
    key.features.feature[feature_name].bytes_list.value.append(values[feature_name].encode())
    buckets = []
    for split in split_config.splits:
        buckets.append((buckets[-1] if buckets else 0) + split.hash_buckets)
    index = _PartitionFn(key, len(buckets), buckets, split_config)
    return record._replace(split=split_config.splits[index].name)


def _path_hash(path: str) -> int:
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big")


def _shard_key(record: LabeledImage, counts: dict[str, int], per_shard: int):
    num_shards = max(1, math.ceil(counts[record.split] / per_shard))
    return (record.split, _path_hash(record.file.path) % num_shards, num_shards), record


# ---------------------------------------------------------------------------------------------
# Reading images into examples.


def build_example(
    record: LabeledImage, info: ImageInfo, label_index: int, features: FeatureNames
) -> tf.train.Example:
    example = tf.train.Example()
    feature = example.features.feature
    for name, value in (
        (features.image, info.data),
        (features.label_name, record.label_name.encode()),
        (features.id, record.id.encode()),
        (features.path, record.file.path.encode()),
        (features.format, info.format.encode()),
        (features.source_format, info.source_format.encode()),
    ):
        feature[name].bytes_list.value.append(value)
    for name, value in (
        (features.label, label_index),
        (features.height, info.height),
        (features.width, info.width),
        (features.channels, info.channels),
        (features.orientation, info.orientation),
    ):
        feature[name].int64_list.value.append(value)
    return example


def convert_image(
    record: LabeledImage, label_index: dict[str, int], options: ImageOptions
) -> tuple[tf.train.Example, ImageInfo] | Outcome:
    """Reads and checks one image; an example, or the reason it cannot be one."""
    try:
        data = images.read_bytes(record.file.uri)
    except OSError as e:
        return Outcome(record.file.path, images.REJECTED, images.UNREADABLE, str(e))
    checked = images.check_image(data, options.max_pixels, options.transcode_unsupported)
    if isinstance(checked, Outcome):
        return checked._replace(path=record.file.path)
    example = build_example(record, checked, label_index[record.label_name], options.features)
    return example, checked


_BAR = None
_BAR_LOCK = threading.Lock()


def _progress_bar():
    """One progress bar per process, shared by the shards it writes (terminals only)."""
    global _BAR
    with _BAR_LOCK:
        if _BAR is None:
            from tqdm import tqdm

            _BAR = tqdm(unit="img", desc="images", file=sys.stderr, mininterval=0.5)
        return _BAR


def _close_progress_bar() -> None:
    global _BAR
    with _BAR_LOCK:
        if _BAR is not None:
            _BAR.close()
            _BAR = None


def _convert_all(records: list[LabeledImage], index: dict[str, int], options: ImageOptions):
    """(record, convert_image(record)) in order. Images are read and checked on a thread pool:
    decoding and file reads release the GIL, so one worker uses every core, whatever the
    runner's own parallelism. At most 4 results per thread wait in memory."""
    threads = options.decode_threads or os.cpu_count() or 1
    if threads == 1:
        for record in records:
            yield record, convert_image(record, index, options)
        return
    with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="imgcheck") as pool:
        window: collections.deque = collections.deque()
        for record in records:
            window.append((record, pool.submit(convert_image, record, index, options)))
            if len(window) >= 4 * threads:
                done, future = window.popleft()
                yield done, future.result()
        while window:
            done, future = window.popleft()
            yield done, future.result()


class _ReadImages(beam.DoFn):
    """Record -> tf.train.Example (main output) or Outcome ('outcomes')."""

    def __init__(self, options: ImageOptions):
        self._options = options
        self._index = None

    def process(self, record: LabeledImage, vocabulary: list[str]):
        if self._index is None:  # the side input is the same for every element
            self._index = {label: i for i, label in enumerate(vocabulary)}
        result = convert_image(record, self._index, self._options)
        if isinstance(result, Outcome):
            yield beam.pvalue.TaggedOutput("outcomes", result)
        else:
            yield result[0]


class _WriteShard(beam.DoFn):
    """Reads, checks and writes one shard of a split; yields its statistics and rejects."""

    def __init__(self, output_uri: str, options: ImageOptions, progress: bool = False):
        self._output_uri = output_uri
        self._options = options
        self._progress = progress
        self._index = None

    def process(self, element, vocabulary: list[str]):
        (split, shard, num_shards), records = element
        if self._index is None:
            self._index = {label: i for i, label in enumerate(vocabulary)}
        folder = os.path.join(self._output_uri, f"Split-{split}")  # TFX's split folder naming
        tf.io.gfile.makedirs(folder)
        name = f"{DEFAULT_FILE_NAME}-{shard:05d}-of-{num_shards:05d}.gz"
        final = os.path.join(folder, name)
        temporary = os.path.join(folder, f".tmp-{name}")
        stats = collections.Counter()
        classes = collections.Counter()
        formats = collections.Counter()
        orientations = collections.Counter()
        gzip = tf.io.TFRecordOptions(
            compression_type="GZIP", compression_level=self._options.gzip_level
        )
        with tf.io.TFRecordWriter(temporary, options=gzip) as writer:
            # Hash order: a deterministic shuffle, so no shard holds one class in a run.
            ordered = sorted(records, key=lambda r: _path_hash(r.file.path))
            for record, result in _convert_all(ordered, self._index, self._options):
                if isinstance(result, Outcome):
                    yield beam.pvalue.TaggedOutput("outcomes", result)
                    continue
                if self._progress:
                    _progress_bar().update(1)
                example, info = result
                writer.write(example.SerializeToString(deterministic=True))
                stats["examples"] += 1
                classes[record.label_name] += 1
                formats[info.source_format] += 1
                stats["transcoded"] += info.format != info.source_format
                if info.orientation != 1:
                    orientations[str(info.orientation)] += 1
        if stats["examples"]:
            tf.io.gfile.rename(temporary, final, overwrite=True)
        else:
            tf.io.gfile.remove(temporary)
        yield {
            "split": split,
            "examples": stats["examples"],
            "transcoded": stats["transcoded"],
            "orientations": dict(orientations),
            "classes": dict(classes),
            "formats": dict(formats),
        }


# ---------------------------------------------------------------------------------------------
# The plan, shared by the executor and the PTransform of the TFX extension point.


class Plan(NamedTuple):
    records: beam.PCollection  # LabeledImage with its output split
    vocabulary: beam.PCollection  # one element: the sorted label list
    outcomes: beam.PCollection  # Outcome of everything rejected or skipped before reading
    files_seen: beam.PCollection  # one element: the number of entries listed


def plan_images(
    pipeline: beam.Pipeline,
    input_base: str,
    input_config: example_gen_pb2.Input,
    output_config: example_gen_pb2.Output,
    options: ImageOptions,
) -> Plan:
    """Lists, labels and splits every image of every input split, without reading images."""
    ignore = images.ignored_files(options.labels_csv)
    tops = []
    for split in input_config.splits:
        matched = split_tops(input_base, split.pattern)
        if not matched:
            raise ValueError(
                f"input split '{split.name}' pattern '{split.pattern}' matches nothing under "
                f"{input_base}."
            )
        tops.extend((split.name, top) for top in matched)

    listed = (
        pipeline
        | "Tops" >> beam.Create(tops)
        | "ListFiles"
        >> beam.FlatMap(_list_split, root=input_base, ignore=ignore).with_outputs(
            "outcomes", main="files"
        )
    )
    files_seen = (
        (listed.files, listed.outcomes)
        | "AllListed" >> beam.Flatten()
        | "CountSeen" >> beam.combiners.Count.Globally()
    )
    outcome_parts = [listed.outcomes]

    if options.labels_csv:
        id_column, label_column = labels_csv_columns(options)
        rows = (
            pipeline
            | "CsvPath" >> beam.Create([options.labels_csv])
            | "ReadCsv" >> beam.FlatMap(read_labels_csv, id_column, label_column)
        )
        keyed = listed.files | "KeyById" >> beam.Map(lambda f: (images.image_id(f.path), f))
        labeled = (
            {"images": keyed, "labels": rows}
            | "JoinCsv" >> beam.CoGroupByKey()
            | "LabelFromCsv" >> beam.FlatMap(_join_csv).with_outputs("outcomes", main="records")
        )
    else:
        labeled = listed.files | "LabelFromFolder" >> beam.FlatMap(
            _label_from_folder, options.label_level
        ).with_outputs("outcomes", main="records")
    outcome_parts.append(labeled.outcomes)

    unique = (
        labeled.records
        | "KeyByPath" >> beam.Map(lambda r: (r.file.path, r))
        | "GroupByPath" >> beam.GroupByKey()
        | "DropSamePath"
        >> beam.FlatMap(_first_of_same_path).with_outputs("outcomes", main="records")
    )
    outcome_parts.append(unique.outcomes)

    vocabulary = (
        unique.records
        | "LabelNames" >> beam.Map(lambda r: r.label_name)
        | "DistinctLabels" >> beam.Distinct()
        | "Vocabulary" >> beam.combiners.ToList()
        | "SortLabels" >> beam.Map(sort_labels)
    )
    feature_name = partition_feature(options, output_config)
    records = unique.records | "AssignSplit" >> beam.Map(
        _assign_split, feature_name, options.features, output_config
    )
    outcomes = tuple(outcome_parts) | "PlanOutcomes" >> beam.Flatten()
    return Plan(records, vocabulary, outcomes, files_seen)


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def ImageTreeToExample(  # noqa: N802 - Beam's naming for ptransform_fn
    pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str
) -> beam.PCollection:
    """The TFX extension point: the images of one split pattern as tf.train.Examples.

    Labels index the vocabulary of all input splits, so pre-split trees share one vocabulary.
    Rejected files are dropped here; the executor's own `Do` also reports them.
    """
    input_config, output_config, options = read_configs(exec_properties)
    plan = plan_images(
        pipeline,
        exec_properties[standard_component_specs.INPUT_BASE_KEY],
        input_config,
        example_gen_pb2.Output(),  # the base executor partitions
        options,
    )
    wanted = {s.name for s in input_config.splits if s.pattern == split_pattern}
    return (
        plan.records
        | "OfSplit" >> beam.Filter(lambda r: r.file.split in wanted)
        | "ReadImages"
        >> beam.ParDo(_ReadImages(options), beam.pvalue.AsSingleton(plan.vocabulary)).with_outputs(
            "outcomes", main="examples"
        )
    ).examples


# ---------------------------------------------------------------------------------------------
# The report.


def _write_outputs(
    _,
    output_uri: str,
    vocabulary: list[str],
    outcomes: list[Outcome],
    shard_stats: list[dict],
    files_seen: int,
    input_base: str,
    options: ImageOptions,
    split_names: list[str],
) -> None:
    with tf.io.gfile.GFile(os.path.join(output_uri, LABELS_FILE), "w") as f:
        f.write("".join(f"{label}\n" for label in vocabulary))
    outcomes = sorted(outcomes, key=lambda o: (o.status, o.path, o.reason))
    # One write, even of nothing: GFile creates a file only on its first write, and every output
    # the README lists must exist on every run.
    with tf.io.gfile.GFile(os.path.join(output_uri, REJECTS_FILE), "w") as f:
        f.write("".join(json.dumps(o._asdict(), ensure_ascii=False) + "\n" for o in outcomes))
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
    by_status = {
        s: collections.Counter() for s in (images.REJECTED, images.SKIPPED, images.CSV_ROW)
    }
    for o in outcomes:
        by_status[o.status][o.reason] += 1
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


def read_report(examples_uri: str) -> dict:
    """The conversion report (counts, splits, classes, reasons) of an Examples artifact."""
    with tf.io.gfile.GFile(os.path.join(examples_uri, REPORT_FILE)) as f:
        return json.load(f)


def read_vocabulary(examples_uri: str) -> list[str]:
    """The label vocabulary of an Examples artifact: label index i names vocabulary[i]."""
    with tf.io.gfile.GFile(os.path.join(examples_uri, LABELS_FILE)) as f:
        return [line.rstrip("\n") for line in f if line.rstrip("\n")]


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
            f"warning: {len(labels)} of {report['num_classes']} classes have no {split} "
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


# ---------------------------------------------------------------------------------------------


class Executor(BaseExampleGenExecutor):
    """ImageExampleGen's executor."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 - TFX's API
        return ImageTreeToExample

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        input_config, output_config, options = read_configs(exec_properties)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        split_names = example_gen_utils.generate_output_split_names(input_config, output_config)
        artifact = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY]
        )
        artifact.split_names = artifact_utils.encode_split_names(split_names)
        output_uri = artifact.uri

        with self._make_beam_pipeline() as pipeline:
            plan = plan_images(pipeline, input_base, input_config, output_config, options)
            counts = (
                plan.records
                | "SplitOf" >> beam.Map(lambda r: r.split)
                | "CountPerSplit" >> beam.combiners.Count.PerElement()
            )
            written = (
                plan.records
                | "ShardKey"
                >> beam.Map(_shard_key, beam.pvalue.AsDict(counts), options.images_per_shard)
                | "GroupShards" >> beam.GroupByKey()
                | "WriteShards"
                >> beam.ParDo(
                    _WriteShard(output_uri, options, progress=sys.stderr.isatty()),
                    beam.pvalue.AsSingleton(plan.vocabulary),
                ).with_outputs("outcomes", main="stats")
            )
            outcomes = (plan.outcomes, written.outcomes) | "AllOutcomes" >> beam.Flatten()
            _ = (
                pipeline
                | "Once" >> beam.Create([None])
                | "WriteReport"
                >> beam.Map(
                    _write_outputs,
                    output_uri=output_uri,
                    vocabulary=beam.pvalue.AsSingleton(plan.vocabulary),
                    outcomes=beam.pvalue.AsList(outcomes),
                    shard_stats=beam.pvalue.AsList(written.stats),
                    files_seen=beam.pvalue.AsSingleton(plan.files_seen),
                    input_base=input_base,
                    options=options,
                    split_names=split_names,
                )
            )

        _close_progress_bar()
        examples_utils.set_payload_format(artifact, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(
            artifact, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP)
        )
        report = read_report(output_uri)
        for key in ("files_seen", "examples", "rejected", "skipped", "num_classes"):
            artifact.set_int_custom_property(key, int(report[key]))
        for split, n in report["splits"].items():
            artifact.set_int_custom_property(f"examples_{split}", n)
        artifact.set_string_custom_property(
            "label_vocabulary", os.path.join(output_uri, LABELS_FILE)
        )
        logging.info(
            "ImageExampleGen: %d files seen, %d examples %s, %d rejected, %d skipped.",
            report["files_seen"],
            report["examples"],
            report["splits"],
            report["rejected"],
            report["skipped"],
        )
        for line in split_warnings(report):
            logging.warning("ImageExampleGen: %s", line)
        check_report(report, options)
