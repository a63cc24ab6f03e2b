"""The stores a compiled KFP package's tasks read, and the Kubernetes secrets they read them
with: the pipeline root's store (the Evaluator's baseline; for an s3:// root, every task's
launcher), the users' data store (ImageExampleGen), the package's description saying which,
its platform spec mapping them into the pods, and the kfp-launcher ConfigMap an S3-compatible
root needs. kubeflow/runner.py compiles; this says who reads what.
"""

from __future__ import annotations

import os

from imgtfx.components import object_store
from imgtfx.kubeflow.stores import DATA_KEY_ENV, ROOT_KEY_ENV, StoreSecret
from imgtfx.kubeflow.target import KFP, KubeflowTarget

EXAMPLE_GEN_TASK = "ImageExampleGen"
EVALUATOR = "Evaluator"


def needs_launcher_config(target: KubeflowTarget) -> bool:
    """An s3:// root at an endpoint of its own (an S3-compatible store), which the launcher
    addresses only through the namespace's kfp-launcher providers entry."""
    secret = target.root_secret
    return (
        target.platform == KFP
        and target.root_store == "s3://"
        and bool(secret and secret.endpoint_url)
    )


def launcher_config_file(output_file: str) -> str:
    """Where compile writes the kfp-launcher providers entry an S3-compatible root needs."""
    return os.path.splitext(output_file)[0] + ".kfp-launcher.yaml"


def write_launcher_config(path: str, secret: StoreSecret) -> None:
    """The namespace's kfp-launcher ConfigMap with the root's store as its `providers` entry,
    to `kubectl -n NAMESPACE apply -f PATH`: the launcher addresses an s3:// root at an
    endpoint of its own only through it (config/s3.go ProvideSessionInfo; with no entry it is
    fromEnv, at AWS). Applied over a ConfigMap that exists (a profile's, which the profile
    controller owns), it adds `providers` and keeps the other keys, defaultPipelineRoot too."""
    import yaml

    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kfp-launcher"},
        "data": {"providers": yaml.safe_dump(secret.providers(), sort_keys=False)},
    }
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            "# The pipeline root's store, for the KFP launcher, in the namespace the runs go to\n"
            "# (docs/guides/kubeflow.md, 'A root in your own S3 bucket'):\n"
            f"#   kubectl -n NAMESPACE apply -f {os.path.basename(path)}\n"
        )
        yaml.safe_dump(configmap, f, sort_keys=False)


def root_store(
    spec: dict,
    target: KubeflowTarget,
    secret: StoreSecret,
    secrets: dict[str, list[tuple[str, dict[str, str]]]],
) -> None:
    """The pipeline root's store's keys for the tasks that read it themselves: the Evaluator
    (its baseline model, components/object_store.py) as AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, with the store's endpoint and region when given. For an s3:// root,
    every task, with AWS_REGION: the launcher in each pod opens such a root with the AWS SDK's
    default chain from the pod's environment when the namespace's kfp-launcher has no
    providers entry (config/s3.go ProvideSessionInfo fromEnv, 2.15.0 :86-96;
    objectstore.OpenBucket, 2.15.0 :80-89, 2.17.0 :91-105)."""
    keys = dict(zip((secret.access_key_key, secret.secret_key_key), ROOT_KEY_ENV, strict=True))
    executors = [executor_of(spec, EVALUATOR)]
    if target.root_store == "s3://":
        executors = [
            executor_of(spec, name)
            for name in spec["root"]["dag"]["tasks"]
            if "container" in spec["deploymentSpec"]["executors"][executor_of(spec, name)]
        ]
    for executor in executors:
        secrets.setdefault(executor, []).append((secret.name, keys))
        env = spec["deploymentSpec"]["executors"][executor]["container"].setdefault("env", [])
        if secret.region:
            env.extend(
                {"name": name, "value": secret.region}
                for name in ("AWS_REGION", "AWS_DEFAULT_REGION")
            )
    if secret.endpoint_url:
        container_of(spec, EVALUATOR)["env"].append(
            {"name": object_store.ENDPOINT_ENV, "value": secret.endpoint_url}
        )


