"""ImageEvaluator: TFX's Evaluator whose executor caps per-class slices (see executor.py)."""

from __future__ import annotations

from tfx.components.evaluator.component import Evaluator
from tfx.dsl.components.base import executor_spec

from imgtfx.components.image_evaluator import executor


class ImageEvaluator(Evaluator):
    """Same inputs, outputs and eval config as TFX's Evaluator. Above `MAX_CLASS_SLICES`
    classes (read from the examples) it evaluates without one slice per class, and says so on
    its evaluation artifact, instead of running out of time or memory."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
