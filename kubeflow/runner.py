"""Compiles the pipeline for Kubeflow: a KFP package for the open-source backend, or a
PipelineJob for Vertex AI Pipelines, both from the same `create_pipeline(config, ...)`.

`compile(config, target)`: the run's configuration (pipeline/run_config.py) and where it runs
(kubeflow/target.py; the platform follows from the output file's extension):
  .yaml / .yml  open-source Kubeflow Pipelines (KFP v2 backend): pipeline spec 2.1, the YAML
                `kfp.Client().upload_pipeline` / `create_run_from_pipeline_package` accept. That
                backend runs container and importer executors only, so there is no Resolver: the
                Evaluator finds its baseline in the cluster's ML Metadata service
                (components/baseline_evaluator). It never runs the `preCacheCheck` hook that
                fingerprints the image tree, so ImageExampleGen's task is not cached there.
                ImageExampleGen copies a tree or CSV on minio:// or s3:// into its pod
                itself, with the data secret's keys (data_store); a backbone's weights file
                comes into the Trainer's through an importer task (weights_importer).
  .json         Vertex AI Pipelines: the PipelineJob JSON, with TFX's Resolver and the
                fingerprinting driver, both of which Vertex runs.

Nothing is written to the pipeline root at compile time: the trainer is reached by import path
from the image, so TFX has no module file to package.

Runtime parameters (set at submit time): `images` (the image root) and `train_args` (TrainArgs as
JSON, e.g. '{"num_steps": 2000}'); see pipeline/run_config.py.
"""

from __future__ import annotations

import os

from tfx import version as tfx_version
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

from components import object_store
from components.baseline_evaluator import environment
from kubeflow import entrypoint
from kubeflow.target import (
    DEFAULT_GPU_TYPE,
    DEFAULT_ROOT,
    KFP,
    KFP_BUCKET,
    VERTEX,
    KubeflowTarget,
    StoreSecret,
    gigabytes,
)
from pipeline.pipeline import (
    BASELINE_FROM_METADATA_SERVICE,
    BASELINE_FROM_RESOLVER,
    create_pipeline,
)
from pipeline.run_config import IMAGES_PARAMETER, TRAIN_ARGS_PARAMETER, RunConfig, train_args_json

ENTRYPOINT = "kubeflow.entrypoint"  # python -m, in the image (kubeflow/Dockerfile)
EXAMPLE_GEN_TASK = "ImageExampleGen"
WEIGHTS_TASK = "BackboneWeights"  # the importer of a backbone's weights file (weights_importer)
TRAINER = "Trainer"
EVALUATOR = "Evaluator"
ROOT_KEY_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")  # the AWS SDK's, the launcher's
DATA_KEY_ENV = (
    "IMGTFX_DATA_ACCESS_KEY_ID",
    "IMGTFX_DATA_SECRET_ACCESS_KEY",
)  # object_store.DATA_ENV


def trainer_resources(target: KubeflowTarget):
    """The Trainer's container resources as TFX's platform config (None: the cluster default)."""
    from kfp.pipeline_spec import pipeline_spec_pb2

    if not target.trainer_gpus and target.trainer_cpu is None and target.trainer_memory is None:
        return None
    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
    if target.trainer_gpus:
        spec.accelerator.type = target.trainer_gpu_type or DEFAULT_GPU_TYPE[target.platform]
        spec.accelerator.count = target.trainer_gpus
    if target.trainer_cpu is not None:
        spec.cpu_limit = target.trainer_cpu
    if target.trainer_memory is not None:
        spec.memory_limit = gigabytes(target.trainer_memory)
    return spec


