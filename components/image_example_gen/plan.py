"""The plan: list, label (folder or CSV join), drop same-path duplicates, check every image
once (checking.py), group copies of one picture (duplicates.py), split (splits.py).

What travels between the steps is paths and verdicts, never images: every image is read to be
checked, and again when its shard is written (shards.py).
"""

from __future__ import annotations

import collections
import re
import tempfile
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import apache_beam as beam
from tfx.proto import example_gen_pb2

from components.examples import reasons
from components.examples.reasons import Outcome
from components.examples.vocabulary import label_problem
from components.image_example_gen import checking, duplicates, labels_csv, sorted_runs, splits, tree
from components.image_example_gen.duplicate_lines import encode_line, group_line, line_key, member
from components.image_example_gen.options import ImageOptions
from components.image_example_gen.records import LabeledImage, as_tuple
from components.image_example_gen.tree import FoundFile


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


def _label_from_folder(found: FoundFile, level: int) -> Iterator:
    label = tree.folder_label(found.path, level)
    if label is None:
        yield beam.pvalue.TaggedOutput(
            "outcomes",
            Outcome(found.path, reasons.REJECTED, reasons.NO_LABEL_FOLDER, f"label_level={level}"),
        )
    elif label_problem(label):
        yield beam.pvalue.TaggedOutput(
            "outcomes",
            Outcome(found.path, reasons.REJECTED, label_problem(label), f"folder {label!r}"),
        )
    else:
        yield LabeledImage(found, tree.image_id(found.path), label)


def _join_csv(element: tuple[str, dict[str, list]]) -> Iterator:
    """One image id's files and CSV labels -> at most one LabeledImage; every other file gets
    its reason. NFC and NFD spellings of one name share the id, so this one grouping also
    drops same-path duplicates: no second shuffle by path is needed."""
    image_id, groups = element
    labels = sorted(set(groups["labels"]))
    files = [FoundFile(*f) for f in groups["images"]]  # tuples in the shuffle, as as_tuple
    if not files:
        yield beam.pvalue.TaggedOutput(
            "outcomes", Outcome(image_id, reasons.CSV_ROW, reasons.CSV_ID_WITHOUT_IMAGE)
        )
        return
    found = []
    for same_path in _by_path(files):
        found.append(same_path[0])
        yield from _same_path_outcomes(same_path)
    if not labels or len(labels) > 1 or label_problem(labels[0]):
        if not labels and all(tree.other_extension(f.path) for f in found):
            # notes.txt, a CSV, a README inside the tree: not an image, whatever its id
            reason, detail = (
                reasons.NOT_AN_IMAGE,
                "not an image file name, and no row in the labels CSV",
            )
        elif not labels:
            reason, detail = reasons.ID_NOT_IN_CSV, ""
        elif len(labels) > 1:
            reason, detail = reasons.CONFLICTING_LABELS, f"labels {labels}"
        else:
            reason, detail = label_problem(labels[0]), f"CSV label {labels[0]!r}"
        for f in found:
            yield beam.pvalue.TaggedOutput(
                "outcomes", Outcome(f.path, reasons.REJECTED, reason, detail)
            )
        return
    yield LabeledImage(found[0], image_id, labels[0])
    for duplicate in found[1:]:
        yield beam.pvalue.TaggedOutput(
            "outcomes",
            Outcome(
                duplicate.path, reasons.REJECTED, reasons.DUPLICATE_ID, f"kept {found[0].path}"
            ),
        )


def _by_path(files: Iterable[FoundFile]) -> list[list[FoundFile]]:
    """Files grouped by their (NFC) path, each group and the groups in a stable order."""
    groups: dict[str, list[FoundFile]] = {}
    for f in files:
        groups.setdefault(f.path, []).append(f)
    return [sorted(groups[path], key=lambda f: f.uri) for path in sorted(groups)]


def _same_path_outcomes(same_path: list[FoundFile]) -> Iterator:
    for duplicate in same_path[1:]:
        yield beam.pvalue.TaggedOutput(
            "outcomes",
            Outcome(
                duplicate.path,
                reasons.REJECTED,
                reasons.DUPLICATE_PATH,
                f"{duplicate.uri} is named as {same_path[0].uri} after Unicode NFC",
            ),
        )


def _first_of_same_path(element: tuple[str, Iterable[FoundFile]]) -> Iterator:
    """Folder labels: keeps one file per NFC path (NFC and NFD spellings are one name)."""
    _, group = element
    (same_path,) = _by_path(FoundFile(*f) for f in group)
    yield same_path[0]
    yield from _same_path_outcomes(same_path)


