"""Kubeflow deployment: the compiled spec's shape, and the spec executed task by task here."""

from __future__ import annotations

import json
import os

import pytest
import tensorflow as tf

from imgtfx.sample_data import write_digits_tree
from kubeflow import runner, spec_runner
from trainer import model
from trainer.options import TrainerOptions

IMAGE = "registry.example.com/imgtfx:1.16.0-test"
RUN_EXECUTOR = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
EXPECTED_EXECUTORS = {
    "ImageExampleGen": "components.image_example_gen.executor.Executor",
    "StatisticsGen": "tfx.components.statistics_gen.executor.Executor",
    "SchemaGen": "tfx.components.schema_gen.executor.Executor",
    "ExampleValidator": "tfx.components.example_validator.executor.Executor",
    "Trainer": "tfx.components.trainer.executor.GenericExecutor",
    "Evaluator": "tfx.components.evaluator.executor.Executor",
    "Pusher": "tfx.components.pusher.executor.Executor",
}
EXPECTED_DEPENDENCIES = {
    "ImageExampleGen": [],
    "StatisticsGen": ["ImageExampleGen"],
    "SchemaGen": ["StatisticsGen"],
    "LabelSchema": ["ImageExampleGen", "SchemaGen"],
    "ExampleValidator": ["LabelSchema", "StatisticsGen"],
    "Trainer": ["ImageExampleGen", "LabelSchema"],
    "Evaluator": ["ImageExampleGen", "Trainer", "latest_blessed_model_resolver-model-resolver"],
    "Pusher": ["Evaluator", "Trainer"],
}


def compile_to(tmp_path, **kwargs):
    output = str(tmp_path / "spec" / "pipeline.json")
    defaults = dict(
        pipeline_root="gs://bucket/root",
        images="gs://bucket/images",
        image=IMAGE,
        output_file=output,
        labels_csv="gs://bucket/train.csv",
        train_steps=1234,
    )
    defaults.update(kwargs)
    runner.compile_pipeline(**defaults)
    return spec_runner.load_spec(output)


def test_compiled_spec_has_every_task_image_executor_and_parameter(tmp_path):
    spec = compile_to(tmp_path)
    pipeline = spec["pipelineSpec"]
    tasks = pipeline["root"]["dag"]["tasks"]
    for name, deps in EXPECTED_DEPENDENCIES.items():
        assert sorted(tasks[name].get("dependentTasks", [])) == deps, name
    executors = pipeline["deploymentSpec"]["executors"]
    for name, task in tasks.items():
        executor = executors[pipeline["components"][task["componentRef"]["name"]]["executorLabel"]]
        if "resolver" in executor:
            continue
        container = executor["container"]
        assert container["image"] == IMAGE
        assert container["command"][-1] == RUN_EXECUTOR
        class_path = container["args"][container["args"].index("--executor_class_path") + 1]
        if name in EXPECTED_EXECUTORS:
            assert class_path == EXPECTED_EXECUTORS[name]
    assert "preCacheCheck" in executors["ImageExampleGen_executor"]["container"]["lifecycle"]

    parameters = pipeline["root"]["inputDefinitions"]["parameters"]
    assert set(parameters) == {runner.IMAGES_PARAMETER, runner.TRAIN_ARGS_PARAMETER}
    values = spec["runtimeConfig"]["parameters"]
    assert values[runner.IMAGES_PARAMETER] == {"stringValue": "gs://bucket/images"}
    assert json.loads(values[runner.TRAIN_ARGS_PARAMETER]["stringValue"]) == {"num_steps": 1234}
    gen_inputs = tasks["ImageExampleGen"]["inputs"]["parameters"]
    assert gen_inputs["input_base"] == {"componentInputParameter": runner.IMAGES_PARAMETER}
    trainer_inputs = tasks["Trainer"]["inputs"]["parameters"]
    assert trainer_inputs["train_args"] == {"componentInputParameter": runner.TRAIN_ARGS_PARAMETER}
    assert "module_file" not in trainer_inputs
    run_fn = trainer_inputs["run_fn"]["runtimeValue"]["constantValue"]["stringValue"]
    assert run_fn == "trainer.model.run_fn"


def test_compiling_writes_nothing_to_the_pipeline_root(tmp_path):
    root = tmp_path / "remote-root"
    compile_to(tmp_path, pipeline_root=str(root))
    assert not root.exists()


def test_compile_needs_an_image(tmp_path):
    with pytest.raises(ValueError, match="container image"):
        compile_to(tmp_path, image="")


@pytest.mark.slow
def test_compiled_spec_executes_task_by_task_to_a_pushed_model(tmp_path):
    digits = write_digits_tree(str(tmp_path / "digits"), limit=240)
    spec = compile_to(
        tmp_path,
        pipeline_root=str(tmp_path / "root"),
        images="gs://not/used",  # replaced by the run-time parameter below
        labels_csv=digits["labels_csv"],
        serving_dir=str(tmp_path / "serving"),
        train_steps=10,
        trainer_options=TrainerOptions(image_size=16, batch_size=8, filters=(8, 16)),
        min_accuracy=0.0,
    )
    run = spec_runner.LocalSpecRunner(
        spec,
        root=str(tmp_path / "launcher"),
        parameters={runner.IMAGES_PARAMETER: digits["images"]},
        env={"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    outputs = run.run()

    ran = [label for label, _ in run.log]
    assert ran[0] == "ImageExampleGen:driver" and ran[1] == "ImageExampleGen"
    assert {"Trainer", "Evaluator", "Pusher"} <= set(ran)
    for _, argv in run.log:
        assert argv[:3] == ["python", "-m", argv[2]] and argv[2].startswith("tfx.orchestration")
    examples = outputs["ImageExampleGen"]["examples"][0]
    assert json.loads(examples["metadata"]["split_names"]) == ["train", "eval"]
    assert examples["metadata"]["examples"] == 240
    blessing = outputs["Evaluator"]["blessing"][0]
    assert blessing["metadata"]["blessed"] == 1
    pushed = outputs["Pusher"]["pushed_model"][0]["metadata"]
    assert pushed["pushed"] == 1
    served = tf.saved_model.load(pushed["pushed_destination"])
    jpg = next(
        os.path.join(folder, name)
        for folder, _, names in os.walk(digits["images"])
        for name in sorted(names)
        if name.endswith(".jpg") and name not in ("empty.jpg", "truncated.jpg")
    )
    out = served.signatures[model.IMAGES_SIGNATURE](images=tf.constant([open(jpg, "rb").read()]))
    assert out[model.LABEL_NAME].numpy()[0].decode() in {str(d) for d in range(10)}


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_container_image_matches_the_sdk_and_the_local_environment():
    import importlib.metadata

    import tfx

    with open(os.path.join(REPO, "kubeflow", "Dockerfile")) as f:
        dockerfile = f.read()
    assert f"FROM tensorflow/tfx:{tfx.__version__}\n" in dockerfile
    assert "TF_USE_LEGACY_KERAS=1" in dockerfile
    assert "pip install --no-cache-dir -r kubeflow/requirements.txt" in dockerfile
    with open(os.path.join(REPO, "kubeflow", "requirements.txt")) as f:
        pins = dict(
            line.split(";")[0].strip().split("==")
            for line in f
            if "==" in line and not line.startswith("#")
        )
    for package in ("tfx", "apache-beam", "tensorflow", "tf-keras", "tensorflow-model-analysis"):
        assert pins[package] == importlib.metadata.version(package), package
