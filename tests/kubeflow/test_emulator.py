"""The emulated backend's rules, each on a package made here of one or two tasks (a `python -c`
command in its pod), checked against the behaviour the KFP source gives at the tag cited in
tests/kubeflow/kfp_emulator/launcher.py. Each test fails on the rule the emulator had before it
was read again against the source (this project's issue 29)."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import unique
from tests.kubeflow import kfp_emulator
from tests.kubeflow.kfp_emulator import launcher

ROOT = "minio://mlpipeline/v2/artifacts"
# The task's command: writes `text` into each output's pod mirror and reports, for output
# "out", the URI and metadata in REPORT (JSON), then exits with EXIT; writes what it sees of its
# pod (user, capabilities, environment, /etc/hosts, namespace) to /tmp/pod.json.
COMMAND = r"""
import json, os, sys
executor_input = json.loads(sys.argv[1])
report = json.loads(os.environ.get("REPORT", "{}"))
print("the task ran")
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
seen = {
    "uid": os.getuid(), "gid": os.getgid(), "env": dict(os.environ),
    "capabilities": int(status["CapEff"].strip(), 16), "no_new_privs": status["NoNewPrivs"].strip(),
    "hosts": open("/etc/hosts").read(),
    "namespace": open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read(),
    "home_writable": os.access(os.environ.get("HOME", "/"), os.W_OK),
}
json.dump(seen, open("/tmp/pod.json", "w"))
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


@pytest.fixture
def run_on(make_cluster, tmp_path):
    """run_on(package, kfp_version, env, metadata, root, cluster, namespace): a runner of the
    package on an emulated install (standalone, the kubeflow namespace, by default)."""

    def make(
        package,
        kfp_version="2.15.0",
        env=None,
        metadata=False,
        root=ROOT,
        cluster=None,
        namespace=None,
    ):
        store = None
        if metadata:
            folder = tmp_path / unique("metadata")
            os.makedirs(folder)
            store = str(folder / "metadata.sqlite")
        return kfp_emulator.LocalSpecRunner(
            package,
            root=root,
            cluster=cluster or make_cluster(kfp_version),
            namespace=namespace,
            env=env or {},
            metadata=store,
        )

    return make


def _task(run, name="a"):
    return run.pipeline["root"]["dag"]["tasks"][name]


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


def _seen(run) -> dict:
    """What the task's command saw of its pod (COMMAND's /tmp/pod.json)."""
    with open(os.path.join(run.pod, "tmp", "pod.json"), encoding="utf-8") as f:
        return json.load(f)


def test_the_root_is_the_runs_else_the_namespaces_else_kfps(make_cluster):
    """driver/root_dag.go: the run's pipeline_root, else the namespace's kfp-launcher
    defaultPipelineRoot (a profile's own from 2.15, sync.py), else the constant (before: the
    constant whenever the run named none)."""
    cluster = make_cluster("2.15.0", multi_user=True)
    profile = cluster.add_profile()
    package = _package()
    in_profile = kfp_emulator.LocalSpecRunner(package, cluster=cluster, namespace=profile)
    assert in_profile.root == f"minio://mlpipeline/private-artifacts/{profile}/v2/artifacts"
    own = kfp_emulator.LocalSpecRunner(
        package, "s3://mine/root", cluster=cluster, namespace=profile
    )
    assert own.root == "s3://mine/root"
    standalone = kfp_emulator.LocalSpecRunner(package, cluster=make_cluster("2.15.0"))
    assert standalone.root == "minio://mlpipeline/v2/artifacts"
    with pytest.raises(ValueError, match="profile namespace"):
        kfp_emulator.LocalSpecRunner(package, cluster=cluster)


@pytest.mark.parametrize(
    "kfp_version, multi_user, endpoint",
    [
        ("2.4.1", False, "{store}:9000"),  # the driver pod's MINIO_SERVICE_* service links
        ("2.4.1", True, "minio-service.kubeflow:9000"),  # a profile's pod has none
        ("2.15.0", True, "minio-service.kubeflow:9000"),  # the constant, SeaweedFS's alias
        ("2.16.1", False, "seaweedfs.kubeflow:9000"),
        ("2.17.0", True, "seaweedfs.kubeflow:9000"),
    ],
)
def test_the_store_session_is_recorded_as_each_release_finds_its_store(
    run_on, make_cluster, kfp_version, multi_user, endpoint
):
    """config/env.go getDefaultMinioSessionInfo per release, recorded in the run's context and
    on every output (metadata/client.go, from 2.3; before: {"Provider": "local"})."""
    cluster = make_cluster(kfp_version, multi_user=multi_user)
    namespace = cluster.add_profile() if multi_user else None
    run = run_on(_package(), cluster=cluster, namespace=namespace, root=None, metadata=True)
    run.run_task("a", _task(run))
    session = json.loads(run.outputs["a"]["out"][0]["metadata"]["store_session_info"])
    assert session["Provider"] == "minio"
    assert session["Params"]["endpoint"] == endpoint.format(store=cluster.store.address)
    assert session["Params"]["secretName"] == "mlpipeline-minio-artifact"
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = run.metadata
    (context,) = metadata_store.MetadataStore(config).get_contexts_by_type("system.PipelineRun")
    properties = context.custom_properties
    assert properties["pipeline_root"].string_value == run.root
    assert json.loads(properties["store_session_info"].string_value) == session
    assert properties["namespace"].string_value == (namespace or "kubeflow")


