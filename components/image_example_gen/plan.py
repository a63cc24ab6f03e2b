"""The plan: list, label (folder or CSV join), drop same-path duplicates, check every image
once (checking.py), group copies of one picture (duplicates.py), split (splits.py), sum up
(summary.py). plan_images composes those named stages; what each does is in its transform.

What travels between the steps is paths and verdicts, never images: every image is read to be
checked, and again when its shard is written (shards.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

import apache_beam as beam
from tfx.proto import example_gen_pb2

from imgtfx.components.image_example_gen import (
    checking,
    duplicates,
    labeling,
    labels_csv,
    sorted_runs,
    splits,
    summary,
    tree,
)
from imgtfx.components.image_example_gen.duplicates_jsonl import (
    encode_line,
    group_line,
    line_key,
    member,
)
from imgtfx.components.image_example_gen.options import ImageOptions
from imgtfx.components.image_example_gen.records import as_tuple
from imgtfx.components.image_example_gen.tree import FoundFile


class Plan(NamedTuple):
    records: beam.PCollection  # checked LabeledImage with its output split
    vocabulary: beam.PCollection  # one element: the sorted label list
    split_counts: beam.PCollection  # one element: {split: number of planned images}
    outcomes: beam.PCollection  # Outcome of everything rejected or skipped before writing
    files_seen: beam.PCollection  # one element: the number of entries listed
    moved: beam.PCollection  # one element: images moved so that their class is in every split
    label_names: beam.PCollection  # one element: a display name per label, aligned with vocabulary
    duplicate_runs: beam.PCollection  # paths of sorted runs of duplicates.jsonl's lines


def plan_images(
    pipeline: beam.Pipeline,
    input_base: str,
    input_config: example_gen_pb2.Input,
    output_config: example_gen_pb2.Output,
    options: ImageOptions,
    runs_folder: str,
    show_bar: bool = False,
) -> Plan:
    """Lists, labels, checks, groups and splits every image of every input split.

    Args:
      runs_folder: where duplicates.jsonl's sorted runs and the copies' band entries are
        written (a temporary folder of the output).
      show_bar: a progress bar of the images checked, on a terminal.

    Raises:
      ValueError: an empty root, or an input split's pattern that matches nothing.
    """
    tops = input_tops(input_base, input_config)
    if options.label_names_csv:  # a missing file fails here, before any work
        labels_csv.check_label_names_csv(options.label_names_csv)
    listed = pipeline | "List" >> ListFiles(tops, input_base, options)
    labeled = listed["files"] | "Label" >> labeling.LabelImages(options)
    checked = labeled["records"] | "CheckImages" >> beam.ParDo(
        checking.CheckImages(options, show_bar)
    ).with_outputs("outcomes", main="records")
    outcome_parts = [listed["outcomes"], labeled["outcomes"], checked.outcomes]
    records, dropped = checked.records, []
    feature_name = options.partition_feature(output_config)
    splits.check_partition_feature(feature_name, options.features)
    summed = labeled["records"] | "Summarize" >> summary.Summarize(
        bool(options.labels_csv), options.label_names_csv
    )
    label_indexes = None  # the vocabulary's index of each label: splits on `label` need it
    if feature_name == options.features.label:
        label_indexes = beam.pvalue.AsDict(
            summed["vocabulary"]
            | "LabelIndexes" >> beam.FlatMap(lambda names: ((n, i) for i, n in enumerate(names)))
        )
    if options.dedupe != "off":
        copies = duplicates.find_copies(
            records, options, feature_name, f"{runs_folder}/bands", label_indexes
        )
        records, dropped = copies.records, [copies.dropped]
        outcome_parts.append(copies.outcomes)
    records = records | "Split" >> AssignSplits(feature_name, options, output_config, label_indexes)
    counted = records | "CountSplits" >> summary.CountSplits()
    duplicate_runs = (records, *dropped) | "DuplicateRuns" >> DuplicateRuns(runs_folder)
    return Plan(
        records,
        summed["vocabulary"],
        counted["split_counts"],
        tuple(outcome_parts) | "PlanOutcomes" >> beam.Flatten(),
        listed["seen"],
        counted["moved"],
        summed["label_names"],
        duplicate_runs,
    )


def input_tops(input_base: str, input_config: example_gen_pb2.Input) -> list[tuple[str, str]]:
    """(split name, top folder or file) of every input split's pattern under `input_base`.

    Raises:
      ValueError: the root is empty, or a split's pattern matches nothing.
    """
    tops = []
    for split in input_config.splits:
        matched = tree.split_tops(input_base, split.pattern)
        if not matched and split.pattern == "*":  # the default: one split of the whole tree
            raise ValueError(f"image root {input_base} is empty.")
        if not matched:
            raise ValueError(
                f"input split '{split.name}' pattern '{split.pattern}' matches nothing under "
                f"{input_base}."
            )
        tops.extend((split.name, top) for top in matched)
    return tops


class ListFiles(beam.PTransform):
    """The pipeline's root -> {"files": FoundFile, "outcomes": Outcome (skipped entries),
    "seen": the number of entries listed}: every entry under the input splits' tops; a remote
    top's sub-folders each listed by whichever worker gets it (a local tree is walked whole)."""

    def __init__(self, tops: list[tuple[str, str]], input_base: str, options: ImageOptions):
        super().__init__()
        self._tops, self._root = tops, input_base
        self._ignore = tree.ignored_files(options.labels_csv, options.label_names_csv)
        self._follow = options.follow_external_links

    def expand(self, pipeline):
        in_tops = (
            pipeline
            | "Tops" >> beam.Create(self._tops)
            | "Walk"
            >> beam.FlatMap(
                _list_split, root=self._root, ignore=self._ignore, follow_external=self._follow
            ).with_outputs("outcomes", "folders", main="files")
        )
        below = (
            in_tops.folders
            | "SpreadFolders" >> beam.Reshuffle()
            | "ListFolders"
            >> beam.FlatMap(_list_remote_folder, root=self._root, ignore=self._ignore).with_outputs(
                "outcomes", main="files"
            )
        )
        files = (in_tops.files, below.files) | "Files" >> beam.Flatten()
        outcomes = (in_tops.outcomes, below.outcomes) | "Outcomes" >> beam.Flatten()
        seen = (
            (files, outcomes)
            | "All" >> beam.Flatten()
            | "CountSeen" >> beam.combiners.Count.Globally()
        )
        return {"files": files, "outcomes": outcomes, "seen": seen}


