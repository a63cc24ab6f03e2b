"""What the report shows, as plain data: `read.py` fills it from a run's artifacts, `render.py`
turns it into the page. Nothing here imports TensorFlow, so the page can be rendered (and
tested) from hand-made results.

Everything is already cut to what the page shows (the first rejects of each reason, a few
thumbnails per class, the worst slices), so a run of millions of images reads into a few MB.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from imgtfx.components.examples.conversion_report import ConversionReport
from imgtfx.pipeline.run_summary import RunSummary

SAMPLES_PER_CLASS = 6
MAX_CLASSES_SHOWN = 30  # above this, per-class plots and tables become summaries
LIST_SHOWN = 20  # rows of each "fewest", "worst" and "most confused" table
REJECTS_SHOWN = 200  # files listed per reject reason
MAX_EVAL_PREDICTED = 5000
WORST_SHOWN = 12
THUMBNAIL = 96  # pixels on the longer side
LARGEST_GROUPS_SHOWN = 8  # groups of copies shown by size
CROSS_LABEL_SHOWN = 12  # groups of copies under two or more labels shown
MEMBERS_SHOWN = 5  # thumbnails of each group shown


@dataclasses.dataclass
class RejectGroup:
    """The files rejected (or skipped) for one reason: how many, and the first REJECTS_SHOWN."""

    status: str
    reason: str
    count: int
    files: list[tuple[str, str]]  # (path, detail)


@dataclasses.dataclass
class Dataset:
    """ImageExampleGen's account of the tree."""

    report: ConversionReport  # its report.json: counts per split and class, options, reconciliation
    names: dict[str, str]  # label -> display name, in the vocabulary's order
    warnings: list[str]  # split warnings (classes without eval examples, ...)
    rejects: list[RejectGroup]  # sorted by (status, reason)


@dataclasses.dataclass
class Samples:
    """Train images per class, as the trainer decodes them, made thumbnail-sized."""

    per_class: dict[str, list[np.ndarray]]  # label -> HxWx3 uint8; vocabulary order, capped
    classes_seen: int  # classes among the train examples read (more than shown when capped)


@dataclasses.dataclass
class FeatureStatistics:
    """One feature of one split, from TFDV."""

    name: str
    kind: str  # "number", "text", "bytes" (bytes_stats) or "encoded" (image bytes as strings)
    missing: int
    minimum: float | None = None
    maximum: float | None = None
    mean: float | None = None
    unique: int | None = None  # None: not counted (one value per example, e.g. id and path)
    top: list[str] = dataclasses.field(default_factory=list)
    average_length: float | None = None


@dataclasses.dataclass
class SplitStatistics:
    split: str
    examples: int
    features: list[FeatureStatistics]


@dataclasses.dataclass
class Anomaly:
    split: str
    feature: str
    short: str
    detail: str


@dataclasses.dataclass
class Statistics:
    splits: list[SplitStatistics]
    anomalies: list[Anomaly]


@dataclasses.dataclass
class Slices:
    """TFMA's metrics: overall, then the class slices the page lists, in the order it lists
    them (all of them by name when few, else the LIST_SHOWN with the lowest accuracy)."""

    overall: dict[str, float] | None
    rows: list[tuple[str, dict[str, float]]]
    total: int  # class slices in the result


@dataclasses.dataclass
class Mistake:
    confidence: float
    true: int  # vocabulary index
    predicted: int
    thumbnail: np.ndarray
    path: str


@dataclasses.dataclass
class Predictions:
    """The trained model over (up to MAX_EVAL_PREDICTED) eval examples: (true, predicted) pair
    counts, so no n x n matrix of n classes, and the most confident mistakes, worst first."""

    labels: list[str]  # the vocabulary
    names: list[str]  # display name per label
    pairs: collections.Counter  # (true index, predicted index) -> eval images
    seen: int
    mistakes: list[Mistake]


@dataclasses.dataclass
class CopyGroup:
    """One group of copies (a line of duplicates.jsonl), with thumbnails of its first members
    (None for a member kept out of the examples)."""

    kind: str
    paths: list[str]
    labels: list[str]
    splits: list[str]
    distances: list[int]
    thumbnails: list[np.ndarray | None]


@dataclasses.dataclass
class Copies:
    """The groups of copies of one picture: the largest, and those under several labels."""

    largest: list[CopyGroup]  # at most LARGEST_GROUPS_SHOWN, largest first
    cross_label: list[CopyGroup]  # at most CROSS_LABEL_SHOWN, in duplicates.jsonl's order


@dataclasses.dataclass
class RunResults:
    """Everything the page shows of one run."""

    summary: RunSummary  # ROOT/summary.json
    dataset: Dataset
    samples: Samples
    statistics: Statistics | None  # None: not computed
    curves: dict[str, dict[str, list[tuple[int, float]]]]  # run -> metric -> [(epoch, value)]
    slices: Slices | None  # None: not evaluated
    predictions: Predictions | None  # None: no trained model
    copies: Copies | None = None  # None: none found, or not looked for