def executor_of(spec: dict, task: str) -> str:
    component = spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]
    return spec["components"][component]["executorLabel"]


def container_of(spec: dict, task: str) -> dict:
    container = spec["deploymentSpec"]["executors"][executor_of(spec, task)]["container"]
    container.setdefault("env", [])
    return container


def data_store(
    spec: dict, secret: StoreSecret, task: str = EXAMPLE_GEN_TASK
) -> tuple[str, dict[str, str]]:
    """ImageExampleGen (or the Trainer, for its non-landmark photos) told where the users'
    store is (its container env) and which of the secret's keys hold its credentials:
    (secret, {key: env}) for secret_as_env. Its entrypoint copies the tree and CSVs in
    (kubeflow/entrypoint.py fetch_data, fetch_non_landmarks): the launcher reads an
    input outside the root's bucket with no credentials (fetchNonDefaultBuckets,
    component/launcher_v2.go 2.15.0 :774; objectstore.OpenBucket with a nil session: gocloud
    has no "minio" driver before 2.17.0, s3:// and 2.17's client read the pod's AWS_*)."""
    env = container_of(spec, task)["env"]
    if secret.endpoint_url:
        env.append({"name": "IMGTFX_DATA_ENDPOINT", "value": secret.endpoint_url})
    if secret.region:
        env.append({"name": "IMGTFX_DATA_REGION", "value": secret.region})
    keys = dict(zip((secret.access_key_key, secret.secret_key_key), DATA_KEY_ENV, strict=True))
    return secret.name, keys


def description(spec: dict, secrets: dict[str, list[tuple[str, dict]]]) -> str:
    """The package's description: which Kubernetes secret each task reads, and its keys."""
    tasks = {executor_of(spec, name): name for name in spec["root"]["dag"]["tasks"]}
    reads = [
        f"{tasks[executor]} reads secret {name} (keys {', '.join(keys)})"
        for executor, entries in sorted(secrets.items())
        for name, keys in entries
    ]
    return "Image classification (imgtfx). " + (
        "; ".join(reads) + "." if reads else "No task reads a Kubernetes secret."
    )


def secret_as_env(secrets: dict[str, list[tuple[str, dict[str, str]]]]) -> dict:
    """The package's Kubernetes platform spec: each executor's pod gets the env vars that
    `secrets` maps ({executor: [(secret, {key: env var})]}): the root store's credentials as
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (root_store), ImageExampleGen the data store's as
    IMGTFX_DATA_* (data_store).

    Written as kfp-kubernetes' `use_secret_as_env` writes it, with only the fields every
    backend from 2.2 reads (kubernetes_platform/proto/kubernetes_executor_config.proto
    SecretAsEnv: secret_name, key_to_env at 2.2.0; the driver's extendPodSpecPatch adds the
    env, driver/driver.go 2.2.0 :554, 2.5.0 :893, driver/k8s.go 2.15.0 :333). Not the newer
    `secretNameParameter` (2.5) or `optional` (2.15): the 2.2 driver and the argo compiler
    from 2.14 parse strictly and refuse unknown fields (kubeflow/pipelines#11935, #12495).
    Without `optional`, a missing secret keeps the pod from starting, which is why a task gets
    one only for a store that has one: KFP's `mlpipeline-minio-artifact` (config/env.go, keys
    accesskey and secretkey) is in the kubeflow namespace and, made by the profile controller,
    in every profile's."""
    executors = {
        executor: {
            "secretAsEnv": [
                {
                    "secretName": name,
                    "keyToEnv": [{"secretKey": k, "envVar": v} for k, v in keys.items()],
                }
                for name, keys in entries
            ]
        }
        for executor, entries in secrets.items()
    }
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}
