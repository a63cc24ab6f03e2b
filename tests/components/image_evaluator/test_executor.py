"""The Evaluator's cap on per-class slices: every class below it, the overall slice above it."""

from __future__ import annotations

from imgtfx.components.examples.features import FeatureNames
from imgtfx.components.image_evaluator import executor
from imgtfx.pipeline.pipeline import eval_config


def test_per_class_slices_and_their_floor_are_left_out_above_the_cap():
    config = eval_config(FeatureNames(), min_accuracy=0.5, min_class_accuracy=0.2)
    note = executor.cap_class_slices(config, 1_049, limit=20_000)
    assert note == "one per class (1049 classes)"
    assert [list(s.feature_keys) for s in config.slicing_specs] == [[], ["label_name"]]

    note = executor.cap_class_slices(config, 203_094, limit=20_000)
    assert note.startswith("overall only: 203094 classes is over the cap of 20000")
    assert [list(s.feature_keys) for s in config.slicing_specs] == [[]]
    accuracy = config.metrics_specs[0].metrics[0]
    # The overall bound and change threshold stay; the per-class floor goes with its slices.
    assert len(accuracy.per_slice_thresholds) == 2
    assert all(not s.feature_keys for t in accuracy.per_slice_thresholds for s in t.slicing_specs)
    assert accuracy.per_slice_thresholds[0].threshold.value_threshold.lower_bound.value == 0.5


def test_class_count_comes_from_the_examples_artifact(tmp_path):
    from tfx.types import standard_artifacts

    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path)
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    assert executor.num_classes(examples) == 3  # from labels.txt
    examples.set_int_custom_property("num_classes", 7)
    assert executor.num_classes(examples) == 7  # ImageExampleGen's property
