"""Data in the users' own bucket (docs/guides/kubeflow.md, "Data in your own bucket"): the compile
commands the README gives, read back with kfp's own package loader; ImageExampleGen's
entrypoint copying a tree and CSV out of a second store with that store's own keys; and the
emulated cluster refusing the task, as Kubernetes does, when the secret is missing."""

from __future__ import annotations

import json
import os

import pytest
from google.protobuf import json_format

from imgtfx.components.object_store import ObjectStoreError, data_environ
from imgtfx.kubeflow import entrypoint
from tests.helpers import doc_commands
from tests.helpers.kfp_packages import IMAGE, compile_package
from tests.helpers.seaweedfs import unique
from tests.kubeflow import kfp_emulator

ROOT = "minio://mlpipeline/v2/artifacts"
EXAMPLE_GEN = "ImageExampleGen_executor"


def _compile(tmp_path, capsys, *flags):
    """imgtfx compile with `flags`, for a package in a standalone install's default root."""
    from imgtfx import cli

    output = str(tmp_path / "pipeline.yaml")
    code = cli.main(
        ["compile", "--pipeline-root", ROOT, "--image", IMAGE, "--output", output, *flags]
    )
    return code, output, capsys.readouterr().err


def _read_back(output):
    from kfp.client.client import _extract_pipeline_yaml

    package = _extract_pipeline_yaml(output)
    spec = json_format.MessageToDict(package.pipeline_spec)
    platform = json_format.MessageToDict(package.platform_spec)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    executor = spec["deploymentSpec"]["executors"][EXAMPLE_GEN]["container"]
    env = {e["name"]: e["value"] for e in executor.get("env", [])}
    return spec, executors.get(EXAMPLE_GEN, {}).get("secretAsEnv"), env


DATA_KEYS = ("IMGTFX_DATA_ACCESS_KEY_ID", "IMGTFX_DATA_SECRET_ACCESS_KEY")


@pytest.mark.parametrize(
    "heading, marker, secret, keys, env",
    [
        (  # KFP's own store, another bucket (standalone): KFP's secret, the store found in-pod
            "Standalone Kubeflow Pipelines",
            "minio://datasets",
            "mlpipeline-minio-artifact",
            ("accesskey", "secretkey"),
            {},
        ),
        (  # the profile's own prefix: the profile's key, in the same secret
            "Multi-user Kubeflow: a profile namespace",
            "minio://mlpipeline/private/",
            "mlpipeline-minio-artifact",
            ("accesskey", "secretkey"),
            {},
        ),
        (  # AWS S3
            "3. Data in your own bucket",
            "landmarks-s3",
            "landmarks-s3",
            ("accesskey", "secretkey"),
            {"IMGTFX_DATA_REGION": "ap-northeast-2"},
        ),
        (  # an S3-compatible store of one's own (another MinIO, Ceph), keys named as AWS names
            "3. Data in your own bucket",
            "datasets-store",
            "datasets-store",
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
            {"IMGTFX_DATA_ENDPOINT": "http://minio.data.svc:9000"},
        ),
        ("3. Data in your own bucket", "gs://my-landmarks", None, None, {}),  # Workload Identity
    ],
    ids=["kfp-store", "profile", "aws-s3", "s3-compatible", "gcs"],
)
def test_each_store_s_compile_command_names_the_secret_image_example_gen_reads(
    tmp_path, capsys, heading, marker, secret, keys, env
):
    """The README's compile command for each store, as a user copies it."""
    from imgtfx import cli

    output = str(tmp_path / "pipeline.yaml")
    replace = {'"$IMAGE"': IMAGE, "image-classification.yaml": output, "PROFILE": "team-a"}
    (argv,) = [
        c
        for c in doc_commands.commands(heading, replace=replace)
        if c[0] == "compile" and marker in " ".join(c)
    ]
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 0, err
    spec, secret_as_env, container_env = _read_back(output)
    if secret is None:
        assert secret_as_env is None
        assert "ImageExampleGen reads" not in spec["pipelineInfo"]["description"]
    else:
        assert secret_as_env == [
            {
                "secretName": secret,
                "keyToEnv": [
                    {"secretKey": key, "envVar": var}
                    for key, var in zip(keys, DATA_KEYS, strict=True)
                ],
            }
        ]
        assert f"ImageExampleGen reads secret {secret}" in spec["pipelineInfo"]["description"]
    assert {k: v for k, v in container_env.items() if k.startswith("IMGTFX_DATA_")} == env
    # The Evaluator still reads the root's MinIO with KFP's secret, under AWS_* as before.
    assert "Evaluator reads secret mlpipeline-minio-artifact" in spec["pipelineInfo"]["description"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--images", "s3://my-landmarks/train"], "give --data-secret NAME"),
        (["--images", "gs://b/t", "--data-secret", "Landmarks"], "begin with the secret's name"),
        (["--images", "gs://b/t", "--data-secret", "s,endpont=x"], "'endpont=x' is not one of"),
        (  # one secret cannot read two stores
            ["--images", "minio://datasets/train", "--labels", "s3://other/l.csv"],
            "reads s3://other/l.csv itself",
        ),
        (
            ["--images", "s3://b/t", "--data-secret", "s,accessKeyKey=k,secretKeyKey=k"],
            "are one key",
        ),
    ],
)
def test_data_no_secret_can_read_is_refused_at_compile_time(tmp_path, capsys, flags, message):
    code, output, err = _compile(tmp_path, capsys, *flags)
    assert code == 2 and message in err and err.strip().count("\n") == 0
    assert not os.path.exists(output)


