"""Kubeflow deployment: the compiled spec's shape, and the spec executed task by task here."""

from __future__ import annotations

import argparse
import json
import os
import shutil

import pytest
import tensorflow as tf
from google.protobuf import json_format

from components.baseline_evaluator import object_store
from components.baseline_evaluator.executor import connect, latest_blessed_model
from imgtfx.sample_data import write_digits_tree
from kubeflow import entrypoint, runner, spec_runner
from tests.conftest import write
from tests.s3_server import ACCESS_KEY, SECRET_KEY, S3Server
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
    "Evaluator": "components.image_evaluator.executor.Executor",
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


def compile_to(tmp_path, name="pipeline.json", **kwargs):
    output = str(tmp_path / "spec" / name)
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
        assert container["command"][-1] == RUN_EXECUTOR  # Vertex: TFX's own entrypoint
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
    assert "components.baseline_evaluator.executor.Executor" in evaluator["args"]
    assert {e["name"]: e["value"] for e in evaluator["env"]} == {
        "IMGTFX_METADATA_SERVICE": "metadata-grpc-service.kubeflow:8080",
        "IMGTFX_PIPELINE_NAME": "image-classification",
    }
    parameters = spec.root.input_definitions.parameters
    assert parameters[runner.IMAGES_PARAMETER].default_value.string_value == "gs://bucket/images"
    train_args = parameters[runner.TRAIN_ARGS_PARAMETER].default_value.string_value
    assert json.loads(train_args) == {"num_steps": 77}


def test_a_tree_on_minio_reaches_image_example_gen_through_an_importer(tmp_path):
    """As kfp compiles dsl.importer(artifact_uri=<pipeline parameter>), read back by kfp's own
    package loader; a tree on gs:// gets none (TensorFlow reads it in place)."""
    from kfp.client.client import _extract_pipeline_yaml

    compile_to(tmp_path, "pipeline.yaml", images="s3://bucket/landmarks/train/")
    package = _extract_pipeline_yaml(str(tmp_path / "spec" / "pipeline.yaml"))
    spec = json_format.MessageToDict(package.pipeline_spec)
    executor = spec["deploymentSpec"]["executors"]["ImageTree_executor"]
    assert executor == {
        "importer": {
            "artifactUri": {"runtimeParameter": "uri"},
            "typeSchema": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"},
        }
    }
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["ImageTree"]["inputs"]["parameters"]["uri"] == {
        "componentInputParameter": runner.IMAGES_PARAMETER
    }
    example_gen = tasks["ImageExampleGen"]
    assert "ImageTree" in example_gen["dependentTasks"]
    assert example_gen["inputs"]["artifacts"][entrypoint.IMAGE_TREE_INPUT] == {
        "taskOutputArtifact": {"outputArtifactKey": "artifact", "producerTask": "ImageTree"}
    }
    component = spec["components"][example_gen["componentRef"]["name"]]
    assert entrypoint.IMAGE_TREE_INPUT in component["inputDefinitions"]["artifacts"]
    on_gcs = compile_to(tmp_path, "gcs.yaml", images="gs://bucket/landmarks/train")
    assert "ImageTree" not in on_gcs["pipelineSpec"]["root"]["dag"]["tasks"]


