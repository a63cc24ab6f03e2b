"""The emulated backend's rules, each on a package made here of one or two tasks (a `python -c`
command in its pod), checked against the behaviour the KFP source gives at the tag cited in
tests/kubeflow/kfp_emulator/launcher.py. Each test fails on the rule the emulator had before it
was read again against the source (this project's issue 29)."""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers.kfp_toy import ROOT
from tests.helpers.kfp_toy import task as _task
from tests.helpers.kfp_toy import toy_package as _package
from tests.helpers.seaweedfs import unique
from tests.kubeflow import kfp_emulator
from tests.kubeflow.kfp_emulator import launcher


def test_an_output_outside_the_roots_prefix_fails_and_one_with_no_store_is_skipped(
    run_on, seaweedfs
):
    """KeyFromURI checks scheme, bucket and prefix (not the bucket alone); a URI the launcher
    has no mirror for is a warning, not a failure (before: any URI outside the bucket failed)."""
    elsewhere = {"uri": f"minio://mlpipeline/{unique('elsewhere')}/out", "metadata": {}}
    first = run_on(_package(), env={"REPORT": json.dumps(elsewhere)})
    with pytest.raises(kfp_emulator.TaskFailed, match='expected bucket prefix "minio://mlpipe'):
        first.run_task("a", _task(first))
    assert not seaweedfs.keys(elsewhere["uri"].rsplit("/", 1)[0])  # nothing uploaded
    # Under the root, but another run's: the launcher's prefix is this run's (A4).
    other_run = {"uri": f"{ROOT}/p/{unique('another-run')}/a/out", "metadata": {}}
    again = run_on(_package(), env={"REPORT": json.dumps(other_run)})
    with pytest.raises(kfp_emulator.TaskFailed, match=f'prefix "{ROOT}/p/{again.run_id}"'):
        again.run_task("a", _task(again))
    no_store = {"uri": "https://models.example/out", "metadata": {"kept": 1}}
    run = run_on(_package(), env={"REPORT": json.dumps(no_store)})
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


def test_the_importer_checks_the_scheme_from_2_3_and_reuses_a_matching_artifact(run_on):
    """importer_launcher.go 2.3.0: the scheme check and a fromEnv session (before: from
    2.4.1); FindMatchedArtifact: the same import again is the same artifact, unless reimport
    (before: a new one each time)."""
    importer = {
        "artifactUri": {"constant": "https://host/w.h5"},
        "typeSchema": {"schemaTitle": "system.Model"},
    }
    run = run_on(_package(importer=importer), kfp_version="2.3.0")
    with pytest.raises(kfp_emulator.TaskFailed, match="No Provider scheme found in artifact Uri"):
        run.run_task("imp", _task(run, "imp"))
    importer["artifactUri"] = {"constant": f"{ROOT}/weights/w.h5"}
    run = run_on(_package(importer=importer), kfp_version="2.3.0")
    run.run_task("imp", _task(run, "imp"))
    first = run.outputs["imp"]["artifact"][0]
    assert json.loads(first["metadata"]["store_session_info"])["Params"] == {"fromEnv": "true"}
    run.run_task("imp", _task(run, "imp"))
    assert run.outputs["imp"]["artifact"][0]["id"] == first["id"]
    importer["reimport"] = True
    run.run_task("imp", _task(run, "imp"))
    assert run.outputs["imp"]["artifact"][0]["id"] != first["id"]


def test_the_driver_checks_and_converts_input_parameters(run_on):
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
    run = run_on(package)
    run.run_task("a", _task(run))
    (_, argv) = run.log[-1]
    parameters = json.loads(argv[-1])["inputs"]["parameterValues"]
    assert parameters == {"name": "5", "steps": 10}
    package = _package({"name": constant("x"), "steps": constant("10")}, definitions)
    run = run_on(package)
    with pytest.raises(kfp_emulator.TaskFailed, match='"steps" type mismatch: expect NUMBER_INT'):
        run.run_task("a", _task(run))
    run = run_on(_package({"name": constant("x")}, definitions))
    with pytest.raises(kfp_emulator.TaskFailed, match='non-optional parameter "steps"'):
        run.run_task("a", _task(run))
    assert not run.log  # refused before any pod


@pytest.mark.parametrize("kfp_version", ["2.15.0", "2.16.1", "2.17.0"])
def test_a_failed_task_is_published_failed_with_its_logs_from_2_16(run_on, seaweedfs, kfp_version):
    """launcher_v2.go 2.16: the executor-logs of a failed command are uploaded and recorded,
    no other output, and the execution FAILED (before: nothing uploaded or recorded)."""
    run = run_on(_package(), kfp_version, env={"EXIT": "1"}, metadata=True)
    with pytest.raises(kfp_emulator.TaskFailed, match="exited 1"):
        run.run_task("a", _task(run))
    assert run.states["a"] == "FAILED"
    if kfp_version == "2.15.0":
        assert run.outputs["a"] == {}
        return
    assert set(run.outputs["a"]) == {"executor-logs"}
    logs = run.outputs["a"]["executor-logs"][0]["uri"]
    assert logs.endswith("executor-logs-0")  # the retry index, from 2.16.1
    assert "the task ran" in seaweedfs.read(logs).decode()
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = run.metadata
    executions = metadata_store.MetadataStore(config).get_executions()
    assert [e.last_known_state for e in executions] == [pb.Execution.FAILED]


