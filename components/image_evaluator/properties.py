"""The names the Evaluator's outputs are read by: the custom properties the ImageEvaluator sets
on its artifacts, and its metrics (metrics.py). The run summary, the report and the blessing's
thresholds read them without importing TFX's Evaluator or TFMA."""

# The Evaluator's metrics, named as Keras names them (metrics.py keeps Keras' meaning too).
ACCURACY = "sparse_categorical_accuracy"
TOP_K_ACCURACY = "sparse_top_k_categorical_accuracy"
EXAMPLE_COUNT = "example_count"
# Global average precision, the landmark contests' score (metrics.global_average_precision).
GAP = "global_average_precision"


def by_method(metric: str, method: str) -> str:
    """The name of `metric` computed on one prediction method's scores (a model with a
    neighbour index: classifier, neighbours, blend), e.g. global_average_precision_blend."""
    return f"{metric}_{method}"


# On the evaluation: how the per-class slices were evaluated ("one per class (...)" or
# "overall only: ..." above MAX_CLASS_SLICES classes).
CLASS_SLICES = "class_slices"
# On the evaluation and the blessing: "baseline skipped: <why>" when no baseline was compared.
BASELINE_NOTE = "baseline_note"