@pytest.mark.parametrize(
    "kfp_version, multi_user, services, links",
    [
        ("2.5.0", False, {"minio-service"}, True),
        ("2.5.0", True, {"minio-service"}, False),
        ("2.15.0", True, {"minio-service", "seaweedfs"}, False),
        ("2.15.0", False, {"minio-service", "seaweedfs"}, True),
        ("2.16.1", False, {"seaweedfs"}, False),
        ("2.17.0", True, {"seaweedfs"}, False),
    ],
)
def test_a_pod_sees_the_install_as_a_pod_of_that_release_does(
    run_on, make_cluster, kfp_version, multi_user, services, links
):
    """Cluster DNS names the store's services the release's manifests define; service-link env
    only in the kubeflow namespace where a minio-service exists (before: every pod got the test
    process's MINIO_SERVICE_*); the image's USER, not root; from 2.16 no capabilities and no
    privilege escalation (security_context.go)."""
    cluster = make_cluster(kfp_version, multi_user=multi_user)
    namespace = cluster.add_profile() if multi_user else None
    run = run_on(_package(), cluster=cluster, namespace=namespace, root=None)
    run.run_task("a", _task(run))
    seen = _seen(run)
    named = {line.split()[1].split(".")[0] for line in seen["hosts"].splitlines()[1:]}
    assert named == services
    assert ("MINIO_SERVICE_SERVICE_HOST" in seen["env"]) is links
    assert seen["namespace"] == (namespace or "kubeflow")
    image = kfp_emulator.image.read()
    assert (seen["uid"], seen["gid"]) == (image.user, image.group) != (0, 0)
    assert seen["home_writable"] and seen["env"]["HOME"] == image.home
    assert not any(k.startswith("PYTEST") for k in seen["env"])  # nothing of the test process's
    assert seen["capabilities"] == 0  # a non-root user has none at any release
    from_2_16 = kfp_emulator.cluster.version(kfp_version) >= (2, 16, 0)
    assert seen["no_new_privs"] == ("1" if from_2_16 else "0")


def test_an_administrators_user_runs_the_step_from_2_16(run_on, make_cluster):
    """DEFAULT_SECURITY_CONTEXT_RUN_AS_USER/GROUP (apiserver/common/config.go@2.17.0:46-49):
    the user container runs as that user, whatever the image says."""
    run = run_on(_package(), cluster=make_cluster("2.17.0", run_as_user=4321, run_as_group=4321))
    run.run_task("a", _task(run))
    assert (_seen(run)["uid"], _seen(run)["gid"]) == (4321, 4321)


def test_a_profiles_key_cannot_write_kfps_shared_root_and_writes_its_own(run_on, make_cluster):
    """Multi-user Kubeflow from 1.11 (KFP 2.15): the profile's key, with the profile
    controller's policy, writes only its own prefixes. A run submitted with the root the
    README once gave (minio://mlpipeline/v2/artifacts) fails at its first upload; SeaweedFS
    refuses it. With no root the profile's own applies, and the upload goes through."""
    cluster = make_cluster("2.15.0", multi_user=True)
    profile = cluster.add_profile()
    shared = run_on(_package(), cluster=cluster, namespace=profile, root=ROOT)
    with pytest.raises(kfp_emulator.TaskFailed, match='upload output artifact "out".*AccessDenied'):
        shared.run_task("a", _task(shared))
    assert shared.states["a"] == "FAILED" and shared.log  # the command ran; the upload failed
    own = run_on(_package(), cluster=cluster, namespace=profile, root=None)
    own.run_task("a", _task(own))
    uri = own.outputs["a"]["out"][0]["uri"]
    assert uri.startswith(f"minio://mlpipeline/private-artifacts/{profile}/v2/artifacts/")
    assert cluster.store.read(uri + "/data.txt") == b"written"


def test_an_s3_root_is_opened_with_the_namespaces_providers_entry(run_on, make_cluster, own_store):
    """config/s3.go: an s3:// root with a kfp-launcher `providers.s3` entry is opened at its
    endpoint with its secret's keys, read through the Kubernetes API; without the secret the
    task fails before its command (launcher_v2.go Execute opens the root's bucket first)."""
    bucket = unique("artifacts")
    keys = own_store.user_key(unique("pipelines"), bucket)
    cluster = make_cluster("2.17.0")
    endpoint = cluster.add_store("store.example", own_store)
    providers = {
        "s3": {
            "default": {
                "endpoint": endpoint,
                "region": "eu-west-1",
                "disableSSL": True,
                "credentials": {
                    "fromEnv": False,
                    "secretRef": {
                        "secretName": "store-keys",
                        "accessKeyKey": "AWS_ACCESS_KEY_ID",
                        "secretKeyKey": "AWS_SECRET_ACCESS_KEY",
                    },
                },
            }
        }
    }
    import yaml

    cluster.namespace("kubeflow").configmaps["kfp-launcher"] = {
        "providers": yaml.safe_dump(providers)
    }
    missing = run_on(_package(), cluster=cluster, root=f"s3://{bucket}/root")
    with pytest.raises(kfp_emulator.TaskFailed, match='secrets "store-keys" not found'):
        missing.run_task("a", _task(missing))
    assert not missing.log
    cluster.secrets("kubeflow")["store-keys"] = dict(
        zip(("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), keys, strict=True)
    )
    run = run_on(_package(), cluster=cluster, root=f"s3://{bucket}/root")
    run.run_task("a", _task(run))
    uri = run.outputs["a"]["out"][0]["uri"]
    assert own_store.read(uri + "/data.txt") == b"written"
    assert "store.example" in _seen(run)["hosts"]  # the pods reach it by name too
    session = json.loads(run.session_info)
    assert session["Params"]["endpoint"] == endpoint and session["Params"]["fromEnv"] == "false"
