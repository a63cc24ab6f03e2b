"""The pipeline's shape and its fail-fast checks (no component runs here)."""

from __future__ import annotations

import os

import pytest

from imgtfx.components.examples.features import FeatureNames
from imgtfx.components.image_example_gen import labels_csv
from imgtfx.components.image_example_gen.options import ImageOptions
from imgtfx.pipeline import local_runner
from imgtfx.pipeline.pipeline import create_pipeline, eval_config
from imgtfx.pipeline.run_config import RunConfig
from imgtfx.trainer.options import TrainerOptions
from tests.helpers.images import make_tree


def test_pipeline_wires_every_step(tmp_path):
    p = create_pipeline(RunConfig("/images"), str(tmp_path / "root"), str(tmp_path / "serving"))
    ids = sorted(c.id for c in p.components)
    assert ids == sorted(
        [
            "ImageExampleGen",
            "StatisticsGen",
            "SchemaGen",
            "LabelSchema",
            "ExampleValidator",
            "Trainer",
            "latest_blessed_model_resolver",
            "Evaluator",
            "Pusher",
        ]
    )
    by_id = {c.id: c for c in p.components}
    upstream = {c.id: sorted(u.id for u in c.upstream_nodes) for c in p.components}
    assert upstream["Trainer"] == ["ImageExampleGen", "LabelSchema"]
    assert upstream["Evaluator"] == ["ImageExampleGen", "Trainer", "latest_blessed_model_resolver"]
    assert upstream["Pusher"] == ["Evaluator", "Trainer"]
    assert by_id["Trainer"].exec_properties["run_fn"] == "imgtfx.trainer.training.run_fn"
    assert (
        "module_file" not in by_id["Trainer"].exec_properties
        or not by_id["Trainer"].exec_properties["module_file"]
    )


def test_eval_config_thresholds_and_slices():
    import json

    config = eval_config(FeatureNames(), min_accuracy=0.75)
    metrics = {
        json.loads("{" + (m.config or '"name": "example_count"') + "}")["name"]: m
        for m in config.metrics_specs[0].metrics
    }
    accuracy = metrics["sparse_categorical_accuracy"]
    assert not accuracy.HasField("threshold")  # it would apply to every class slice
    value, change = accuracy.per_slice_thresholds
    assert [list(s.feature_keys) for s in value.slicing_specs] == [[]]  # overall only
    assert value.threshold.value_threshold.lower_bound.value == 0.75
    assert [list(s.feature_keys) for s in change.slicing_specs] == [[]]
    assert change.threshold.change_threshold.absolute.value < 0
    floor = eval_config(FeatureNames(), min_class_accuracy=0.3).metrics_specs[0].metrics[0]
    assert list(floor.per_slice_thresholds[2].slicing_specs[0].feature_keys) == ["label_name"]
    assert json.loads("{" + metrics["sparse_top_k_categorical_accuracy"].config + "}")["top_k"] == 3
    assert metrics["example_count"].class_name == "ExampleCount"
    assert [list(s.feature_keys) for s in config.slicing_specs] == [[], ["label_name"]]


def test_bad_configuration_fails_fast_with_one_line(tmp_path):
    images = tmp_path / "images"
    make_tree(images, per_class=2)
    with pytest.raises(ValueError, match="--image-size must be between"):
        TrainerOptions(image_size=7)
    with pytest.raises(ValueError, match="is not a folder"):
        local_runner.prepare(RunConfig(str(tmp_path / "nope")), str(tmp_path / "root"))
    csv = tmp_path / "labels.csv"
    csv.write_text("id,landmark_id\nabc,1\ndef,2\n")
    with pytest.raises(ValueError, match="matches no image"):
        local_runner.prepare(
            RunConfig(str(images), ImageOptions(labels_csv=str(csv))), str(tmp_path / "root")
        )
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="cannot write to root"):
            local_runner.prepare(RunConfig(str(images)), str(locked / "run"))
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(ValueError, match="cannot write to root"):
        local_runner.prepare(RunConfig(str(images)), str(not_a_dir / "run"))
    with pytest.raises(ValueError, match="split folders must be train and eval, or two other"):
        RunConfig("/images", split_folders=("train", "validation"))
    with pytest.raises(ValueError, match="--train-steps must be positive"):
        RunConfig("/images", train_steps=0)
    with pytest.raises(ValueError, match="--min-accuracy must be between 0 and 1"):
        RunConfig("/images", min_accuracy=1.5)


