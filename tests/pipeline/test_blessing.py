"""Blessing: TFX's own Evaluator executor on hand-made predictions, with our eval config.

Model-agnostic evaluation (predictions stored in the examples) runs the same TFMA thresholds and
blessing logic the pipeline's Evaluator runs, in seconds and with predictions we choose: an
overall accuracy above the bound with one class far below it.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from imgtfx.components.examples.features import FeatureNames
from imgtfx.components.examples.vocabulary import write_labels_file
from imgtfx.components.image_evaluator import executor as image_evaluator
from imgtfx.pipeline.pipeline import eval_config
from imgtfx.pipeline.results import blessing_lines, explain_blessing

CLASSES = 10
PER_CLASS = 20


def _examples(tmp_path) -> standard_artifacts.Examples:
    """Eval examples with stored probabilities: every class right except class '3', which is
    right on 5 of 20 (0.25): overall accuracy 0.925."""
    artifact = standard_artifacts.Examples()
    artifact.uri = str(tmp_path / "examples")
    artifact.split_names = '["eval"]'
    os.makedirs(os.path.join(artifact.uri, "Split-eval"))
    path = os.path.join(artifact.uri, "Split-eval", "data.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for label in range(CLASSES):
            for i in range(PER_CLASS):
                predicted = label if label != 3 or i < 5 else 4
                probabilities = np.full(CLASSES, 0.01)
                probabilities[predicted] = 0.91
                example = tf.train.Example()
                features = example.features.feature
                features["label"].int64_list.value.append(label)
                features["label_name"].bytes_list.value.append(str(label).encode())
                features["probabilities"].float_list.value.extend(probabilities)
                writer.write(example.SerializeToString())
    write_labels_file(os.path.join(artifact.uri, "labels.txt"), [str(c) for c in range(CLASSES)])
    return artifact


def _evaluate(tmp_path, name, **thresholds):
    evaluation_uri, blessed, _ = _run(
        tmp_path, name, evaluator_executor.Executor(), {}, **thresholds
    )
    return evaluation_uri, blessed


def _run(tmp_path, name, executor, inputs, **thresholds):
    """Evaluates with `executor`, `inputs` added to the examples; returns the evaluation's URI,
    whether it blessed, and the blessing artifact."""
    config = eval_config(FeatureNames(), **thresholds)
    del config.model_specs[:]  # no model: TFMA reads the stored probabilities
    config.model_specs.add(label_key="label", prediction_key="probabilities")
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = str(tmp_path / name / "evaluation")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / name / "blessing")
    # After evaluating and validating, the executor labels the blessing with the model's URI,
    # which a model-agnostic run has none of; what it blesses on is the validation result.
    with pytest.raises(KeyError, match="model"):
        executor.Do(
            {standard_component_specs.EXAMPLES_KEY: [_examples(tmp_path / name)], **inputs},
            {
                standard_component_specs.EVALUATION_KEY: [evaluation],
                standard_component_specs.BLESSING_KEY: [blessing],
            },
            {
                standard_component_specs.EVAL_CONFIG_KEY: proto_utils.proto_to_json(config),
                standard_component_specs.EXAMPLE_SPLITS_KEY: json.dumps(["eval"]),
            },
        )
    blessed = tfma.load_validation_result(evaluation.uri).validation_ok
    return evaluation.uri, blessed, blessing


def test_min_accuracy_is_the_overall_accuracy_whatever_one_class_scores(tmp_path):
    evaluation_uri, blessed = _evaluate(tmp_path, "overall", min_accuracy=0.9)
    assert blessed
    why = explain_blessing(evaluation_uri, blessed, {"min_accuracy": 0.9}, None)
    assert why["failed"] == [] and blessing_lines(why) == []


def test_an_unreachable_threshold_names_the_failed_check(tmp_path):
    evaluation_uri, blessed = _evaluate(tmp_path, "high", min_accuracy=0.95)
    assert not blessed
    why = explain_blessing(evaluation_uri, blessed, {"min_accuracy": 0.95}, None)
    (failure,) = why["failed"]
    assert failure["metric"] == "sparse_categorical_accuracy"
    assert failure["slice"] == "overall"
    assert failure["value"] == pytest.approx(0.925)
    assert failure["bound"] == ">= 0.95"
    assert why["baseline_model"] is None
    (line,) = blessing_lines(why)
    assert "sparse_categorical_accuracy on overall is 0.925, needs >= 0.95" in line


def test_opt_in_class_floor_fails_on_the_weak_class_only(tmp_path):
    evaluation_uri, blessed = _evaluate(tmp_path, "floor", min_accuracy=0.9, min_class_accuracy=0.5)
    assert not blessed
    why = explain_blessing(evaluation_uri, blessed, {}, None)
    assert [(f["slice"], f["value"]) for f in why["failed"]] == [("label_name=3", 0.25)]


def test_opt_in_gap_bound_blesses_on_the_contest_score(tmp_path):
    """Every prediction here has confidence 0.91: GAP ranks the 15 wrong ones first (ties never
    flatter), then the 185 right ones at precision j / (15 + j)."""
    evaluation_uri, blessed = _evaluate(tmp_path, "gap", min_accuracy=0.9, min_gap=0.9)
    assert not blessed
    why = explain_blessing(evaluation_uri, blessed, {}, None)
    (failure,) = why["failed"]
    expected = sum(j / (15 + j) for j in range(1, 186)) / 200
    assert failure["metric"] == "global_average_precision" and failure["slice"] == "overall"
    assert failure["value"] == pytest.approx(expected, abs=1e-6)
    assert expected < 0.75  # far below the accuracy (0.925), which alone would bless it
    _, blessed = _evaluate(tmp_path, "gap-low", min_accuracy=0.9, min_gap=0.7)
    assert blessed


def test_a_baseline_trained_on_other_classes_is_skipped_and_the_summary_says_so(tmp_path):
    """The blessed baseline knew class 'cat' where these examples have '9': label 9 means
    another class in each, so the model is evaluated as on a first run, and says why."""
    baseline = standard_artifacts.Model()
    baseline.uri = str(tmp_path / "baseline")
    os.makedirs(os.path.join(baseline.uri, "Format-Serving"))
    labels = [str(c) for c in range(CLASSES - 1)] + ["cat"]
    write_labels_file(os.path.join(baseline.uri, "Format-Serving", "labels.txt"), labels)
    inputs = {standard_component_specs.BASELINE_MODEL_KEY: [baseline]}
    evaluation_uri, blessed, blessing = _run(
        tmp_path, "changed", image_evaluator.Executor(), inputs, min_accuracy=0.9
    )
    note = blessing.get_string_custom_property(image_evaluator.BASELINE_NOTE)
    assert note.startswith("baseline skipped: vocabulary changed (10 classes in the baseline")
    assert blessed  # on the accuracy bound alone: no change threshold without a baseline
    why = explain_blessing(evaluation_uri, blessed, {}, None, note)
    assert why["baseline_note"] == note and why["baseline_model"] is None
    assert blessing_lines(why) == [note]