def _list_split(
    split_and_top: tuple[str, str], root: str, ignore: frozenset[str], follow_external: bool
) -> Iterator:
    split, top = split_and_top
    entries = tree.walk(split, root, top, ignore, follow_external, fan_out=True)
    yield from _tagged(entries)


def _list_remote_folder(folder: tuple[str, str], root: str, ignore: frozenset[str]) -> Iterator:
    split, uri = folder
    yield from _tagged(tree.remote_folder(split, root, uri, ignore))


def _tagged(entries: Iterable) -> Iterator:
    for entry in entries:
        if isinstance(entry, FoundFile):
            yield entry
        elif isinstance(entry, tree.RemoteFolder):
            yield beam.pvalue.TaggedOutput("folders", tuple(entry))
        else:
            yield beam.pvalue.TaggedOutput("outcomes", entry)


class AssignSplits(beam.PTransform):
    """Checked records -> the same with their output split: TFX's hash split on the partition
    feature (splits.assign_split; `label_indexes`, a side input of the vocabulary's indexes,
    for a split on `label`), then, unless whole classes go to one split, each class moved into
    every split it is missing from (splits.cover_splits)."""

    def __init__(self, feature_name: str, options: ImageOptions, output_config, label_indexes):
        super().__init__()
        self._feature, self._options, self._output = feature_name, options, output_config
        self._label_indexes = label_indexes  # a side input, or None

    def expand(self, records):
        split_config = self._output.split_config
        records = records | "Assign" >> beam.Map(
            splits.assign_split,
            self._feature,
            self._options.features,
            self._output,
            splits.bucket_bounds(split_config),
            self._label_indexes,
        )
        if (
            self._options.cover_every_split
            and len(split_config.splits) > 1
            and not splits.whole_classes(self._feature, self._options.features)
        ):
            records = (
                records
                | "KeyByLabel" >> beam.Map(lambda r: (r.label_name, as_tuple(r)))
                | "GroupByLabel" >> beam.GroupByKey()
                | "CoverEverySplit" >> beam.FlatMap(splits.cover_splits, split_config)
            )
        return records


class DuplicateRuns(beam.PTransform):
    """(kept records, dropped copies...) -> paths of sorted runs of duplicates.jsonl's lines,
    one line a group of copies, written under `runs_folder` (sorted_runs.py)."""

    def __init__(self, runs_folder: str):
        super().__init__()
        self._folder = runs_folder

    def expand(self, parts):
        return (
            parts
            | "All" >> beam.Flatten()
            | "Grouped" >> beam.Filter(lambda r: bool(r.group))
            | "ByGroup" >> beam.Map(member)
            | "Groups" >> beam.GroupByKey()
            | "GroupLines" >> beam.Map(group_line)
            | "Runs" >> beam.ParDo(sorted_runs.WriteRuns(self._folder, line_key, encode_line))
        )