_NUMBER = re.compile(r"-?\d+")


def sort_labels(labels: Iterable[str]) -> list[str]:
    """Sorted label vocabulary: numerically when every label is an integer, else by text."""
    labels = sorted(set(labels))
    if labels and all(_NUMBER.fullmatch(label) for label in labels):
        return sorted(labels, key=int)
    return labels


FOLDERS_KEPT = 2  # per label: one folder names it, two say it has no folder name


class _Summary(beam.CombineFn):
    """One pass over the labelled records: the label set and, with CSV labels, the folders
    holding each label's images (at most FOLDERS_KEPT distinct a label, so memory follows the
    labels, not the images). Every labelled file's label is in the vocabulary, also of one
    whose images are all rejected later (report.json says it has no example)."""

    def __init__(self, folder_names: bool = False):
        self._folder_names = folder_names

    def create_accumulator(self):
        return {}

    def add_input(self, labels, record: LabeledImage):
        folders = labels.setdefault(record.label_name, [])
        if self._folder_names and len(folders) < FOLDERS_KEPT:
            folder = tree.folder_label(record.file.path, -1) or ""
            if folder not in folders:
                folders.append(folder)
        return labels

    def merge_accumulators(self, accumulators):
        labels = {}
        for more_labels in accumulators:
            for label, more_folders in more_labels.items():
                folders = labels.setdefault(label, [])
                for folder in more_folders:
                    if len(folders) < FOLDERS_KEPT and folder not in folders:
                        folders.append(folder)
        return labels

    def extract_output(self, labels):
        vocabulary = sort_labels(labels)
        return {"vocabulary": vocabulary, "label_names": folder_names(vocabulary, labels)}


class _SplitCounts(beam.CombineFn):
    """The split's sizes of the final records, and how many coverage moved."""

    def create_accumulator(self):
        return {}, 0

    def add_input(self, accumulator, record: LabeledImage):
        counts, moved = accumulator
        counts[record.split] = counts.get(record.split, 0) + 1
        return counts, moved + record.moved

    def merge_accumulators(self, accumulators):
        counts, moved = {}, 0
        for more_counts, more_moved in accumulators:
            moved += more_moved
            for split, n in more_counts.items():
                counts[split] = counts.get(split, 0) + n
        return counts, moved

    def extract_output(self, accumulator):
        return accumulator


def folder_names(vocabulary: list[str], folders: dict[str, list[str]]) -> list[str]:
    """Display names aligned with `vocabulary`: the one folder holding all of a label's images,
    else the label. A folder that holds several labels (a flat `train/`, two landmarks of one
    name in two cities) names none of them: a name must tell its label apart."""
    only = {label: f[0] for label, f in folders.items() if len(f) == 1 and f[0]}
    shared = collections.Counter(only.values())
    return [
        only[label]
        if label in only and shared[only[label]] == 1 and not label_problem(only[label])
        else label
        for label in vocabulary
    ]