def compile(config: RunConfig, target: KubeflowTarget) -> dict:  # noqa: A001 - kubeflow.runner.compile
    """Writes the package `target` names for `config`; returns the pipeline spec (the
    PipelineJob for Vertex).

    The images and the training steps become the package's runtime parameters, the config's
    values their defaults.
    """
    platform = target.platform
    weights = config.trainer_options.weights
    if weights not in ("none", "imagenet"):
        stores = entrypoint.BUCKET_SCHEMES if platform == KFP else ("gs://",)
        if not weights.startswith(stores):
            raise ValueError(
                f"the cluster cannot read the weights file {weights}: copy it to a bucket "
                f"({', '.join(stores)}) and give its URI with --weights."
            )
        if not weights.endswith((".h5", ".hdf5")):
            # A checkpoint is several objects under a prefix, which the 2.17 launcher's
            # path-prefix download (objectstore DownloadBlob, #12928) does not bring along.
            raise ValueError(
                f"on Kubeflow the weights are one HDF5 file (.h5), got {weights}: save them "
                "with save_weights('<name>.h5')."
            )
        if platform == KFP and weights.startswith(object_store.SCHEMES):
            # The launcher opens an input outside the root's bucket with no credentials of its
            # own: gocloud has no minio driver before 2.17, and s3:// reads the pod's AWS_*
            # (component/launcher_v2.go fetchNonDefaultBuckets, objectstore.OpenBucket, 2.15.0).
            root = target.pipeline_root or DEFAULT_ROOT
            root_bucket = "/".join(root.split("/")[:3]) + "/"
            if not weights.startswith(root_bucket):
                where = (
                    f"the pipeline root's bucket {root_bucket}"
                    if target.pipeline_root
                    else f"KFP's own bucket {KFP_BUCKET}, every namespace's default root's "
                    "(give --pipeline-root if your runs use another)"
                )
                raise ValueError(
                    f"the weights file {weights} is outside {where}, which the KFP launcher "
                    "cannot read: copy it there."
                )
    pipeline = create_pipeline(
        config,
        target.pipeline_root or DEFAULT_ROOT,  # TFX needs one; the package does not keep it
        target.serving,
        runtime_parameters=True,
        baseline=BASELINE_FROM_METADATA_SERVICE if platform == KFP else BASELINE_FROM_RESOLVER,
    )
    resources = trainer_resources(target)
    if resources is not None:
        trainer = next(c for c in pipeline.components if c.id == TRAINER)
        trainer.with_platform_config(resources)
    output_file = target.output
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            default_image=target.image, use_pipeline_spec_2_1=platform == KFP
        ),
        output_dir=os.path.dirname(os.path.abspath(output_file)),
        output_filename=os.path.basename(output_file),
    )
    parameters = {
        IMAGES_PARAMETER: config.images,
        TRAIN_ARGS_PARAMETER: train_args_json(config.train_steps),
    }
    job = runner.run(pipeline, parameter_values=parameters, write_out=False)
    if platform == VERTEX:
        # Vertex runs ImageExampleGen's preCacheCheck hook, TFX's file_based_example_gen driver,
        # whose fingerprint globs the split pattern at the root's top level only: images added
        # deeper (train/<city>/<landmark>/) left the cache key unchanged and the run reused
        # stale examples. Uncached, as on the open-source backend.
        job["pipelineSpec"]["root"]["dag"]["tasks"][EXAMPLE_GEN_TASK].pop("cachingOptions", None)
        os.makedirs(os.path.dirname(os.path.abspath(output_file)), exist_ok=True)
        kubeflow_v2_dag_runner._write_pipeline_spec_to_file(
            job, f"Compiled by imgtfx from TFX {tfx_version.__version__}.", output_file
        )
        return job
    spec = for_open_source_backend(
        job["pipelineSpec"],
        target.pipeline_root,
        config.pipeline_name,
        target.metadata_service,
        parameters,
    )
    if config.trainer_options.weights not in ("none", "imagenet"):
        weights_importer(spec, config.trainer_options.weights)
    secrets: dict[str, list[tuple[str, dict[str, str]]]] = {}
    root_secret = target.root_secret
    if root_secret:
        root_store(spec, target, root_secret, secrets)
    data = target.data_store_secret(config.data_uris)
    if data:
        secrets.setdefault(executor_of(spec, EXAMPLE_GEN_TASK), []).append(data_store(spec, data))
    spec["pipelineInfo"]["description"] = description(spec, secrets)
    write_kfp_package(spec, output_file, secret_as_env(secrets) if secrets else None)
    if needs_launcher_config(target):
        write_launcher_config(launcher_config_file(output_file), root_secret)
    return spec


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
    """The `providers` entry of the namespace's kfp-launcher ConfigMap, as a merge patch
    (`kubectl -n NAMESPACE patch configmap kfp-launcher --type merge --patch-file PATH`): the
    launcher addresses an s3:// root at an endpoint of its own only through it (config/s3.go
    ProvideSessionInfo; with no entry it is fromEnv, at AWS)."""
    import yaml

    patch = {"data": {"providers": yaml.safe_dump(secret.providers(), sort_keys=False)}}
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            "# The pipeline root's store, for the KFP launcher: merge it into the kfp-launcher\n"
            "# ConfigMap of the namespace the runs go to (kubeflow/README.md, 'A root in your\n"
            "# own S3 bucket'):\n"
            "#   kubectl -n NAMESPACE patch configmap kfp-launcher --type merge --patch-file "
            f"{os.path.basename(path)}\n"
        )
        yaml.safe_dump(patch, f, sort_keys=False)


def root_store(
    spec: dict,
    target: KubeflowTarget,
    secret: StoreSecret,
    secrets: dict[str, list[tuple[str, dict[str, str]]]],
) -> None:
    """The pipeline root's store's keys for the tasks that read it themselves: the Evaluator
    (its baseline model, components/object_store.py) as AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, with the store's endpoint when one is given. For an s3:// root,
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
        if target.root_store == "s3://" and secret.region:
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


def data_store(spec: dict, secret: StoreSecret) -> tuple[str, dict[str, str]]:
    """ImageExampleGen told where the users' store is (its container env) and which of the
    secret's keys hold its credentials: (secret, {key: env}) for secret_as_env. Its entrypoint
    copies the tree and CSVs in (kubeflow/entrypoint.py fetch_data): the launcher reads an
    input outside the root's bucket with no credentials (fetchNonDefaultBuckets,
    component/launcher_v2.go 2.15.0 :774; objectstore.OpenBucket with a nil session: gocloud
    has no "minio" driver before 2.17.0, s3:// and 2.17's client read the pod's AWS_*)."""
    env = container_of(spec, EXAMPLE_GEN_TASK)["env"]
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