def _tree(store, bucket):
    """A landmark tree in a bucket: Korean names, a CSV inside and one beside it."""
    files = {}
    for i in range(12):
        files[f"train/서울/경복궁/{i:02d}.jpg"] = bytes([i]) * 10
    files["train/inside.csv"] = b"id,landmark_id\n00,1\n"
    files["labels/train.csv"] = "id,landmark_id\n00,경복궁\n".encode()
    for name, data in files.items():
        store.put(f"s3://{bucket}/{name}", data)
    return files


def test_image_example_gen_copies_its_tree_and_csv_out_of_a_second_store(own_store, tmp_path):
    bucket = unique("landmarks")
    keys = own_store.user_key(unique("reader"), bucket)
    files = _tree(own_store, bucket)
    options = {"labels_csv": f"s3://{bucket}/labels/train.csv", "label_level": 2}
    executor_input = {
        "inputs": {
            "parameterValues": {
                "input_base": f"s3://{bucket}/train/",
                "options": json.dumps(options),
                "input_config": json.dumps({"splits": [{"name": "single_split"}]}),
            },
        },
        "outputs": {"artifacts": {}},
    }
    environ = {
        "AWS_ACCESS_KEY_ID": "the-root-s",  # the launcher's, left alone
        "AWS_SECRET_ACCESS_KEY": "x",
        "IMGTFX_DATA_ACCESS_KEY_ID": keys[0],
        "IMGTFX_DATA_SECRET_ACCESS_KEY": keys[1],
        "IMGTFX_DATA_ENDPOINT": own_store.url,
        "IMGTFX_DATA_REGION": "ap-northeast-2",
    }
    mount = str(tmp_path / "pod")
    copied = entrypoint.fetch_data(executor_input, data_environ(environ), mount)
    wrong = dict(environ, IMGTFX_DATA_SECRET_ACCESS_KEY="not-it")
    again = {"inputs": {"parameterValues": {"input_base": f"s3://{bucket}/train"}}}
    with pytest.raises(ObjectStoreError, match="403 SignatureDoesNotMatch"):
        entrypoint.fetch_data(again, data_environ(wrong), str(tmp_path / "pod2"))
    keyless = {k: v for k, v in environ.items() if not k.startswith("IMGTFX_DATA_")}
    with pytest.raises(ObjectStoreError, match="compile the package with --data"):
        entrypoint.fetch_data(again, data_environ(keyless), str(tmp_path / "pod3"))
    assert copied == [f"s3://{bucket}/train/", f"s3://{bucket}/labels/train.csv"]
    parameters = executor_input["inputs"]["parameterValues"]
    assert parameters["input_base"] == f"{mount}/s3/{bucket}/train/"
    assert json.loads(parameters["options"]) == {
        "labels_csv": f"{mount}/s3/{bucket}/labels/train.csv",
        "label_level": 2,
    }
    for name, data in files.items():
        with open(os.path.join(mount, "s3", bucket, name), "rb") as f:
            assert f.read() == data, name
    assert not entrypoint.fetch_data({"inputs": {"parameterValues": {"examples": "x"}}}, {})


