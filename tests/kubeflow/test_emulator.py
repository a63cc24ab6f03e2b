"""The emulated backend's rules, each on a package made here of one or two tasks (a `python -c`
command in its pod), checked against the behaviour the KFP source gives at the tag cited in
tests/kubeflow/kfp_emulator/launcher.py. Each test fails on the rule the emulator had before it
was read again against the source (this project's issue 29)."""

from __future__ import annotations

import json
import os

import pytest

from tests.kubeflow import kfp_emulator
from tests.kubeflow.kfp_emulator import launcher

ROOT = "minio://mlpipeline/v2/artifacts"
# The task's command: writes `text` into each output's pod mirror and reports, for output
# "out", the URI and metadata in REPORT (JSON), then exits with EXIT.
COMMAND = r"""
import json, os, sys
executor_input = json.loads(sys.argv[1])
report = json.loads(os.environ.get("REPORT", "{}"))
print("the task ran")
for key, value in executor_input["outputs"]["artifacts"].items():
    for artifact in value["artifacts"]:
        path = artifact["uri"].replace("minio://", "/minio/").replace("s3://", "/s3/")
        if key != "executor-logs" and path.startswith("/"):
            os.makedirs(path, exist_ok=True)
            open(os.path.join(path, "data.txt"), "w").write("written")
output = executor_input["outputs"]["outputFile"]
os.makedirs(os.path.dirname(output), exist_ok=True)
json.dump({"artifacts": {"out": {"artifacts": [report]}}} if report else {}, open(output, "w"))
sys.exit(int(os.environ.get("EXIT", "0")))
"""


def _package(parameters=None, definitions=None, importer=None, platform=None) -> dict:
    """Task `a` (a container with output `out`), after importer task `imp` when `importer`
    (an ImporterSpec) is given, whose artifact is `a`'s input `data`."""
    artifact = {"artifactType": {"schemaTitle": "system.Artifact", "schemaVersion": "0.0.1"}}
    component = {
        "executorLabel": "exec-a",
        "outputDefinitions": {"artifacts": {"out": artifact}},
        "inputDefinitions": {"parameters": definitions or {}},
    }
    task = {
        "componentRef": {"name": "comp-a"},
        "taskInfo": {"name": "a"},
        "inputs": {"parameters": parameters or {}},
    }
    components = {"comp-a": component}
    executors = {
        "exec-a": {"container": {"image": "x", "command": ["python", "-c", COMMAND, "{{$}}"]}}
    }
    tasks = {"a": task}
    if importer:
        components["comp-imp"] = {
            "executorLabel": "exec-imp",
            "outputDefinitions": {"artifacts": {"artifact": artifact}},
        }
        executors["exec-imp"] = {"importer": importer}
        tasks["imp"] = {"componentRef": {"name": "comp-imp"}, "taskInfo": {"name": "imp"}}
        task["dependentTasks"] = ["imp"]
        task["inputs"]["artifacts"] = {
            "data": {"taskOutputArtifact": {"producerTask": "imp", "outputArtifactKey": "artifact"}}
        }
        component["inputDefinitions"]["artifacts"] = {"data": artifact}
    return {
        "pipelineSpec": {
            "schemaVersion": "2.1.0",
            "pipelineInfo": {"name": "p"},
            "components": components,
            "deploymentSpec": {"executors": executors},
            "root": {"dag": {"tasks": tasks}},
        },
        "runtimeConfig": {"parameterValues": {}},
        "platformSpec": platform or {},
        "launcher": "kfp",
    }


def _run(tmp_path, package, kfp_version="2.15.0", env=None, metadata=False, **kwargs):
    store = None
    if metadata:
        os.makedirs(tmp_path / "metadata", exist_ok=True)
        store = str(tmp_path / "metadata" / "metadata.sqlite")
    return kfp_emulator.LocalSpecRunner(
        package,
        root=ROOT,
        workdir=str(tmp_path / "cluster"),
        kfp_version=kfp_version,
        env=env or {},
        metadata=store,
        **kwargs,
    )


def _task(run, name="a"):
    return run.pipeline["root"]["dag"]["tasks"][name]


def test_an_output_outside_the_roots_prefix_fails_and_one_with_no_store_is_skipped(tmp_path):
    """KeyFromURI checks scheme, bucket and prefix (not the bucket alone); a URI the launcher
    has no mirror for is a warning, not a failure (before: any URI outside the bucket failed)."""
    elsewhere = {"uri": "minio://mlpipeline/elsewhere/out", "metadata": {}}
    first = _run(tmp_path, _package(), env={"REPORT": json.dumps(elsewhere)})
    with pytest.raises(kfp_emulator.TaskFailed, match='expected bucket prefix "minio://mlpipe'):
        first.run_task("a", _task(first))
    assert not os.path.exists(first.stored("minio://mlpipeline/elsewhere"))  # nothing uploaded
    no_store = {"uri": "https://models.example/out", "metadata": {"kept": 1}}
    run = _run(tmp_path / "2", _package(), env={"REPORT": json.dumps(no_store)})
    run.run_task("a", _task(run))
    assert run.outputs["a"]["out"][0]["uri"] == "https://models.example/out"  # recorded as is
    with pytest.raises(kfp_emulator.TaskFailed, match="has empty key"):
        launcher.upload_key("out", ROOT, ROOT, "/minio/mlpipeline/v2/artifacts")


