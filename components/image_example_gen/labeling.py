"""Labelling listed files: from their folder (`label_level`), or by joining the labels CSV on
the image id. Either way one grouping also drops same-path duplicates (NFC and NFD spellings of
one name), and every file that gets no label gets its reason."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import apache_beam as beam

from imgtfx.components.examples import reasons
from imgtfx.components.examples.reasons import Outcome
from imgtfx.components.examples.vocabulary import label_problem
from imgtfx.components.image_example_gen import labels_csv, tree
from imgtfx.components.image_example_gen.options import ImageOptions
from imgtfx.components.image_example_gen.records import LabeledImage
from imgtfx.components.image_example_gen.tree import FoundFile


class LabelImages(beam.PTransform):
    """FoundFile -> {"records": LabeledImage, "outcomes": Outcome}: one image a label (CSV) or
    a path (folders), the rest with their reasons."""

    def __init__(self, options: ImageOptions):
        super().__init__()
        self._options = options

    def expand(self, files):
        options = self._options
        if options.labels_csv:  # one grouping by id: the join, and same-path duplicates
            id_column, label_column = labels_csv.labels_csv_columns(options)
            rows = (
                files.pipeline
                | "CsvPath" >> beam.Create([options.labels_csv])
                | "ReadCsv" >> beam.FlatMap(labels_csv.read_labels_csv, id_column, label_column)
            )
            keyed = files | "KeyById" >> beam.Map(lambda f: (tree.image_id(f.path), tuple(f)))
            labeled = (
                {"images": keyed, "labels": rows}
                | "JoinCsv" >> beam.CoGroupByKey()
                | "LabelFromCsv" >> beam.FlatMap(join_csv).with_outputs("outcomes", main="records")
            )
            return {"records": labeled.records, "outcomes": labeled.outcomes}
        unique = (  # one grouping by path: same-path duplicates; the label is in the path
            files
            | "KeyByPath" >> beam.Map(lambda f: (f.path, tuple(f)))
            | "GroupByPath" >> beam.GroupByKey()
            | "DropSamePath"
            >> beam.FlatMap(first_of_same_path).with_outputs("outcomes", main="files")
        )
        labeled = unique.files | "LabelFromFolder" >> beam.FlatMap(
            label_from_folder, options.label_level
        ).with_outputs("outcomes", main="records")
        outcomes = (unique.outcomes, labeled.outcomes) | "Outcomes" >> beam.Flatten()
        return {"records": labeled.records, "outcomes": outcomes}


def label_from_folder(found: FoundFile, level: int) -> Iterator:
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


def join_csv(element: tuple[str, dict[str, list]]) -> Iterator:
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


def first_of_same_path(element: tuple[str, Iterable[FoundFile]]) -> Iterator:
    """Folder labels: keeps one file per NFC path (NFC and NFD spellings are one name)."""
    _, group = element
    (same_path,) = _by_path(FoundFile(*f) for f in group)
    yield same_path[0]
    yield from _same_path_outcomes(same_path)
