"""ROOT/summary.json, what a finished `imgtfx run` produced, as one typed record (RunSummary).

Written by the local runner (pipeline.results.summarize reads ML Metadata, the runner adds the
root and the steps' times, `imgtfx report` its own step); read by the command line, the HTML
report, `imgtfx predict` and the benchmarks. Imports nothing heavy: the report page renders
without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

SUMMARY_FILE = "summary.json"


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """summary.json's fields. Fields an older summary lacks take their defaults."""

    steps: dict[str, str] = dataclasses.field(default_factory=dict)  # node -> its last state
    # The conversion's report, in brief: examples per split, rejects, skips, classes.
    examples: dict[str, int] | None = None
    rejected: int | None = None
    skipped: int | None = None
    num_classes: int | None = None
    # The evaluation: over all eval examples; top_k is the k of top_k_accuracy.
    accuracy: float | None = None
    top_k: int = 3
    top_k_accuracy: float | None = None
    gap: float | None = None
    # With a neighbour index: GAP of each prediction method ({classifier, neighbours, blend}).
    gap_by_method: dict[str, float | None] | None = None
    class_slices: str | None = None  # "overall only: ..." when TFMA got no per-class slices
    # Blessed or not, and why (pipeline.results.explain_blessing: thresholds, baseline, checks).
    blessed: bool | None = None
    blessing: dict[str, Any] | None = None
    model: str | None = None  # the Trainer's serving model
    pushed_model: str | None = None  # where the Pusher put it, when blessed
    examples_uri: str | None = None
    statistics_uri: str | None = None
    anomalies_uri: str | None = None
    model_run_uri: str | None = None
    evaluation_uri: str | None = None
    root: str | None = None
    # Step -> {"seconds", "peak_rss_mib", rates...}: the pipeline's steps, then the report's.
    step_times: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    seconds: float | None = None  # the pipeline's steps together

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, indent=2)

    @classmethod
    def from_json(cls, text: str) -> RunSummary:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


def summary_path(root: str) -> str:
    """Where a run keeps its summary: ROOT/summary.json (ROOT may be a bucket)."""
    return os.path.join(root, SUMMARY_FILE)


def not_a_run(root: str) -> str:
    """What to say of a --root that holds no run."""
    return f"{root} holds no imgtfx run (no {SUMMARY_FILE}): give the --root of `imgtfx run`."


def read_summary(root: str) -> RunSummary:
    """ROOT/summary.json.

    Raises:
      ValueError: ROOT holds no run (not_a_run's sentence).
    """
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(summary_path(root), "rb") as f:
            return RunSummary.from_json(f.read().decode("utf-8"))
    except (tf.errors.NotFoundError, FileNotFoundError):
        raise ValueError(not_a_run(root)) from None


def write_summary(root: str, summary: RunSummary) -> None:
    import tensorflow as tf

    with tf.io.gfile.GFile(summary_path(root), "wb") as f:
        f.write(summary.to_json().encode("utf-8"))