def test_reported_metadata_is_merged_into_the_provisioned_artifact():
    """mergeRuntimeArtifacts: reported keys over the provisioned ones, an empty URI ignored
    (before: the reported metadata replaced the artifact's, an empty URI emptied it)."""
    provisioned = {"uri": f"{ROOT}/x", "metadata": {"display_name": "out", "a": 1}}
    launcher.merge_runtime_artifact(provisioned, {"uri": "", "metadata": {"a": 2, "b": 3}})
    assert provisioned == {"uri": f"{ROOT}/x", "metadata": {"display_name": "out", "a": 2, "b": 3}}
    launcher.merge_runtime_artifact(provisioned, {"uri": f"{ROOT}/y"})  # no metadata: kept
    assert provisioned["uri"] == f"{ROOT}/y" and provisioned["metadata"]["b"] == 3


@pytest.mark.parametrize(
    "kfp_version, strict",
    [("2.2.0", True), ("2.5.0", False), ("2.14.3", True)]
    + [("2.15.0", True), ("2.16.1", True), ("2.17.0", True)],
)
def test_secret_as_env_is_parsed_strictly_by_the_2_14_to_2_17_compilers(kfp_version, strict):
    """A field the release does not know fails the run from 2.14 on, 2.15 and 2.17 included
    (before: lenient from 2.15)."""
    entry = {"secretName": "s", "keyToEnv": [{"secretKey": "k", "envVar": "V"}], "future": 1}
    platform = {"deploymentSpec": {"executors": {"e": {"secretAsEnv": [entry]}}}}
    version = tuple(int(p) for p in kfp_version.split("."))
    secrets = {"s": {"k": "v"}}
    if strict:
        with pytest.raises(kfp_emulator.TaskFailed, match='unknown field "future"'):
            launcher.secret_env(platform, "t", "e", secrets, version)
    else:
        assert launcher.secret_env(platform, "t", "e", secrets, version) == {"V": "v"}


def test_an_optional_secret_tolerates_a_missing_key_as_kubernetes_does():
    """SecretKeySelector.optional covers the key as well as the secret (before: the secret
    only)."""
    entry = {"secretName": "s", "optional": True, "keyToEnv": []}
    entry["keyToEnv"] = [{"secretKey": "k", "envVar": "V"}, {"secretKey": "gone", "envVar": "W"}]
    platform = {"deploymentSpec": {"executors": {"e": {"secretAsEnv": [entry]}}}}
    assert launcher.secret_env(platform, "t", "e", {"s": {"k": "v"}}, (2, 15, 0)) == {"V": "v"}
    assert launcher.secret_env(platform, "t", "e", {}, (2, 15, 0)) == {}
    entry["optional"] = False
    with pytest.raises(kfp_emulator.TaskFailed, match="couldn't find key gone in Secret s"):
        launcher.secret_env(platform, "t", "e", {"s": {"k": "v"}}, (2, 15, 0))


def test_the_importer_checks_the_scheme_from_2_3_and_reuses_a_matching_artifact(tmp_path):
    """importer_launcher.go 2.3.0: the scheme check and a fromEnv session (before: from
    2.4.1); FindMatchedArtifact: the same import again is the same artifact, unless reimport
    (before: a new one each time)."""
    importer = {
        "artifactUri": {"constant": "https://host/w.h5"},
        "typeSchema": {"schemaTitle": "system.Model"},
    }
    run = _run(tmp_path, _package(importer=importer), kfp_version="2.3.0")
    with pytest.raises(kfp_emulator.TaskFailed, match="No Provider scheme found in artifact Uri"):
        run.run_task("imp", _task(run, "imp"))
    importer["artifactUri"] = {"constant": f"{ROOT}/weights/w.h5"}
    run = _run(tmp_path / "2", _package(importer=importer), kfp_version="2.3.0")
    run.run_task("imp", _task(run, "imp"))
    first = run.outputs["imp"]["artifact"][0]
    assert json.loads(first["metadata"]["store_session_info"])["Params"] == {"fromEnv": "true"}
    run.run_task("imp", _task(run, "imp"))
    assert run.outputs["imp"]["artifact"][0]["id"] == first["id"]
    importer["reimport"] = True
    run.run_task("imp", _task(run, "imp"))
    assert run.outputs["imp"]["artifact"][0]["id"] != first["id"]