def _cluster(tmp_path, make_cluster, secrets):
    output = str(tmp_path / "pipeline.yaml")
    compile_package(
        output,
        images="s3://landmarks/train",
        image=IMAGE,
        pipeline_root=ROOT,
        data_secret="landmarks-s3,endpoint=http://127.0.0.1:1,region=ap-northeast-2",
        min_accuracy=0.0,
    )
    cluster = make_cluster("2.15.0")
    cluster.secrets(kfp_emulator.KUBEFLOW).update(secrets)
    return kfp_emulator.LocalSpecRunner(
        kfp_emulator.load_spec(output), cluster=cluster, env={"TF_CPP_MIN_LOG_LEVEL": "3"}
    )


def test_without_the_data_secret_image_example_gen_never_starts(tmp_path, make_cluster):
    """As Kubernetes answers a pod whose secretKeyRef names a secret the namespace lacks."""
    run = _cluster(tmp_path, make_cluster, {})
    task = run.pipeline["root"]["dag"]["tasks"]["ImageExampleGen"]
    with pytest.raises(kfp_emulator.TaskFailed, match='secret "landmarks-s3" not found'):
        run.run_task("ImageExampleGen", task)
    assert not run.log  # no command ran


def test_a_store_that_refuses_fails_the_task_in_one_line(tmp_path, make_cluster):
    """The task's own command, in its pod, against a store it cannot reach: one line saying
    what and why, no traceback, and nothing converted."""
    run = _cluster(tmp_path, make_cluster, {"landmarks-s3": {"accesskey": "a", "secretkey": "s"}})
    task = run.pipeline["root"]["dag"]["tasks"]["ImageExampleGen"]
    with pytest.raises(kfp_emulator.TaskFailed) as failed:
        run.run_task("ImageExampleGen", task)
    message = str(failed.value)
    assert "ImageExampleGen cannot copy its data into the pod: cannot reach" in message
    assert "http://127.0.0.1:1/landmarks" in message
    assert "Traceback" not in message


@pytest.mark.parametrize(
    "heading, root",
    [
        ("Multi-user Kubeflow: a profile namespace", None),
        ("Standalone Kubeflow Pipelines", None),
        ("A root in your own S3 bucket", "s3://my-pipelines/root"),
        ("A root in your own S3 bucket", "s3://pipelines/root"),
    ],
)
def test_each_installs_commands_compile_and_submit_as_the_readme_says(
    tmp_path, capsys, monkeypatch, heading, root
):
    """Section 2's commands, copied as they are: the package compiles with no note of what the
    install would refuse, the kfp-launcher ConfigMap it writes is the one the README applies,
    and the run is created with the root the README names (none: the namespace's own)."""
    from imgtfx import cli

    spec = str(tmp_path / "image-classification.")
    replace = {'"$IMAGE"': IMAGE, "image-classification.": spec, "PROFILE": "team-a"}
    commands = doc_commands.commands(heading, replace=replace)
    for argv in commands:
        if argv[0] != "compile" or (root and f"--pipeline-root {root}" not in " ".join(argv)):
            continue
        assert cli.main(argv) == 0
        err = capsys.readouterr().err
        assert "error" not in err
        # KFP's store outside a profile's prefixes: fine here, and noted for multi-user users.
        assert ("note: on multi-user Kubeflow" in err) is heading.startswith("Standalone")
    written = os.path.exists(spec + "kfp-launcher.yaml")
    assert written is (root == "s3://pipelines/root")  # an S3-compatible root's providers entry
    if written:
        applied = doc_commands.commands(heading, program="kubectl", replace=replace)
        assert ["-n", "NAMESPACE", "apply", "-f", spec + "kfp-launcher.yaml"] in applied
    (submit,) = [c for c in commands if c[0] == "submit" and (not root or c[-1] == root)]
    sent = doc_commands.submitted(submit, monkeypatch)["runtime_config"]
    assert (sent.get("pipeline_root") or None) == root


