"""BaselineEvaluator: TFX's Evaluator, whose executor finds the baseline model itself."""

from __future__ import annotations

from tfx.dsl.components.base import executor_spec

from imgtfx.components.baseline_evaluator import executor
from imgtfx.components.image_evaluator import ImageEvaluator


class BaselineEvaluator(ImageEvaluator):
    """Same inputs, outputs and eval config as TFX's Evaluator; no Resolver upstream.

    For the open-source KFP backend, which cannot run TFX's Resolver: the baseline is the newest
    blessed model of this pipeline in the cluster's ML Metadata service (see executor.py).
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
