"""An Evaluator that finds its baseline in the cluster's ML Metadata service (open-source KFP)."""

from components.baseline_evaluator.component import BaselineEvaluator

__all__ = ["BaselineEvaluator"]