def test_components_do_not_import_the_pipeline_that_uses_them():
    import ast
    from pathlib import Path

    components = Path(__file__).resolve().parents[2] / "components"
    offending = []
    for path in sorted(components.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            offending += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "pipeline"]
    assert offending == []


def test_running_and_compiling_import_no_tfx_v1_nor_vertex_ai():
    """`tfx.v1` imports every TFX extension, Vertex AI's client among them: about 5 s more at
    the start of every run, compile and Kubeflow task (each task is a fresh process). The
    pipeline imports the TFX modules it uses instead."""
    import subprocess
    import sys

    modules = [
        "imgtfx.pipeline.local_runner",
        "imgtfx.kubeflow.runner",
        "imgtfx.components.image_evaluator.executor",
        "imgtfx.components.baseline_evaluator.executor",
        "imgtfx.components.label_schema.component",
        "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor",
    ]
    code = (
        f"import sys\nfor m in {modules!r}: __import__(m)\n"
        "print(sorted(m for m in ('tfx.v1', 'google.cloud.aiplatform') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_an_image_root_uri_reaches_the_pipeline_as_a_uri(tmp_path, monkeypatch):
    """`--images gs://b/images` became /cwd/gs:/b/images (os.path.abspath)."""

    class Built(Exception):
        pass

    from imgtfx.pipeline import pipeline

    def create(config, *args, **kwargs):
        raise Built(config.images)

    monkeypatch.setattr(pipeline, "create_pipeline", create)
    make_tree(tmp_path / "relative" / "images", per_class=1)
    for images, expected in (
        ("gs://bucket/서울/images", "gs://bucket/서울/images"),
        ("relative/images", str(tmp_path / "relative" / "images")),
    ):
        monkeypatch.chdir(tmp_path)
        with pytest.raises(Built) as built:
            local_runner.run(RunConfig(images), str(tmp_path / "run"))
        assert str(built.value) == expected


def test_the_labels_csv_check_streams_the_csv(tmp_path, monkeypatch):
    """The launcher's check never holds the CSV: a 400,000-row CSV whose one matching row is
    the last is streamed against the tree's ids (it was a set of every CSV id)."""
    import tracemalloc

    images = tmp_path / "images"
    make_tree(images, per_class=2)  # cat_0, cat_1, dog_0, dog_1
    csv = tmp_path / "labels.csv"
    rows = "".join(f"{i:012x}a7f3,{i % 1049}\n" for i in range(400_000))
    csv.write_text(f"id,landmark_id\n{rows}dog_1,7\n")
    config = RunConfig(str(images), ImageOptions(labels_csv=str(csv)))
    tracemalloc.start()
    local_runner.prepare(config, str(tmp_path / "root"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 24 * 2**20, peak  # one chunk of rows, not 400,000 ids
    # Past CSV_CHECK_IMAGES images without a match, nothing is concluded: ImageExampleGen
    # counts every id. Within it, a match anywhere in the CSV is found.
    csv.write_text("id,landmark_id\nnone,7\n")
    monkeypatch.setattr(labels_csv, "CSV_CHECK_IMAGES", 2)
    local_runner.prepare(config, str(tmp_path / "root"))
    monkeypatch.setattr(labels_csv, "CSV_CHECK_IMAGES", 5)
    with pytest.raises(ValueError, match="matches no image"):
        local_runner.prepare(config, str(tmp_path / "root"))
    monkeypatch.setattr(labels_csv, "CSV_CHECK_ROWS", 1)
    csv.write_text("id,landmark_id\nnone,7\nother,8\ncat_1,9\n")
    local_runner.prepare(config, str(tmp_path / "root"))
