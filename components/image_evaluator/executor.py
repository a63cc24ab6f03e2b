"""The Evaluator's executor, with one slice per class only where the class count allows it.

Each TFMA slice costs the Evaluator time and memory and its result file a record, whatever the
slice's size; with one slice per class that grows with the number of classes, not images
(Google Landmarks v2: 203,094 classes). Above MAX_CLASS_SLICES classes the per-class slicing
specs, and the per-class accuracy floor on them, are left out of the eval config; the overall
slice, its thresholds and the blessing are unchanged. The evaluation artifact says what was
done in its `class_slices` custom property, and the run's summary and report repeat it.

A baseline model is compared only when it was trained on the same vocabulary as the examples
(its labels.txt, written by trainer/serving.py `export`, against the examples' labels.txt): label
index i must name the same class in both, or the change threshold compares different classes.
Otherwise the model is evaluated without the baseline, as on a first run, and the blessing and
the evaluation say "baseline skipped: <why>" in their `baseline_note` custom property, which the
run's summary repeats.
"""

from __future__ import annotations

import os
from typing import Any

from absl import logging
from tfx.components.evaluator import executor as evaluator_executor
from tfx.proto import evaluator_pb2  # noqa: F401 - registers the eval config's proto types
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from imgtfx.components.image_evaluator.properties import BASELINE_NOTE, CLASS_SLICES

# bench/scale.py --classes-sweep (README, Performance): the Evaluator's peak RSS was 1.24, 1.53
# and 2.34 GiB at 1,049, 8,000 and 16,000 classes, growing faster than the classes; 10,000 keeps
# it near 2 GiB, under the 3 GiB the contest run is held to.
MAX_CLASS_SLICES = int(os.environ.get("IMGTFX_MAX_CLASS_SLICES", "10000"))


def num_classes(examples) -> int | None:
    """The number of labels ImageExampleGen found, from its artifact (None if unknown)."""
    if examples.has_custom_property("num_classes"):
        return int(examples.get_int_custom_property("num_classes"))
    from imgtfx.components.examples.vocabulary import read_vocabulary

    try:
        return len(read_vocabulary(examples.uri))
    except Exception:  # noqa: BLE001 - examples of another ExampleGen: nothing to cap by
        return None


def cap_class_slices(eval_config, classes: int | None, limit: int = MAX_CLASS_SLICES) -> str:
    """Drops the slicing specs with feature keys (one slice per value) and the per-slice
    thresholds on them when `classes` is over `limit`; returns what was done, in words."""
    if classes is None or classes <= limit:
        return f"one per class ({classes} classes)" if classes else "as configured"
    per_value = [s for s in eval_config.slicing_specs if s.feature_keys]
    kept = [s for s in eval_config.slicing_specs if not s.feature_keys]
    del eval_config.slicing_specs[:]
    eval_config.slicing_specs.extend(kept)
    for spec in eval_config.metrics_specs:
        for metric in spec.metrics:
            thresholds = [
                t
                for t in metric.per_slice_thresholds
                if not any(s.feature_keys for s in t.slicing_specs)
            ]
            del metric.per_slice_thresholds[:]
            metric.per_slice_thresholds.extend(thresholds)
    dropped = ", ".join("/".join(s.feature_keys) for s in per_value)
    return (
        f"overall only: {classes} classes is over the cap of {limit} per-class slices "
        f"(left out: slices on {dropped} and thresholds on them)"
    )


def vocabulary_change(examples_uri: str, baseline_model) -> str | None:
    """Why `baseline_model` cannot be compared with a model of the examples at `examples_uri`:
    its labels.txt names other classes, or either labels.txt cannot be read (then nothing says
    the indices agree); None when both list the same labels in the same order."""
    import tensorflow as tf
    from tfx.utils import path_utils

    from imgtfx.components.examples.layout import LABELS_FILE
    from imgtfx.components.examples.vocabulary import read_labels_file, read_vocabulary

    model_dir = path_utils.serving_model_path(
        baseline_model.uri, path_utils.is_old_model_artifact(baseline_model)
    )
    readers = (
        ("the examples'", lambda: read_vocabulary(examples_uri)),
        ("the baseline model's", lambda: read_labels_file(os.path.join(model_dir, LABELS_FILE))),
    )
    vocabularies = []
    for whose, read in readers:
        try:
            vocabularies.append(read())
        except (OSError, ValueError, tf.errors.OpError) as e:
            return f"vocabulary unknown: {whose} labels.txt cannot be read ({e})"
    ours, baseline = vocabularies
    if ours == baseline:
        return None
    added, removed = set(ours) - set(baseline), set(baseline) - set(ours)
    return (
        f"vocabulary changed ({len(baseline)} classes in the baseline, {len(ours)} now: "
        f"{len(added)} added, {len(removed)} removed"
        + ("; the same classes under other indices)" if not added and not removed else ")")
    )


class Executor(evaluator_executor.Executor):
    """TFX's Evaluator executor, with per-class slices capped and a baseline of another
    vocabulary left out."""

    def Do(  # noqa: N802 - TFX's API
        self,
        input_dict: dict[str, list],
        output_dict: dict[str, list],
        exec_properties: dict[str, Any],
    ) -> None:
        self.evaluate(input_dict, output_dict, exec_properties)

    def evaluate(
        self,
        input_dict: dict[str, list],
        output_dict: dict[str, list],
        exec_properties: dict[str, Any],
        baseline_skipped: str | None = None,
    ) -> None:
        """Do, for a caller that looked for a baseline itself: `baseline_skipped` says why it
        has none to give (recorded as this executor records a vocabulary change)."""
        import tensorflow_model_analysis as tfma

        examples = artifact_utils.get_single_instance(
            input_dict[standard_component_specs.EXAMPLES_KEY]
        )
        baseline_key = standard_component_specs.BASELINE_MODEL_KEY
        if input_dict.get(baseline_key):
            change = vocabulary_change(examples.uri, input_dict[baseline_key][0])
            if change:
                baseline_skipped = change
                input_dict = {k: v for k, v in input_dict.items() if k != baseline_key}
        if baseline_skipped:
            skipped = f"baseline skipped: {baseline_skipped}"
            logging.warning("Evaluator: %s.", skipped)
            for key in (
                standard_component_specs.EVALUATION_KEY,
                standard_component_specs.BLESSING_KEY,
            ):
                for artifact in output_dict.get(key, []):
                    artifact.set_string_custom_property(BASELINE_NOTE, skipped)
        key = standard_component_specs.EVAL_CONFIG_KEY
        note = "as configured"
        if exec_properties.get(key):
            eval_config = tfma.EvalConfig()
            proto_utils.json_to_proto(exec_properties[key], eval_config)
            note = cap_class_slices(eval_config, num_classes(examples))
            exec_properties = {**exec_properties, key: proto_utils.proto_to_json(eval_config)}
            if note.startswith("overall only"):
                logging.warning("Evaluator: %s.", note)
        super().Do(input_dict, output_dict, exec_properties)
        for evaluation in output_dict.get(standard_component_specs.EVALUATION_KEY, []):
            evaluation.set_string_custom_property(CLASS_SLICES, note)