def test_the_driver_checks_and_converts_input_parameters(tmp_path):
    """validateNonRoot / resolve.go: a STRING parameter takes a number as its text, another type
    refuses a string, a missing non-optional one with no default fails, a missing optional one
    is left out (before: every value passed as it was)."""
    definitions = {
        "name": {"parameterType": "STRING"},
        "steps": {"parameterType": "NUMBER_INTEGER"},
        "extra": {"parameterType": "STRING", "isOptional": True},
    }

    def constant(value):
        return {"runtimeValue": {"constant": value}}

    package = _package({"name": constant(5.0), "steps": constant(10)}, definitions)
    run = _run(tmp_path, package)
    run.run_task("a", _task(run))
    (_, argv) = run.log[-1]
    parameters = json.loads(argv[-1])["inputs"]["parameterValues"]
    assert parameters == {"name": "5", "steps": 10}
    package = _package({"name": constant("x"), "steps": constant("10")}, definitions)
    run = _run(tmp_path / "2", package)
    with pytest.raises(kfp_emulator.TaskFailed, match='"steps" type mismatch: expect NUMBER_INT'):
        run.run_task("a", _task(run))
    run = _run(tmp_path / "3", _package({"name": constant("x")}, definitions))
    with pytest.raises(kfp_emulator.TaskFailed, match='non-optional parameter "steps"'):
        run.run_task("a", _task(run))
    assert not run.log  # refused before any pod


@pytest.mark.parametrize("kfp_version", ["2.15.0", "2.16.1", "2.17.0"])
def test_a_failed_task_is_published_failed_with_its_logs_from_2_16(tmp_path, kfp_version):
    """launcher_v2.go 2.16: the executor-logs of a failed command are uploaded and recorded,
    no other output, and the execution FAILED (before: nothing uploaded or recorded)."""
    run = _run(tmp_path, _package(), kfp_version, env={"EXIT": "1"}, metadata=True)
    with pytest.raises(kfp_emulator.TaskFailed, match="exited 1"):
        run.run_task("a", _task(run))
    assert run.states["a"] == "FAILED"
    if kfp_version == "2.15.0":
        assert run.outputs["a"] == {}
        return
    assert set(run.outputs["a"]) == {"executor-logs"}
    logs = run.outputs["a"]["executor-logs"][0]["uri"]
    assert logs.endswith("executor-logs-0")  # the retry index, from 2.16.1
    with open(run.stored(logs), encoding="utf-8") as f:
        assert "the task ran" in f.read()
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(tmp_path / "metadata" / "metadata.sqlite")
    executions = metadata_store.MetadataStore(config).get_executions()
    assert [e.last_known_state for e in executions] == [pb.Execution.FAILED]


KEYS = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"}


@pytest.mark.parametrize(
    "uri, kfp_version, env, refused",
    [
        # The ImageTree importer this package had: a tree in KFP's MinIO, another bucket.
        ("minio://datasets/train", "2.15.0", {}, 'no driver registered for "minio"'),
        ("minio://datasets/train", "2.15.0", {"AWS_ACCESS_KEY_ID": "a"}, "no driver registered"),
        ("minio://datasets/train", "2.17.0", {}, "NoCredentialProviders"),
        ("minio://datasets/train", "2.17.0", KEYS, "addresses AWS S3"),
        ("minio://datasets/train", "2.17.0", {**KEYS, "AWS_ENDPOINT_URL": "http://m"}, "Bucket"),
        ("s3://landmarks/train", "2.15.0", {}, "NoCredentialProviders"),
        (
            "s3://landmarks/train",
            "2.15.0",
            {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"},
            None,
        ),
        ("minio://mlpipeline/datasets/train", "2.15.0", {}, None),  # the root's bucket
        ("gs://landmarks/train", "2.15.0", {}, None),  # Google's default credentials
    ],
)
def test_an_input_outside_the_roots_bucket_gets_no_credentials(
    tmp_path, monkeypatch, uri, kfp_version, env, refused
):
    """fetchNonDefaultBuckets / OpenBucket with no session (before: every input was copied,
    whatever its bucket)."""
    for name in (*KEYS, "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)  # the pod's env is the test's, not this shell's
    importer = {"artifactUri": {"constant": uri}, "typeSchema": {"schemaTitle": "system.Dataset"}}
    run = _run(tmp_path, _package(importer=importer), kfp_version, env=env)
    os.makedirs(run.stored(uri))
    with open(os.path.join(run.stored(uri), "0.jpg"), "w") as f:
        f.write("jpeg")
    run.run_task("imp", _task(run, "imp"))
    if refused:
        with pytest.raises(kfp_emulator.TaskFailed, match=refused):
            run.run_task("a", _task(run))
        assert not run.log  # before the command
    else:
        run.run_task("a", _task(run))
        assert run.log[-1][0] == "a"
