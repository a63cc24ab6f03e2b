"""The custom properties the ImageEvaluator sets on its artifacts, by name: the run summary and
the report read them without importing TFX's Evaluator."""

# On the evaluation: how the per-class slices were evaluated ("one per class (...)" or
# "overall only: ..." above MAX_CLASS_SLICES classes).
CLASS_SLICES = "class_slices"
# On the evaluation and the blessing: "baseline skipped: <why>" when no baseline was compared.
BASELINE_NOTE = "baseline_note"