def test_the_trainer_copies_its_non_landmarks_out_of_a_second_store(own_store, tmp_path):
    """--non-landmarks on s3://: the Trainer's entrypoint copies the folder in with the data
    secret's keys (a key the store grants that bucket only), and its options name the copy."""
    bucket = unique("distractors")
    keys = own_store.user_key(unique("reader"), bucket)
    photos = {f"non-landmarks/실내/{i:02d}.jpg": bytes([i]) * 20 for i in range(5)}
    for name, data in photos.items():
        own_store.put(f"s3://{bucket}/{name}", data)
    folder = f"s3://{bucket}/non-landmarks"
    config = {"neighbours": 3, "non_landmarks": folder}
    executor_input = {"inputs": {"parameterValues": {"custom_config": json.dumps(config)}}}
    environ = {
        "IMGTFX_DATA_ACCESS_KEY_ID": keys[0],
        "IMGTFX_DATA_SECRET_ACCESS_KEY": keys[1],
        "IMGTFX_DATA_ENDPOINT": own_store.url,
    }
    mount = str(tmp_path / "pod")
    assert entrypoint.fetch_non_landmarks(executor_input, data_environ(environ), mount) == folder
    options = json.loads(executor_input["inputs"]["parameterValues"]["custom_config"])
    assert options == {"neighbours": 3, "non_landmarks": f"{mount}/s3/{bucket}/non-landmarks"}
    for name, data in photos.items():
        with open(os.path.join(mount, "s3", bucket, name), "rb") as f:
            assert f.read() == data, name
    other = unique("elsewhere")  # a bucket the key was not given
    own_store.put(f"s3://{other}/non-landmarks/0.jpg", b"x")
    config = {"non_landmarks": f"s3://{other}/non-landmarks"}
    refused = {"inputs": {"parameterValues": {"custom_config": json.dumps(config)}}}
    with pytest.raises(ObjectStoreError, match="403"):
        entrypoint.fetch_non_landmarks(refused, data_environ(environ), str(tmp_path / "pod2"))
    gcs = {
        "inputs": {"parameterValues": {"custom_config": json.dumps({"non_landmarks": "gs://b/n"})}}
    }
    assert entrypoint.fetch_non_landmarks(gcs, {}) == ""  # TensorFlow reads gs:// itself


def test_compile_gives_the_trainer_the_data_secret_for_its_non_landmarks(tmp_path, capsys):
    """A --non-landmarks folder on KFP's own store: the Trainer's pod gets the secret that reads
    it, as ImageExampleGen's does, read back with kfp's own loader; a folder on this machine
    is refused in one line."""
    from kfp.client.client import _extract_pipeline_yaml

    flags = ["--images", "minio://datasets/train", "--non-landmarks", "minio://datasets/others"]
    code, output, err = _compile(tmp_path, capsys, *flags)
    assert code == 0, err
    package = _extract_pipeline_yaml(output)
    platform = json_format.MessageToDict(package.platform_spec)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    [secret] = executors["Trainer_executor"]["secretAsEnv"]
    assert secret["secretName"] == "mlpipeline-minio-artifact"
    assert {k["envVar"] for k in secret["keyToEnv"]} == set(DATA_KEYS)
    spec = json_format.MessageToDict(package.pipeline_spec)
    assert "Trainer reads secret mlpipeline-minio-artifact" in spec["pipelineInfo"]["description"]
    code, output, err = _compile(
        tmp_path, capsys, "--images", "minio://datasets/train", "--non-landmarks", "others"
    )
    assert code == 2 and "--non-landmarks others: the Trainer's pod reads a folder on" in err
    assert err.strip().count("\n") == 0
