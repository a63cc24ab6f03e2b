"""Kubeflow deployment: the compiled spec's shape, and the spec executed task by task here."""

from __future__ import annotations

import argparse
import json
import os

import pytest
from google.protobuf import json_format

from imgtfx.kubeflow import entrypoint, runner
from imgtfx.pipeline.run_config import IMAGES_PARAMETER, TRAIN_ARGS_PARAMETER
from tests.helpers.kfp_packages import IMAGE, compile_to
from tests.kubeflow import kfp_emulator

RUN_EXECUTOR = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
EXPECTED_EXECUTORS = {
    "ImageExampleGen": "imgtfx.components.image_example_gen.executor.Executor",
    "StatisticsGen": "tfx.components.statistics_gen.executor.Executor",
    "SchemaGen": "tfx.components.schema_gen.executor.Executor",
    "ExampleValidator": "tfx.components.example_validator.executor.Executor",
    "Trainer": "tfx.components.trainer.executor.GenericExecutor",
    "Evaluator": "imgtfx.components.image_evaluator.executor.Executor",
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
        assert container["command"][-1] == RUN_EXECUTOR  # Vertex: TFX's own entrypoint
        class_path = container["args"][container["args"].index("--executor_class_path") + 1]
        if name in EXPECTED_EXECUTORS:
            assert class_path == EXPECTED_EXECUTORS[name]
    assert "preCacheCheck" in executors["ImageExampleGen_executor"]["container"]["lifecycle"]

    parameters = pipeline["root"]["inputDefinitions"]["parameters"]
    assert set(parameters) == {IMAGES_PARAMETER, TRAIN_ARGS_PARAMETER}
    values = spec["runtimeConfig"]["parameters"]
    assert values[IMAGES_PARAMETER] == {"stringValue": "gs://bucket/images"}
    assert json.loads(values[TRAIN_ARGS_PARAMETER]["stringValue"]) == {"num_steps": 1234}
    gen_inputs = tasks["ImageExampleGen"]["inputs"]["parameters"]
    assert gen_inputs["input_base"] == {"componentInputParameter": IMAGES_PARAMETER}
    trainer_inputs = tasks["Trainer"]["inputs"]["parameters"]
    assert trainer_inputs["train_args"] == {"componentInputParameter": TRAIN_ARGS_PARAMETER}
    assert "module_file" not in trainer_inputs
    run_fn = trainer_inputs["run_fn"]["runtimeValue"]["constantValue"]["stringValue"]
    assert run_fn == "imgtfx.trainer.training.run_fn"


def test_compiling_needs_no_access_to_the_pipeline_root(tmp_path):
    # Nothing here can reach minio:// (TensorFlow has no such file system): compiling works.
    spec = compile_to(tmp_path, "pipeline.yaml", pipeline_root="minio://mlpipeline/v2/artifacts")
    assert spec["pipelineSpec"]["defaultPipelineRoot"] == "minio://mlpipeline/v2/artifacts"


def test_compile_needs_an_image(tmp_path):
    with pytest.raises(ValueError, match="container image"):
        compile_to(tmp_path, image="")


def test_yaml_package_is_what_the_open_source_backend_runs(tmp_path, capsys):
    from kfp.client.client import _extract_pipeline_yaml

    from imgtfx import cli

    output = str(tmp_path / "pipeline.yaml")
    code = cli.main(
        [
            "compile", "--pipeline-root", "gs://bucket/root", "--images", "gs://bucket/images",
            "--labels", "gs://bucket/train.csv", "--image", IMAGE, "--output", output,
            "--trainer-gpus", "1", "--trainer-memory", "16G", "--train-steps", "77",
        ]
    )  # fmt: skip
    assert code == 0
    assert "open-source Kubeflow Pipelines" in capsys.readouterr().out
    doc = _extract_pipeline_yaml(output)  # what kfp.Client().upload_pipeline reads
    spec = doc.pipeline_spec
    assert spec.schema_version == "2.1.0"
    assert spec.default_pipeline_root == "gs://bucket/root"
    executors = spec.deployment_spec.fields["executors"].struct_value.fields
    assert set(executors) == {f"{n}_executor" for n in (*EXPECTED_DEPENDENCIES,)}
    for label, executor in executors.items():
        kinds = set(executor.struct_value.fields)
        assert kinds <= {"container", "importer"}, (label, kinds)
        container = executor.struct_value.fields["container"].struct_value.fields
        assert container["image"].string_value == IMAGE, label
        command = [v.string_value for v in container["command"].list_value.values]
        assert command == ["python", "-m", runner.ENTRYPOINT], label  # not TFX's bare one
    tasks = spec.root.dag.tasks
    assert "latest_blessed_model_resolver-model-resolver" not in tasks
    assert not tasks["ImageExampleGen"].caching_options.enable_cache
    assert all(t.caching_options.enable_cache for n, t in tasks.items() if n != "ImageExampleGen")
    assert list(tasks["Evaluator"].dependent_tasks) == ["ImageExampleGen", "Trainer"]
    trainer = executors["Trainer_executor"].struct_value.fields["container"].struct_value.fields
    resources = json_format.MessageToDict(trainer["resources"].struct_value)
    assert resources["accelerator"] == {"type": "nvidia.com/gpu", "count": "1"}
    assert resources["memoryLimit"] == 16
    evaluator = executors["Evaluator_executor"].struct_value.fields["container"].struct_value
    evaluator = json_format.MessageToDict(evaluator)
    assert "imgtfx.components.baseline_evaluator.executor.Executor" in evaluator["args"]
    assert {e["name"]: e["value"] for e in evaluator["env"]} == {
        "IMGTFX_METADATA_SERVICE": "metadata-grpc-service.kubeflow:8080",
        "IMGTFX_PIPELINE_NAME": "image-classification",
    }
    parameters = spec.root.input_definitions.parameters
    assert parameters[IMAGES_PARAMETER].default_value.string_value == "gs://bucket/images"
    train_args = parameters[TRAIN_ARGS_PARAMETER].default_value.string_value
    assert json.loads(train_args) == {"num_steps": 77}


def test_a_weights_file_reaches_the_trainer_through_an_importer(tmp_path):
    """As kfp compiles dsl.importer(artifact_uri="gs://..."), read back by kfp's own loader: a
    constant URI, its artifact the Trainer's input; the Trainer's options still name the URI
    (the entrypoint replaces it with the launcher's copy)."""
    from kfp.client.client import _extract_pipeline_yaml

    from imgtfx.trainer.options import TrainerOptions

    weights = "minio://mlpipeline/weights/mobilenet_v3_small_notop.h5"
    trainer_options = TrainerOptions(backbone="mobilenet_v3_small", weights=weights)
    compile_to(
        tmp_path,
        "pipeline.yaml",
        trainer_options=trainer_options,
        pipeline_root="minio://mlpipeline/v2/artifacts",  # the weights in the root's bucket
    )
    package = _extract_pipeline_yaml(str(tmp_path / "spec" / "pipeline.yaml"))
    spec = json_format.MessageToDict(package.pipeline_spec)
    assert spec["deploymentSpec"]["executors"]["BackboneWeights_executor"] == {
        "importer": {
            "artifactUri": {"constant": weights},
            "typeSchema": {"schemaTitle": "system.Model", "schemaVersion": "0.0.1"},
        }
    }
    trainer = spec["root"]["dag"]["tasks"]["Trainer"]
    assert "BackboneWeights" in trainer["dependentTasks"]
    assert trainer["inputs"]["artifacts"][entrypoint.WEIGHTS_INPUT] == {
        "taskOutputArtifact": {"outputArtifactKey": "artifact", "producerTask": "BackboneWeights"}
    }
    config = trainer["inputs"]["parameters"]["custom_config"]["runtimeValue"]["constant"]
    assert json.loads(config)["weights"] == weights


@pytest.mark.parametrize(
    "weights, message",
    [
        ("/home/me/weights.h5", "the cluster cannot read the weights file"),
        ("gs://bucket/weights/ckpt", "on Kubeflow the weights are one HDF5 file"),
        ("minio://other/w.h5", "outside the pipeline root's bucket gs://bucket/"),
    ],
)
def test_compile_refuses_weights_the_trainers_pod_cannot_get(tmp_path, weights, message):
    from imgtfx.trainer.options import TrainerOptions

    trainer_options = TrainerOptions(backbone="resnet50", weights=weights)
    with pytest.raises(ValueError, match=message):
        compile_to(tmp_path, "pipeline.yaml", trainer_options=trainer_options)


def test_compile_refuses_a_root_the_launcher_rejects_and_unknown_outputs(tmp_path, capsys):
    from imgtfx import cli

    base = ["compile", "--images", "gs://b/i", "--image", IMAGE]
    for root in ("/mnt/volume/root", "file:///root", "https://host/root", "minio://"):
        code = cli.main([*base, "--pipeline-root", root, "--output", str(tmp_path / "p.yaml")])
        assert code == 2, root
        error = capsys.readouterr().err.strip()
        assert error.count("\n") == 0 and f"{root} cannot be used" in error
        assert "gs://, s3:// or minio://" in error
    code = cli.main([*base, "--pipeline-root", "s3://b/r", "--output", str(tmp_path / "p.json")])
    assert code == 2 and "Vertex AI stores artifacts in gs://" in capsys.readouterr().err
    code = cli.main([*base, "--pipeline-root", "gs://b/r", "--output", str(tmp_path / "p.zip")])
    assert code == 2 and "end it in .yaml" in capsys.readouterr().err
    assert not (tmp_path / "p.zip").exists()


def test_vertex_json_keeps_the_resolver_and_names_a_vertex_accelerator(tmp_path):
    spec = compile_to(tmp_path, trainer_gpus=2)
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    assert "latest_blessed_model_resolver-model-resolver" in tasks
    # TFX's hook fingerprints the top level only: new images deep in the tree must not hit
    # the cache, so ImageExampleGen is uncached there too; the other steps stay cached.
    assert "cachingOptions" not in tasks["ImageExampleGen"]
    assert tasks["Trainer"]["cachingOptions"]["enableCache"] is True
    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    accelerator = executors["Trainer_executor"]["container"]["resources"]["accelerator"]
    assert accelerator == {"type": "NVIDIA_TESLA_T4", "count": "2"}


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_container_image_matches_the_sdk_and_the_local_environment():
    import importlib.metadata

    import tfx

    with open(os.path.join(REPO, "kubeflow", "Dockerfile")) as f:
        dockerfile = f.read()
    assert f"FROM tensorflow/tfx:{tfx.__version__}\n" in dockerfile
    assert "TF_USE_LEGACY_KERAS=1" in dockerfile
    assert "pip install --no-cache-dir -r kubeflow/requirements.txt" in dockerfile
    # GPU variant: CUDA as pip wheels at the locked TensorFlow version, from the same pins.
    assert "ARG GPU=false" in dockerfile and "sed 's/==/[and-cuda]==/'" in dockerfile
    assert "grep -E '^tensorflow==' kubeflow/requirements.txt" in dockerfile
    with open(os.path.join(REPO, "kubeflow", "requirements.txt")) as f:
        pins = dict(
            line.split(";")[0].strip().split("==")
            for line in f
            if "==" in line and not line.startswith("#")
        )
    for package in ("tfx", "apache-beam", "tensorflow", "tf-keras", "tensorflow-model-analysis"):
        assert pins[package] == importlib.metadata.version(package), package


def test_the_image_runs_as_a_user_of_its_own_with_nothing_but_its_own_paths_writable():
    """KFP 2.16 drops every capability of the user container and administrators may force
    runAsNonRoot, which Kubernetes checks against a numeric USER: the image's last USER is a
    number other than root's, its HOME and the launcher's artifact folders are made and given
    to that user (group 0, group-writable), and nothing else is (the emulated pods run as this
    USER: tests/kubeflow/kfp_emulator/image.py)."""
    import re

    from tests.kubeflow.kfp_emulator import image

    config = image.read()
    assert config.user not in (None, 0) and config.group == 0
    assert config.home and config.home != "/root"
    with open(os.path.join(REPO, "kubeflow", "Dockerfile")) as f:
        dockerfile = f.read()
    last_user = dockerfile.rindex("\nUSER ")
    assert "\nRUN " not in dockerfile[last_user:]  # nothing after it runs as root
    (owned,) = re.findall(r"chown -R (\d+):0 ([^\n\\&]+)", dockerfile)
    assert int(owned[0]) == config.user
    assert set(owned[1].split()) == {config.home, "/gcs", "/minio", "/s3"}
    assert re.search(r"chmod 2775 " + re.escape(owned[1].strip()), dockerfile)
    # HOME is the user's once the build's root-run steps are done (they would leave ~/.keras
    # behind, root's): set after them.
    assert dockerfile.rindex("ENV HOME=") > dockerfile.rindex("python -c")


def _options_of(command: str) -> set[str]:
    from imgtfx import cli

    commands = next(
        a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    return {o for a in commands.choices[command]._actions for o in a.option_strings} - {
        "-h",
        "--help",
    }


def test_compile_takes_every_option_run_takes_but_local_paths():
    run_only = {"--root", "--sample", "--verbose"}  # a local run's folder, sample, terminal
    assert _options_of("run") - run_only <= _options_of("compile")
    assert _options_of("convert") - {"--output"} <= _options_of("run")


def test_compiled_package_carries_what_run_would_use(tmp_path):
    from imgtfx import cli

    output = str(tmp_path / "p.yaml")
    code = cli.main(
        [
            "compile", "--pipeline-root", "gs://b/r", "--images", "gs://b/i", "--image", IMAGE,
            "--output", output, "--labels", "gs://b/train.csv", "--id-column", "image",
            "--label-column", "landmark_id", "--split-folders", "train,eval",
            "--class-weights", "balanced", "--batch-size", "48", "--min-class-accuracy", "0.05",
            "--max-reject-fraction", "0.01", "--flip",
        ]
    )  # fmt: skip
    assert code == 0
    pipeline = kfp_emulator.load_spec(output)["pipelineSpec"]
    tasks = pipeline["root"]["dag"]["tasks"]

    def parameter(task, name):
        return json.loads(tasks[task]["inputs"]["parameters"][name]["runtimeValue"]["constant"])

    image_options = parameter("ImageExampleGen", "custom_config")["custom_config"]["value"]
    assert image_options["id_column"] == "image"
    assert image_options["label_column"] == "landmark_id"
    assert image_options["max_reject_fraction"] == 0.01
    splits = parameter("ImageExampleGen", "input_config")["splits"]
    assert [s["name"] for s in splits] == ["train", "eval"]
    trainer = parameter("Trainer", "custom_config")
    assert (trainer["class_weights"], trainer["batch_size"], trainer["flip"]) == (
        "balanced",
        48,
        True,
    )
    assert '"lowerBound": 0.05' in json.dumps(parameter("Evaluator", "eval_config")).replace(
        "lower_bound", "lowerBound"
    )


def test_a_checkout_under_tmp_stays_visible_in_the_pod(tmp_path):
    """A pod's /tmp is its own, so a checkout cloned under /tmp (as CI may clone it) would be
    hidden from the task's command; the emulator shares what the image holds (the checkout,
    the virtual environment, the interpreter it links to) at their own places."""
    import sys

    from tests.kubeflow.kfp_emulator.pod import run_in_pod
    from tests.kubeflow.kfp_emulator.runner import WORKDIR, image_paths

    code = tmp_path / "clone"
    (code / ".venv").mkdir(parents=True)
    (code / "module.py").write_text("print('from the checkout')\n")
    env = {"PATH": os.environ["PATH"]}
    argv = ["cat", "module.py"]
    hidden = run_in_pod(str(tmp_path / "pod-a"), argv, env, str(code))
    assert hidden.returncode != 0 and "can't cd" in hidden.stderr
    seen = run_in_pod(str(tmp_path / "pod-b"), argv, env, str(code), (str(code),))
    assert seen.returncode == 0 and "from the checkout" in seen.stdout
    shared = image_paths()
    for path in (WORKDIR, sys.prefix, sys.base_prefix):
        assert any(os.path.realpath(path).startswith(p) for p in shared), path