def test_evaluator_gets_the_minio_secret_every_backend_applies(tmp_path):
    """The platform spec as kfp's own loader reads it; the emulated driver (2.2.0, strict,
    to 2.15.0) maps it into the Evaluator's env, and fails as a cluster would without the
    secret or with a field the 2.2 driver does not know (kubeflow/pipelines#12495)."""
    from kfp.client.client import _extract_pipeline_yaml

    compile_to(tmp_path, "minio.yaml", pipeline_root="minio://mlpipeline/v2/artifacts")
    package = str(tmp_path / "spec" / "minio.yaml")
    platform = json_format.MessageToDict(_extract_pipeline_yaml(package).platform_spec)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors == {
        "Evaluator_executor": {
            "secretAsEnv": [
                {
                    "secretName": "mlpipeline-minio-artifact",
                    "keyToEnv": [
                        {"secretKey": "accesskey", "envVar": "AWS_ACCESS_KEY_ID"},
                        {"secretKey": "secretkey", "envVar": "AWS_SECRET_ACCESS_KEY"},
                    ],
                }
            ]
        }
    }
    secrets = {"mlpipeline-minio-artifact": {"accesskey": "a", "secretkey": "s"}}
    for version in ("2.2.0", "2.4.1", "2.5.0", "2.14.3", "2.15.0"):
        run = spec_runner.LocalSpecRunner(
            spec_runner.load_spec(package),
            root=None,
            workdir=str(tmp_path / version),
            kfp_version=version,
            secrets=secrets,
        )
        env = run._secret_env("Evaluator", "Evaluator_executor")
        assert env == {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"}, version
        run.secrets = {}
        with pytest.raises(spec_runner.TaskFailed, match="secret .* not found"):
            run._secret_env("Evaluator", "Evaluator_executor")
        run.secrets = secrets
        entry = run.platform["deploymentSpec"]["executors"]["Evaluator_executor"]["secretAsEnv"][0]
        entry["optional"] = False  # as kfp-kubernetes 2.15 writes it
        if version in ("2.2.0", "2.14.3"):
            with pytest.raises(spec_runner.TaskFailed, match='unknown field "optional"'):
                run._secret_env("Evaluator", "Evaluator_executor")
        else:
            assert run._secret_env("Evaluator", "Evaluator_executor") == env

    assert not compile_to(tmp_path, "gcs.yaml", pipeline_root="gs://b/r")["platformSpec"]
    compile_to(
        tmp_path,
        "s3.yaml",
        pipeline_root="s3://b/r",
        object_store_secret="s3-creds",
        object_store_endpoint="https://s3.example:9000",
    )
    spec = spec_runner.load_spec(str(tmp_path / "spec" / "s3.yaml"))
    executors = spec["platformSpec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors["Evaluator_executor"]["secretAsEnv"][0]["secretName"] == "s3-creds"
    env = runner.evaluator_container(spec["pipelineSpec"])["env"]
    assert {"name": object_store.ENDPOINT_ENV, "value": "https://s3.example:9000"} in env
    none = compile_to(
        tmp_path, "none.yaml", pipeline_root="minio://b/r", object_store_secret="none"
    )
    assert not none["platformSpec"]


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


@pytest.mark.slow
@pytest.mark.parametrize(
    "kfp_version",
    [
        # Each release's whole run takes 3 to 4 minutes here: `make test` runs 2.15's, and
        # `make test-contracts` the others (the data steps under them run in make test, below).
        pytest.param("2.4.1", marks=pytest.mark.contracts),
        pytest.param("2.5.0", marks=pytest.mark.contracts),
        "2.15.0",
    ],
)
def test_yaml_package_runs_as_the_open_source_launcher_runs_it(tmp_path, kfp_version):
    """A KFP release's contract with its default minio:// root and the image tree in that MinIO:
    every task's own command on local copies of its inputs (the tree through an importer),
    outputs uploaded after, recorded in ML Metadata as the cluster records
    them, through to a pushed model; then the Evaluator again, which copies its baseline out
    of MinIO (S3's API, tests/s3_server.py, over the emulated bucket) with the credentials the
    package maps from KFP's secret, and compares against it."""
    digits = write_digits_tree(str(tmp_path / "digits"), limit=240)
    tree = "minio://mlpipeline/datasets/digits"  # where a MinIO install keeps data
    spec_file = str(tmp_path / "pipeline.yaml")
    runner.compile_pipeline(
        pipeline_root=spec_runner.DEFAULT_PIPELINE_ROOT,
        images=tree,
        image=IMAGE,
        output_file=spec_file,
        labels_csv=tree + "/labels.csv",
        train_steps=10,
        trainer_options=TrainerOptions(image_size=16, batch_size=8, filters=(8, 16)),
        min_accuracy=0.0,
    )
    store = str(tmp_path / "metadata.sqlite")
    minio = S3Server(str(tmp_path / "cluster" / "buckets" / "minio"))  # the launcher's buckets
    run = spec_runner.LocalSpecRunner(
        spec_runner.load_spec(spec_file),
        root=None,  # no pipeline_root on the run, no ConfigMap: the backend's default
        env={
            "TF_USE_LEGACY_KERAS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "IMGTFX_METADATA_SERVICE": f"sqlite:{store}",  # the cluster's service, here
            object_store.ENDPOINT_ENV: minio.url,  # the cluster's MinIO, here
        },
        metadata=store,
        workdir=str(tmp_path / "cluster"),
        secrets={runner.OBJECT_STORE_SECRET: {"accesskey": ACCESS_KEY, "secretkey": SECRET_KEY}},
        kfp_version=kfp_version,
    )
    # The tree uploaded to the bucket, the labels CSV inside it, and a sibling folder whose
    # name extends the tree's, which the launcher before 2.17 also downloads beside it.
    shutil.copytree(digits["images"], run.stored(tree))
    shutil.copyfile(digits["labels_csv"], run.stored(tree + "/labels.csv"))
    write(run.stored(tree + "-more/0/x.jpg"), b"not read")
    outputs = run.run()

    ran = [label for label, _ in run.log]
    assert "ImageExampleGen:driver" not in ran  # the open-source backend runs no hook
    assert {"ImageExampleGen", "Trainer", "Evaluator", "Pusher"} <= set(ran)
    examples = outputs["ImageExampleGen"]["examples"][0]
    assert examples["uri"].startswith("minio://mlpipeline/v2/artifacts/image-classification/")
    assert examples["metadata"]["examples"] == 240  # every digit read from the bucket's copy
    in_tree = sum(len(names) for _, _, names in os.walk(run.stored(tree)))  # images, CSV
    assert examples["metadata"]["files_seen"] == in_tree  # the sibling folder's not among them
    assert os.path.isdir(os.path.join(run.stored(examples["uri"]), "Split-train"))  # uploaded
    blessing = outputs["Evaluator"]["blessing"][0]
    assert blessing["metadata"]["blessed"] == 1
    pushed = outputs["Pusher"]["pushed_model"][0]
    assert pushed["metadata"]["pushed"] == 1
    assert pushed["metadata"]["pushed_destination"] == pushed["uri"]  # the served copy
    served = tf.saved_model.load(run.stored(pushed["uri"]))
    jpg = next(
        os.path.join(folder, name)
        for folder, _, names in os.walk(digits["images"])
        for name in sorted(names)
        if name.endswith(".jpg") and name not in ("empty.jpg", "truncated.jpg")
    )
    out = served.signatures[model.IMAGES_SIGNATURE](images=tf.constant([open(jpg, "rb").read()]))
    assert out[model.LABEL_NAME].numpy()[0].decode() in {str(d) for d in range(10)}

    model_uri = outputs["Trainer"]["model"][0]["uri"]
    assert model_uri.startswith("minio://")  # in ML Metadata as the remote URI, not the pod's
    assert latest_blessed_model(connect(f"sqlite:{store}"), "image-classification") == model_uri
    tasks = run.pipeline["root"]["dag"]["tasks"]
    requests = minio.requests
    run.run_task("Evaluator", tasks["Evaluator"])  # the next run's evaluation
    minio.close()
    if "executor-logs" in outputs["Evaluator"]:  # from 2.5
        logs = open(run.stored(outputs["Evaluator"]["executor-logs"][0]["uri"])).read()
        assert "baseline skipped" not in logs
    assert minio.requests > requests  # the model copied out of the bucket
    blessing = outputs["Evaluator"]["blessing"][0]["metadata"]
    assert blessing["blessed"] == 1 and blessing["baseline_model"] == model_uri


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


def _use_entrypoint(pipeline: dict, task: str, module: str) -> None:
    name = pipeline["root"]["dag"]["tasks"][task]["componentRef"]["name"]
    executor = pipeline["deploymentSpec"]["executors"][
        pipeline["components"][name]["executorLabel"]
    ]
    executor["container"]["command"][-1] = module


@pytest.mark.slow
@pytest.mark.parametrize(
    "kfp_version, bare_task, crash",
    [
        # tensorflow/tfx#7768: inputs rebuilt from ML Metadata with an empty schema.
        ("2.4.1", "StatisticsGen", "AttributeError: 'NoneType' object has no attribute 'get'"),
        # The driver's executor-logs output, typed system.Artifact, from KFP 2.5.0.
        ("2.5.0", "ImageExampleGen", "ImportError: Could not import system.Artifact"),
    ],
)
def test_each_backend_contract_crashes_tfxs_entrypoint_and_runs_ours(
    tmp_path, kfp_version, bare_task, crash
):
    """The emulation fails what a cluster of that release fails (TFX's bare entrypoint), and
    the project's entrypoint runs the same task under it."""
    digits = write_digits_tree(str(tmp_path / "digits"), limit=120)
    spec_file = str(tmp_path / "pipeline.yaml")
    runner.compile_pipeline(
        pipeline_root="gs://bucket/root",
        images="gs://not/used",
        image=IMAGE,
        output_file=spec_file,
        labels_csv=digits["labels_csv"],
        min_accuracy=0.0,
    )
    run = spec_runner.LocalSpecRunner(
        spec_runner.load_spec(spec_file),
        root="s3://artifacts/v2",
        workdir=str(tmp_path / "cluster"),
        parameters={runner.IMAGES_PARAMETER: digits["images"]},
        env={"TF_CPP_MIN_LOG_LEVEL": "3"},
        kfp_version=kfp_version,
    )
    tasks = run.pipeline["root"]["dag"]["tasks"]
    for name in ("ImageExampleGen", "StatisticsGen"):
        if name == bare_task:
            _use_entrypoint(run.pipeline, name, entrypoint.TFX_ENTRYPOINT)
            with pytest.raises(spec_runner.TaskFailed) as failed:
                run.run_task(name, tasks[name])
            assert f"task {name} exited" in str(failed.value) and crash in str(failed.value)
            _use_entrypoint(run.pipeline, name, runner.ENTRYPOINT)
        run.run_task(name, tasks[name])

    examples = run.outputs["ImageExampleGen"]["examples"][0]
    report = os.path.join(run.stored(examples["uri"]), "report.json")
    report = json.load(open(report, encoding="utf-8"))
    assert examples["metadata"]["examples"] == report["examples"] > 0
    assert examples["id"] and examples["metadata"]["display_name"] == "examples"
    statistics = run.outputs["StatisticsGen"]["statistics"][0]["uri"]
    assert os.listdir(os.path.join(run.stored(statistics), "Split-train"))  # uploaded
    # 2.4+: every output under its task's own uuid folder.
    assert statistics.split("/")[-3] == "StatisticsGen"
    if kfp_version >= "2.5.0":
        logs = run.outputs["StatisticsGen"]["executor-logs"][0]
        assert logs["type"] == {"schemaTitle": "system.Artifact"}
        assert os.path.getsize(run.stored(logs["uri"])) > 0  # the task's output, kept


def test_submit_starts_a_run_with_its_pipeline_root_through_kfps_own_client(
    tmp_path, monkeypatch, capsys
):
    """The HTTP requests kfp.Client itself builds (only the network is replaced): the run
    carries pipeline_root in its runtime config, where the backend reads it."""
    import urllib3

    from imgtfx import cli

    compile_to(tmp_path, "pipeline.yaml", pipeline_root="minio://mlpipeline/v2/artifacts")
    package = str(tmp_path / "spec" / "pipeline.yaml")
    sent = []

    def answer(self, method, url, fields=None, headers=None, **kwargs):
        sent.append((method, url, json.loads(kwargs["body"]) if kwargs.get("body") else None))
        data = {}
        if method == "POST" and url.endswith("/experiments"):
            data = {"experiment_id": "exp-1"}
        elif method == "POST" and url.endswith("/runs"):
            data = {"run_id": "run-1"}
        return urllib3.HTTPResponse(
            body=json.dumps(data).encode(), status=200, headers={"Content-Type": "application/json"}
        )

    monkeypatch.setattr(urllib3.PoolManager, "request", answer)
    code = cli.main(
        [
            "submit", package, "--host", "http://ml-pipeline-ui.kubeflow",
            "--pipeline-root", "s3://artifacts/v2", "--images", "s3://data/landmarks",
            "--train-steps", "300", "--run-name", "contest", "--namespace", "team-a",
        ]
    )  # fmt: skip
    assert code == 0
    assert "submitted: run run-1 with pipeline root s3://artifacts/v2" in capsys.readouterr().out
    method, url, body = sent[-1]
    assert (method, url) == ("POST", "http://ml-pipeline-ui.kubeflow/apis/v2beta1/runs")
    assert body["runtime_config"]["pipeline_root"] == "s3://artifacts/v2"
    assert body["runtime_config"]["parameters"] == {
        runner.IMAGES_PARAMETER: "s3://data/landmarks",
        runner.TRAIN_ARGS_PARAMETER: json.dumps({"num_steps": 300}),
    }
    assert body["display_name"] == "contest" and body["experiment_id"] == "exp-1"
    # With a platform spec (the Evaluator's secret), kfp sends both, each a sub-struct; the API
    # server joins them into the two-document YAML (server/api_util.go
    # pipelineSpecStructToYamlString, 2.2.0 :119-148, the same at 2.15.0).
    sent_spec = body["pipeline_spec"]
    assert sent_spec["pipeline_spec"]["pipelineInfo"]["name"] == "image-classification"
    kubernetes = sent_spec["platform_spec"]["platforms"]["kubernetes"]
    assert "secretAsEnv" in kubernetes["deploymentSpec"]["executors"]["Evaluator_executor"]
    experiment = next(b for m, u, b in sent if m == "POST" and u.endswith("/experiments"))
    assert experiment["namespace"] == "team-a"

    code = cli.main(["submit", package, "--pipeline-root", "/mnt/root"])
    assert code == 2 and "/mnt/root cannot be used" in capsys.readouterr().err


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
    pipeline = spec_runner.load_spec(output)["pipelineSpec"]
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