def for_open_source_backend(
    spec: dict,
    pipeline_root: str | None,
    pipeline_name: str,
    metadata_service: str,
    parameters: dict[str, str],
) -> dict:
    """The spec, adjusted for the open-source backend: every task through this project's
    entrypoint (kubeflow/entrypoint.py), ImageExampleGen's task uncached (its
    cache key would be its parameters alone: new images under the same URI would reuse stale
    examples), the Evaluator told where ML Metadata is, and the runtime parameters' defaults
    in the package (TFX puts them only in a PipelineJob). The root, when given, is written as
    the package's defaultPipelineRoot for people and tools that read it; the backend takes the
    run's, or its namespace's (kubeflow/README.md, 'Submit')."""
    if pipeline_root:
        spec["defaultPipelineRoot"] = pipeline_root
    for name, value in parameters.items():
        spec["root"]["inputDefinitions"]["parameters"][name]["defaultValue"] = value
    tasks = spec["root"]["dag"]["tasks"]
    tasks[EXAMPLE_GEN_TASK].pop("cachingOptions", None)  # absent: not cached
    container = container_of(spec, EVALUATOR)
    container["env"] = [
        {"name": environment.METADATA_SERVICE_ENV, "value": metadata_service},
        {"name": environment.PIPELINE_NAME_ENV, "value": pipeline_name},
    ]
    for executor in spec["deploymentSpec"]["executors"].values():
        command = executor.get("container", {}).get("command", [])
        if command and command[-1] == entrypoint.TFX_ENTRYPOINT:
            command[-1] = ENTRYPOINT  # TFX's own crashes on what the backend sends
    return spec


def weights_importer(spec: dict, uri: str) -> dict:
    """Has the launcher copy the backbone's weights file into the Trainer's pod, on any store:
    an importer task with the file's URI as a constant (as the kfp SDK compiles
    `dsl.importer(artifact_uri="gs://...")`: pipeline_spec_builder.py, kfp 2.5.0 :576-577,
    `artifactUri.constant`; importer_launcher.go reads GetConstant().GetStringValue(), 2.2.0
    :190-192, 2.15.0 :207-209), its artifact the Trainer's input `backbone_weights`. The
    launcher downloads the one object to its mirror (DownloadBlob of the file's own key: a
    relative path of "."), and the entrypoint points the Trainer's options at it. So the
    Trainer's pod reads no bucket itself and needs no network."""
    return _importer(
        spec, WEIGHTS_TASK, {"constant": uri}, TRAINER, entrypoint.WEIGHTS_INPUT, "system.Model"
    )


def _importer(
    spec: dict,
    task_name: str,
    uri: dict,
    consumer: str,
    input_key: str,
    schema_title: str,
) -> dict:
    """Adds importer task `task_name` (its artifact URI `uri`, an ImporterSpec ArtifactUri) whose
    artifact is `consumer`'s input `input_key`."""
    artifact_type = {"schemaTitle": schema_title, "schemaVersion": "0.0.1"}
    executor = f"{task_name}_executor"  # TFX's naming, as the package's other tasks
    component = {
        "executorLabel": executor,
        "outputDefinitions": {"artifacts": {"artifact": {"artifactType": artifact_type}}},
    }
    spec["components"][task_name] = component
    spec["deploymentSpec"]["executors"][executor] = {
        "importer": {"artifactUri": uri, "typeSchema": artifact_type}
    }
    tasks = spec["root"]["dag"]["tasks"]
    tasks[task_name] = {"componentRef": {"name": task_name}, "taskInfo": {"name": task_name}}
    task = tasks[consumer]
    task.setdefault("dependentTasks", []).append(task_name)
    task.setdefault("inputs", {}).setdefault("artifacts", {})[input_key] = {
        "taskOutputArtifact": {"outputArtifactKey": "artifact", "producerTask": task_name}
    }
    consumer_component = spec["components"][task["componentRef"]["name"]]
    consumer_component.setdefault("inputDefinitions", {}).setdefault("artifacts", {})[input_key] = {
        "artifactType": artifact_type
    }
    return spec


def write_kfp_package(spec: dict, output_file: str, platform: dict | None = None) -> None:
    """The pipeline spec, then the platform spec as a second YAML document (as kfp's compiler
    writes a package, and as kfp's loader and the API server's v2_template.go read one)."""
    import yaml

    os.makedirs(os.path.dirname(os.path.abspath(output_file)), exist_ok=True)
    with open(output_file, "w", encoding="utf-8") as f:
        f.write(
            "# Kubeflow Pipelines package (pipeline spec 2.1) for the open-source KFP backend,\n"
            "# compiled by `imgtfx compile`: upload it, or create_run_from_pipeline_package.\n"
        )
        yaml.safe_dump(spec, f, sort_keys=True, allow_unicode=True)
        if platform:
            f.write("---\n")
            yaml.safe_dump(platform, f, sort_keys=True, allow_unicode=True)
