"""The KFP installs the emulator models (tests/kubeflow/kfp_emulator/cluster.py), each rule on a
one-task package made here (tests/helpers/kfp_toy.py) and checked against what the release's
source and manifests give: the run's root, the store session the driver records, what a pod
sees of the install (DNS, service links, namespace, user, capabilities), a profile's key
against SeaweedFS's policy, an s3:// root's providers entry."""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers.kfp_toy import ROOT
from tests.helpers.kfp_toy import task as _task
from tests.helpers.kfp_toy import toy_package as _package
from tests.helpers.seaweedfs import unique
from tests.kubeflow import kfp_emulator


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
        ("2.4.1", False, "{minio}:9000"),  # the driver pod's MINIO_SERVICE_* service links
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
    services = cluster.services
    minio = services.get("minio-service.kubeflow")
    minio = minio.address if minio else None
    assert session["Params"]["endpoint"] == endpoint.format(minio=minio)
    assert session["Params"]["secretName"] == "mlpipeline-minio-artifact"
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = run.metadata
    (context,) = metadata_store.MetadataStore(config).get_contexts_by_type("system.PipelineRun")
    properties = context.custom_properties
    assert properties["pipeline_root"].string_value == f"{run.root}/p/{run.run_id}"
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


@pytest.mark.parametrize("group, home_writable", [(0, True), (4321, False)])
def test_an_administrators_user_runs_the_step_from_2_16(run_on, make_cluster, group, home_writable):
    """DEFAULT_SECURITY_CONTEXT_RUN_AS_USER/GROUP (apiserver/common/config.go@2.17.0:46-49):
    the user container runs as that user, whatever the image says; the image's HOME is still
    its own user's, writable by group 0 only (kubeflow/Dockerfile)."""
    cluster = make_cluster("2.17.0", run_as_user=4321, run_as_group=group)
    run = run_on(_package(), cluster=cluster)
    run.run_task("a", _task(run))
    seen = _seen(run)
    assert (seen["uid"], seen["gid"]) == (4321, group)
    assert seen["home_writable"] is home_writable


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


@pytest.mark.parametrize(
    "kfp_version, answering",
    [
        ("2.4.1", {"minio-service:9000"}),
        ("2.15.0", {"minio-service:9000", "seaweedfs:8333"}),  # no seaweedfs:9000 yet
        ("2.16.1", {"seaweedfs:8333", "seaweedfs:9000"}),
        ("2.17.0", {"seaweedfs:8333", "seaweedfs:9000"}),
    ],
)
def test_each_releases_store_answers_on_its_services_own_ports_only(
    make_cluster, kfp_version, answering
):
    """seaweedfs-service.yaml@2.15.0 has http-s3 8333 and no 9000 (http-s3-compat 9000 from
    2.16.0); minio-service.yaml 9000 up to 2.15: a client that asks another port of a Service
    is refused, as on a cluster (the pods' KFP store lookup once asked seaweedfs:9000 at 2.15)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from tests.helpers.seaweedfs import ADMIN_KEYS
    from tests.kubeflow.kfp_emulator.store import s3_client

    cluster = make_cluster(kfp_version)
    answered = set()
    for name in ("minio-service", "seaweedfs"):
        address = cluster.resolve(f"{name}.kubeflow")
        for port in (8333, 9000):
            if address is None:
                continue
            try:
                s3_client(f"http://{address}:{port}", ADMIN_KEYS).head_bucket(Bucket="mlpipeline")
                answered.add(f"{name}:{port}")
            except (BotoCoreError, ClientError):
                pass
    assert answered == answering
