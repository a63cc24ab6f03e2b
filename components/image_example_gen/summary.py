"""What the plan sums up in one pass over its records: the label vocabulary and each label's
display name (Summarize), and the splits' sizes with how many images coverage moved
(CountSplits)."""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable

import apache_beam as beam

from imgtfx.components.examples.vocabulary import label_problem
from imgtfx.components.image_example_gen import labels_csv, tree
from imgtfx.components.image_example_gen.records import LabeledImage


class Summarize(beam.PTransform):
    """Labelled records -> {"vocabulary": [labels], "label_names": [names]} (one element
    each), display names from the folders and the names CSV (`label_names_csv`)."""

    def __init__(self, folder_names: bool, label_names_csv: str | None):
        super().__init__()
        self._folder_names, self._names_csv = folder_names, label_names_csv

    def expand(self, records):
        summary = records | "Combine" >> beam.CombineGlobally(_Summary(self._folder_names))
        return {
            "vocabulary": summary | "Vocabulary" >> beam.Map(lambda s: s["vocabulary"]),
            "label_names": summary | "LabelNames" >> beam.Map(_with_names_csv, self._names_csv),
        }


class CountSplits(beam.PTransform):
    """Final records -> {"split_counts": {split: n}, "moved": n} (one element each)."""

    def expand(self, records):
        counted = records | "Combine" >> beam.CombineGlobally(_SplitCounts())
        return {
            "split_counts": counted | "SplitCounts" >> beam.Map(lambda c: c[0]),
            "moved": counted | "Moved" >> beam.Map(lambda c: c[1]),
        }


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