@pytest.mark.parametrize(
    "uri, kfp_version, env, refused",
    [
        # The ImageTree importer this package had: a tree in KFP's store, another bucket.
        ("minio://datasets/train", "2.15.0", {}, 'no driver registered for "minio"'),
        ("minio://datasets/train", "2.15.0", {"AWS_ACCESS_KEY_ID": "a"}, "no driver registered"),
        ("minio://datasets/train", "2.17.0", {}, "NoCredentialProviders"),
        ("minio://datasets/train", "2.17.0", "aws", "addresses AWS S3"),
        ("s3://landmarks/train", "2.15.0", {}, "NoCredentialProviders"),
        ("s3://landmarks/train", "2.15.0", "aws-no-region", "MissingRegion"),
        ("s3://landmarks/train", "2.15.0", "aws", None),  # the AWS chain, at AWS
        ("minio://mlpipeline/datasets/train", "2.15.0", {}, None),  # the root's bucket
    ],
)
def test_an_input_outside_the_roots_bucket_gets_no_credentials(
    run_on, make_cluster, own_store, uri, kfp_version, env, refused
):
    """fetchNonDefaultBuckets / OpenBucket with no session (before: every input was copied,
    whatever its bucket). "AWS" is a second SeaweedFS here, reached with the pod's AWS_*."""
    bucket = unique(uri.split("/")[2])
    uri = uri.replace(uri.split("/")[2], bucket, 1) if "mlpipeline" not in uri else uri
    store = own_store if uri.startswith("s3://") else None
    if env in ("aws", "aws-no-region"):
        keys = own_store.user_key(unique("reader"), bucket)
        env = {"AWS_ACCESS_KEY_ID": keys[0], "AWS_SECRET_ACCESS_KEY": keys[1]}
        env.update({"AWS_REGION": "eu-west-1"} if refused != "MissingRegion" else {})
    cluster = make_cluster(kfp_version, aws=own_store)
    (store or cluster.store).put(f"{uri}/0.jpg", b"jpeg")
    importer = {"artifactUri": {"constant": uri}, "typeSchema": {"schemaTitle": "system.Dataset"}}
    run = run_on(_package(importer=importer), kfp_version, env=env, cluster=cluster)
    run.run_task("imp", _task(run, "imp"))
    if refused:
        with pytest.raises(kfp_emulator.TaskFailed, match=refused):
            run.run_task("a", _task(run))
        assert not run.log  # before the command
        assert run.states["a"] == "FAILED"  # published FAILED all the same
    else:
        run.run_task("a", _task(run))
        assert run.log[-1][0] == "a"
        copied = os.path.join(run.pod, uri.replace("://", "/", 1), "0.jpg")
        assert open(copied, "rb").read() == b"jpeg"  # downloaded into the pod's mirror


@pytest.mark.parametrize("kfp_version", ["2.15.0", "2.17.0"])
def test_placeholders_are_resolved_as_the_launcher_and_the_2_17_driver_resolve_them(
    run_on, kfp_version
):
    """compileCmdAndArgs (every release): {{$}}, parameters and artifact paths in the args;
    from 2.17 the driver also expands IfPresent and fails on a missing parameter (before:
    only {{$}} was substituted)."""
    package = _package({"name": {"runtimeValue": {"constant": "경복궁"}}})
    executor = package["pipelineSpec"]["deploymentSpec"]["executors"]["exec-a"]["container"]
    executor["args"] = [
        "--name={{$.inputs.parameters['name']}}",
        "{{$.outputs.artifacts['out'].path}}",
        '{"IfPresent": {"InputName": "name", "Then": ["--named"], "Else": "--anonymous"}}',
    ]
    run = run_on(package, kfp_version)
    run.run_task("a", _task(run))
    argv = run.log[-1][1]
    assert argv[-3] == "--name=경복궁"
    assert argv[-2].startswith("/minio/mlpipeline/v2/artifacts/p/") and argv[-2].endswith("/out")
    if kfp_version == "2.17.0":
        assert argv[-1] == "--named"
    else:
        assert argv[-1].startswith('{"IfPresent"')  # left as it is, for the command to read
    executor["args"] = ["{{$.inputs.parameters['gone']}}"]
    run = run_on(package, kfp_version)
    if kfp_version == "2.17.0":
        with pytest.raises(kfp_emulator.TaskFailed, match="'gone' not found"):
            run.run_task("a", _task(run))
        assert run.states["a"] == "FAILED"
    else:
        run.run_task("a", _task(run))
        assert run.log[-1][1][-1] == "{{$.inputs.parameters['gone']}}"  # no such placeholder
