"""ImageEvaluator: TFX's Evaluator, with per-class slices capped by the number of classes."""

from components.image_evaluator.component import ImageEvaluator

__all__ = ["ImageEvaluator"]