def _with_names_csv(summary: dict, label_names_csv: str | None) -> list[str]:
    """The summary's display names, each overridden by the names CSV's row for its label; a
    blank name or one holding a line break or control character keeps the label's own."""
    names = summary["label_names"]
    if not label_names_csv:
        return names
    listed = labels_csv.read_label_names_csv(label_names_csv, summary["vocabulary"])
    return [
        listed[label] if label in listed and not label_problem(listed[label]) else name
        for label, name in zip(summary["vocabulary"], names, strict=True)
    ]


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
    runs_folder: str | None = None,
    show_bar: bool = False,
) -> Plan:
    """Lists, labels, checks, groups and splits every image of every input split.

    Args:
      runs_folder: where duplicates.jsonl's sorted runs and the copies' band entries are
        written (a temporary folder of the output); None: a new temporary folder.
      show_bar: a progress bar of the images checked, on a terminal.
    """
    ignore = tree.ignored_files(options.labels_csv, options.label_names_csv)
    if options.label_names_csv:  # a missing file fails here, before any work
        labels_csv.check_label_names_csv(options.label_names_csv)
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

    in_tops = (
        pipeline
        | "Tops" >> beam.Create(tops)
        | "ListFiles"
        >> beam.FlatMap(
            _list_split,
            root=input_base,
            ignore=ignore,
            follow_external=options.follow_external_links,
        ).with_outputs("outcomes", "folders", main="files")
    )
    # A remote top's sub-folders, each listed by whichever worker gets it (a local tree has
    # none here: it is walked whole).
    below = (
        in_tops.folders
        | "SpreadFolders" >> beam.Reshuffle()
        | "ListFolders"
        >> beam.FlatMap(_list_remote_folder, root=input_base, ignore=ignore).with_outputs(
            "outcomes", main="files"
        )
    )
    listed_files = (in_tops.files, below.files) | "ListedFiles" >> beam.Flatten()
    listed_outcomes = (in_tops.outcomes, below.outcomes) | "ListedOutcomes" >> beam.Flatten()
    files_seen = (
        (listed_files, listed_outcomes)
        | "AllListed" >> beam.Flatten()
        | "CountSeen" >> beam.combiners.Count.Globally()
    )
    outcome_parts = [listed_outcomes]

    if options.labels_csv:  # one grouping by id: the join, and same-path duplicates
        id_column, label_column = labels_csv.labels_csv_columns(options)
        rows = (
            pipeline
            | "CsvPath" >> beam.Create([options.labels_csv])
            | "ReadCsv" >> beam.FlatMap(labels_csv.read_labels_csv, id_column, label_column)
        )
        keyed = listed_files | "KeyById" >> beam.Map(lambda f: (tree.image_id(f.path), tuple(f)))
        labeled = (
            {"images": keyed, "labels": rows}
            | "JoinCsv" >> beam.CoGroupByKey()
            | "LabelFromCsv" >> beam.FlatMap(_join_csv).with_outputs("outcomes", main="records")
        )
        outcome_parts.append(labeled.outcomes)
    else:  # one grouping by path: same-path duplicates; the label is in the path
        unique = (
            listed_files
            | "KeyByPath" >> beam.Map(lambda f: (f.path, tuple(f)))
            | "GroupByPath" >> beam.GroupByKey()
            | "DropSamePath"
            >> beam.FlatMap(_first_of_same_path).with_outputs("outcomes", main="files")
        )
        labeled = unique.files | "LabelFromFolder" >> beam.FlatMap(
            _label_from_folder, options.label_level
        ).with_outputs("outcomes", main="records")
        outcome_parts.extend([unique.outcomes, labeled.outcomes])

    checked = labeled.records | "CheckImages" >> beam.ParDo(
        checking.CheckImages(options, show_bar)
    ).with_outputs("outcomes", main="records")
    outcome_parts.append(checked.outcomes)
    records = checked.records
    feature_name = options.partition_feature(output_config)
    runs_folder = runs_folder or tempfile.mkdtemp(prefix="imgtfx-duplicates-")
    dropped = []
    if options.dedupe != "off":
        copies = duplicates.find_copies(records, options, feature_name, f"{runs_folder}/bands")
        records, dropped = copies.records, [copies.dropped]
        outcome_parts.append(copies.outcomes)
    split_config = output_config.split_config
    records = records | "AssignSplit" >> beam.Map(
        splits.assign_split,
        feature_name,
        options.features,
        output_config,
        splits.bucket_bounds(split_config),
    )
    if (
        options.cover_every_split
        and len(split_config.splits) > 1
        and feature_name != options.features.label_name  # whole classes per split: nothing to do
    ):
        records = (
            records
            | "KeyByLabel" >> beam.Map(lambda r: (r.label_name, as_tuple(r)))
            | "GroupByLabel" >> beam.GroupByKey()
            | "CoverEverySplit" >> beam.FlatMap(splits.cover_splits, split_config)
        )
    summary = labeled.records | "Summarize" >> beam.CombineGlobally(
        _Summary(bool(options.labels_csv))
    )
    vocabulary = summary | "Vocabulary" >> beam.Map(lambda s: s["vocabulary"])
    label_names = summary | "LabelNames" >> beam.Map(_with_names_csv, options.label_names_csv)
    counted = records | "CountSplits" >> beam.CombineGlobally(_SplitCounts())
    split_counts = counted | "SplitCounts" >> beam.Map(lambda c: c[0])
    moved = counted | "Moved" >> beam.Map(lambda c: c[1])
    outcomes = tuple(outcome_parts) | "PlanOutcomes" >> beam.Flatten()
    duplicate_runs = (
        (records, *dropped)
        | "AllKept" >> beam.Flatten()
        | "Grouped" >> beam.Filter(lambda r: bool(r.group))
        | "ByGroup" >> beam.Map(member)
        | "Groups" >> beam.GroupByKey()
        | "GroupLines" >> beam.Map(group_line)
        | "GroupRuns"
        >> beam.ParDo(
            sorted_runs.WriteRuns(
                runs_folder,
                line_key,
                encode_line,
            )
        )
    )
    return Plan(
        records, vocabulary, split_counts, outcomes, files_seen, moved, label_names, duplicate_runs
    )
