"""Compiling for each install (kubeflow/target.py, kubeflow/stores.py): the secrets each task
reads and how every release's backend maps them, an s3:// root's keys, region and kfp-launcher
ConfigMap, a package with no root for any profile namespace, and what a profile would refuse,
noted at compile time."""

from __future__ import annotations

import json
import os

import pytest
from google.protobuf import json_format

from imgtfx.components import object_store
from imgtfx.kubeflow import runner, stores
from tests.helpers.kfp_packages import IMAGE, compile_to
from tests.kubeflow import kfp_emulator


def test_evaluator_gets_the_minio_secret_every_backend_applies(tmp_path, make_cluster):
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
    for version in ("2.2.0", "2.4.1", "2.5.0", "2.14.3", "2.15.0"):
        cluster = make_cluster(version)
        secrets = cluster.secrets(kfp_emulator.KUBEFLOW)
        secrets["mlpipeline-minio-artifact"] = {"accesskey": "a", "secretkey": "s"}
        run = kfp_emulator.LocalSpecRunner(kfp_emulator.load_spec(package), cluster=cluster)
        env = run._secret_env("Evaluator", "Evaluator_executor")
        assert env == {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"}, version
        kept = secrets.pop("mlpipeline-minio-artifact")
        with pytest.raises(kfp_emulator.TaskFailed, match="secret .* not found"):
            run._secret_env("Evaluator", "Evaluator_executor")
        secrets["mlpipeline-minio-artifact"] = kept
        entry = run.platform["deploymentSpec"]["executors"]["Evaluator_executor"]["secretAsEnv"][0]
        entry["optional"] = False  # as kfp-kubernetes 2.15 writes it
        if version in ("2.2.0", "2.14.3"):
            with pytest.raises(kfp_emulator.TaskFailed, match='unknown field "optional"'):
                run._secret_env("Evaluator", "Evaluator_executor")
        else:
            assert run._secret_env("Evaluator", "Evaluator_executor") == env

    assert not compile_to(tmp_path, "gcs.yaml", pipeline_root="gs://b/r")["platformSpec"]
    none = compile_to(
        tmp_path, "none.yaml", pipeline_root="minio://b/r", object_store_secret="none"
    )
    assert not none["platformSpec"]


def _secret_names(spec: dict) -> dict[str, list[str]]:
    executors = spec["platformSpec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    return {e: [entry["secretName"] for entry in v["secretAsEnv"]] for e, v in executors.items()}


def test_an_s3_root_gives_every_task_its_keys_and_region_as_the_launcher_reads_them(tmp_path):
    """With no providers entry the launcher opens an s3:// root with the AWS SDK's default
    chain in each task's pod (config/s3.go fromEnv; objectstore.OpenBucket): every container
    task gets the keys and AWS_REGION; an S3-compatible endpoint also gets the providers entry
    the launcher needs, written beside the package."""
    spec = compile_to(
        tmp_path,
        "aws.yaml",
        pipeline_root="s3://landmark-runs/root",
        object_store_secret="aws-keys,region=ap-northeast-2",
    )
    pipeline = spec["pipelineSpec"]
    containers = [
        t for t in pipeline["root"]["dag"]["tasks"]
        if "container" in pipeline["deploymentSpec"]["executors"][runner.executor_of(pipeline, t)]
    ]  # fmt: skip
    names = _secret_names(spec)
    assert set(names) == {runner.executor_of(pipeline, t) for t in containers}
    assert all(v == ["aws-keys"] for v in names.values())
    for task in containers:
        env = {e["name"]: e["value"] for e in runner.container_of(pipeline, task)["env"]}
        assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "ap-northeast-2", task
    assert not os.path.exists(tmp_path / "spec" / "aws.kfp-launcher.yaml")  # AWS: none needed

    compile_to(
        tmp_path,
        "own.yaml",
        pipeline_root="s3://runs/root",
        object_store_secret="store-keys,endpoint=store.example:9000,disableSSL=true,"
        "accessKeyKey=AWS_ACCESS_KEY_ID,secretKeyKey=AWS_SECRET_ACCESS_KEY",
    )
    import yaml

    with open(tmp_path / "spec" / "own.kfp-launcher.yaml", encoding="utf-8") as f:
        configmap = yaml.safe_load(f)
    assert (configmap["kind"], configmap["metadata"]["name"]) == ("ConfigMap", "kfp-launcher")
    providers = yaml.safe_load(configmap["data"]["providers"])["s3"]["default"]
    assert providers["endpoint"] == "store.example:9000" and providers["disableSSL"] is True
    assert providers["forcePathStyle"] is True
    assert providers["credentials"]["secretRef"] == {
        "secretName": "store-keys",
        "accessKeyKey": "AWS_ACCESS_KEY_ID",
        "secretKeyKey": "AWS_SECRET_ACCESS_KEY",
    }
    own = kfp_emulator.load_spec(str(tmp_path / "spec" / "own.yaml"))
    env = runner.container_of(own["pipelineSpec"], "Evaluator")["env"]
    assert {"name": object_store.ENDPOINT_ENV, "value": "http://store.example:9000"} in env

    for secret, message in ((None, "give --object-store-secret"), ("k", "add ,region=REGION")):
        with pytest.raises(ValueError, match=message):
            compile_to(tmp_path, "x.yaml", pipeline_root="s3://b/r", object_store_secret=secret)


def test_a_package_for_any_namespace_is_compiled_with_no_root(tmp_path, capsys):
    """Multi-user Kubeflow gives each profile its own root (its kfp-launcher ConfigMap): the
    package names none, nor any host of KFP's store, and serves from the Pusher's own artifact;
    data and weights under the profile's own prefixes pass without a note."""
    from imgtfx import cli

    output = str(tmp_path / "any.yaml")
    data = "minio://mlpipeline/private/team-a/landmarks"
    code = cli.main(
        [
            "compile", "--images", f"{data}/train", "--labels", f"{data}/train.csv",
            "--backbone", "mobilenet_v3_small",
            "--weights", "minio://mlpipeline/shared/weights/mobilenet_v3_small_notop.h5",
            "--image", IMAGE, "--output", output,
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "note:" not in captured.err
    with open(output, encoding="utf-8") as f:
        text = f.read()
    for absent in ("defaultPipelineRoot", "v2/artifacts", "minio-service", "seaweedfs"):
        assert absent not in text, absent
    spec = kfp_emulator.load_spec(output)
    pipeline = spec["pipelineSpec"]
    pusher = pipeline["root"]["dag"]["tasks"]["Pusher"]["inputs"]["parameters"]
    destination = json.loads(pusher["push_destination"]["runtimeValue"]["constant"])
    assert destination["filesystem"]["base_directory"] == stores.SERVED_FROM_ARTIFACT
    names = _secret_names(spec)
    assert names["Evaluator_executor"] == ["mlpipeline-minio-artifact"]
    assert names["ImageExampleGen_executor"] == ["mlpipeline-minio-artifact"]  # the profile's
    env = runner.container_of(pipeline, "ImageExampleGen")["env"]
    assert not [e for e in env if e["name"] == "IMGTFX_DATA_ENDPOINT"]  # found in the pod


@pytest.mark.parametrize(
    "flags, note",
    [
        (["--images", "minio://datasets/landmarks/train"], "minio://datasets/landmarks/train"),
        (["--images", "minio://mlpipeline/landmarks/train"], "minio://mlpipeline/landmarks"),
        (
            ["--images", "gs://b/i", "--pipeline-root", "minio://mlpipeline/v2/artifacts"],
            "cannot write minio://mlpipeline/v2/artifacts",
        ),
    ],
)
def test_what_a_profile_would_refuse_is_noted_at_compile(tmp_path, capsys, flags, note):
    from imgtfx import cli

    output = str(tmp_path / "p.yaml")
    assert cli.main(["compile", *flags, "--image", IMAGE, "--output", output]) == 0
    err = capsys.readouterr().err
    assert "note: on multi-user Kubeflow" in err and note in err


def test_weights_outside_kfps_bucket_are_refused_without_a_root(tmp_path):
    from imgtfx.trainer.options import TrainerOptions

    options = TrainerOptions(backbone="mobilenet_v3_small", weights="minio://models/w.h5")
    with pytest.raises(ValueError, match="outside KFP's own bucket minio://mlpipeline/"):
        compile_to(tmp_path, "w.yaml", pipeline_root=None, trainer_options=options)
