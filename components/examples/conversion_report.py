"""report.json, the conversion's report, as one typed record (ConversionReport), and the two
line files beside it read back: rejects.jsonl and duplicates.jsonl.

report.json (written by ImageExampleGen's outputs.py, read by the pipeline's summary, the HTML
report, the Trainer and `imgtfx convert`): files_seen, examples, rejected, skipped and whether
they reconcile; examples per split and per class and split; the classes a split has no example
of; counts per reject and skip reason, per source format and EXIF orientation; the groups of
copies of one picture (duplicate_groups, duplicate_images, exact_groups, cross_label_groups,
straddling_groups, the first few of the last two kinds); the conversion's options (their
`features` name the examples' features).

duplicates.jsonl: a line per group of copies, its first image first: kind ("exact": the same
image data, "near": within duplicate_threshold_bits of the first image's fingerprint), paths,
labels, splits (or "skipped: ..." / "rejected: ..." for a copy kept out), distances (bits from
the first image), max_distance.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from typing import Any

from imgtfx.components.examples.layout import DUPLICATES_FILE, REJECTS_FILE, REPORT_FILE
from imgtfx.components.examples.reasons import Outcome


@dataclasses.dataclass(frozen=True)
class ConversionReport:
    """report.json's fields, in its order. Fields an older report lacks take their defaults."""

    image_root: str
    labels_csv: str | None
    files_seen: int
    examples: int
    rejected: int
    skipped: int
    reconciled: bool  # files_seen == examples + rejected + skipped
    csv_ids_without_image: int = 0
    num_classes: int = 0
    splits: dict[str, int] = dataclasses.field(default_factory=dict)
    # Images moved out of their hash split so that their class has one in every split.
    moved_to_cover_classes: int = 0
    classes: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    # Labels a split got no example of: a class without train examples cannot be learned, one
    # without eval examples is not measured.
    classes_without_examples: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    rejected_by_reason: dict[str, int] = dataclasses.field(default_factory=dict)
    skipped_by_reason: dict[str, int] = dataclasses.field(default_factory=dict)
    source_formats: dict[str, int] = dataclasses.field(default_factory=dict)
    transcoded: int = 0
    # Photos stored sideways (EXIF orientation tag -> count), written upright.
    turned_upright: int = 0
    exif_orientations: dict[str, int] = dataclasses.field(default_factory=dict)
    duplicate_groups: int = 0
    duplicate_images: int = 0
    exact_groups: int = 0
    cross_label_groups: int = 0
    straddling_groups: int = 0
    duplicate_threshold_bits: int = 0
    cross_label_examples: list[list[str]] = dataclasses.field(default_factory=list)
    straddling_examples: list[list[str]] = dataclasses.field(default_factory=list)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, indent=2)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ConversionReport:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def read_report(examples_uri: str) -> ConversionReport:
    """The conversion report of an Examples artifact (or an `imgtfx convert` folder)."""
    import tensorflow as tf

    with tf.io.gfile.GFile(os.path.join(examples_uri, REPORT_FILE)) as f:
        return ConversionReport.from_dict(json.load(f))


def write_report(examples_uri: str, report: ConversionReport) -> None:
    import tensorflow as tf

    with tf.io.gfile.GFile(os.path.join(examples_uri, REPORT_FILE), "w") as f:
        f.write(report.to_json())


def iter_rejects(examples_uri: str) -> Iterator[Outcome]:
    """rejects.jsonl's records, in its order (status, then path), streamed; none where an older
    artifact has no file."""
    return (Outcome(**record) for record in _json_lines(examples_uri, REJECTS_FILE))


def iter_duplicates(examples_uri: str) -> Iterator[dict]:
    """duplicates.jsonl's groups, in its order (by first path), streamed; none where an older
    artifact has no file."""
    return _json_lines(examples_uri, DUPLICATES_FILE)


def _json_lines(examples_uri: str, name: str) -> Iterator[dict]:
    import tensorflow as tf

    path = os.path.join(examples_uri, name)
    if not tf.io.gfile.exists(path):
        return
    with tf.io.gfile.GFile(path) as f:
        for line in f:
            yield json.loads(line)
