"""Compiles the pipeline for Kubeflow: a KFP package for the open-source backend, or a
PipelineJob for Vertex AI Pipelines, both from the same `create_pipeline(...)`.

The target follows from the output file's extension:
  .yaml / .yml  open-source Kubeflow Pipelines (KFP v2 backend): pipeline spec 2.1, the YAML
                `kfp.Client().upload_pipeline` / `create_run_from_pipeline_package` accept. That
                backend runs container and importer executors only, so there is no Resolver: the
                Evaluator finds its baseline in the cluster's ML Metadata service
                (components/baseline_evaluator). It never runs the `preCacheCheck` hook that
                fingerprints the image tree, so ImageExampleGen's task is not cached there.
                A tree on minio:// or s3:// comes into ImageExampleGen's pod through an
                importer task (image_tree_importer).
  .json         Vertex AI Pipelines: the PipelineJob JSON, with TFX's Resolver and the
                fingerprinting driver, both of which Vertex runs.

Nothing is written to the pipeline root at compile time: the trainer is reached by import path
from the image, so TFX has no module file to package.

Runtime parameters (set at submit time): `images` (the image root) and `train_args` (TrainArgs as
JSON, e.g. '{"num_steps": 2000}'). TFX 1.16 on KFP v2 passes a RuntimeParameter only as a whole
execution property, not inside a proto field, so the step count travels as the whole TrainArgs.
"""

from __future__ import annotations

import json
import os
import re

from tfx import version as tfx_version
from tfx.orchestration.data_types import RuntimeParameter
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner
from tfx.proto import example_gen_pb2

from components.baseline_evaluator import executor as baseline
from components.baseline_evaluator import object_store
from components.image_example_gen import ImageOptions
from kubeflow import entrypoint
from pipeline import configs
from pipeline.pipeline import (
    BASELINE_FROM_METADATA_SERVICE,
    BASELINE_FROM_RESOLVER,
    create_pipeline,
)
from trainer.options import TrainerOptions

IMAGES_PARAMETER = "images"
TRAIN_ARGS_PARAMETER = "train_args"
KFP, VERTEX = "kfp", "vertex"
ENTRYPOINT = "kubeflow.entrypoint"  # python -m, in the image (kubeflow/Dockerfile)
TARGETS = {".yaml": KFP, ".yml": KFP, ".json": VERTEX}
# Accelerator names: KFP asks Kubernetes for a resource; Vertex names a machine accelerator.
DEFAULT_GPU_TYPE = {KFP: "nvidia.com/gpu", VERTEX: "NVIDIA_TESLA_T4"}
EXAMPLE_GEN_TASK = "ImageExampleGen"
IMAGE_TREE_TASK = "ImageTree"  # the importer of a tree on minio:// or s3:// (image_tree_importer)
TRAINER = "Trainer"
EVALUATOR = "Evaluator"
# The secret the KFP launcher reads MinIO credentials from (backend/src/v2/config/env.go,
# 2.2.0 to 2.15.0: minioArtifactSecretName, minioArtifactAccessKeyKey/SecretKeyKey).
OBJECT_STORE_SECRET = "mlpipeline-minio-artifact"
OBJECT_STORE_SECRET_KEYS = {"accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"}


def train_args_json(train_steps: int) -> str:
    return json.dumps({"num_steps": int(train_steps)})


def target_of(output_file: str) -> str:
    """KFP or VERTEX, from the output's extension.

    Raises:
      ValueError: another extension.
    """
    extension = os.path.splitext(output_file)[1].lower()
    if extension not in TARGETS:
        raise ValueError(
            f"output {output_file}: end it in .yaml for open-source Kubeflow Pipelines or .json "
            "for Vertex AI Pipelines."
        )
    return TARGETS[extension]


def check_pipeline_root(pipeline_root: str, target: str = KFP) -> None:
    """The roots the target stores artifacts in: the KFP launcher's object store
    (objectstore/config.go ParseBucketConfig: gs://, s3://, minio://; anything else fails every
    task before its command runs), Vertex's gs://.

    Raises:
      ValueError: another root, in one line.
    """
    schemes = entrypoint.BUCKET_SCHEMES if target == KFP else ("gs://",)
    parts = pipeline_root.split("/")
    if pipeline_root.startswith(schemes) and len(parts) > 2 and parts[2]:
        return
    stores = "gs://, s3:// or minio://" if target == KFP else "gs://"
    raise ValueError(
        f"pipeline root {pipeline_root} cannot be used: "
        f"{'the Kubeflow Pipelines launcher' if target == KFP else 'Vertex AI'} stores "
        f"artifacts in {stores} buckets only (e.g. {schemes[-1]}BUCKET/PATH)."
    )


def _gigabytes(memory: str) -> float:
    match = re.fullmatch(r"\s*([0-9.]+)\s*([GgMm]i?)?[Bb]?\s*", memory)
    if not match:
        raise ValueError(f"trainer memory {memory!r}: give it like 16G or 512M.")
    value = float(match.group(1))
    unit = (match.group(2) or "G").upper()
    scale = {"G": 1.0, "GI": 2**30 / 1e9, "M": 1e-3, "MI": 2**20 / 1e9}[unit]
    return value * scale


def trainer_resources(
    target: str,
    gpus: int = 0,
    gpu_type: str | None = None,
    cpu: float | None = None,
    memory: str | None = None,
):
    """The Trainer's container resources as TFX's platform config (None: the cluster default).

    Raises:
      ValueError: a negative count or limit, or a memory size that cannot be read.
    """
    from kfp.pipeline_spec import pipeline_spec_pb2

    if gpus < 0 or (cpu is not None and cpu <= 0):
        raise ValueError("trainer GPUs must be >= 0 and CPUs > 0.")
    if not gpus and cpu is None and memory is None:
        return None
    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
    if gpus:
        spec.accelerator.type = gpu_type or DEFAULT_GPU_TYPE[target]
        spec.accelerator.count = gpus
    if cpu is not None:
        spec.cpu_limit = cpu
    if memory is not None:
        spec.memory_limit = _gigabytes(memory)
    return spec


def compile_pipeline(
    pipeline_root: str,
    images: str,
    image: str,
    output_file: str,
    labels_csv: str | None = None,
    serving_dir: str | None = None,
    train_steps: int = configs.TRAIN_STEPS,
    image_options: ImageOptions | None = None,
    trainer_options: TrainerOptions = TrainerOptions(),
    min_accuracy: float = configs.MIN_ACCURACY,
    beam_pipeline_args: list[str] | None = None,
    pipeline_name: str = configs.PIPELINE_NAME,
    input_config: example_gen_pb2.Input | None = None,
    eval_percent: int = configs.EVAL_PERCENT,
    min_class_accuracy: float | None = None,
    metadata_service: str = baseline.DEFAULT_METADATA_SERVICE,
    trainer_gpus: int = 0,
    trainer_gpu_type: str | None = None,
    trainer_cpu: float | None = None,
    trainer_memory: str | None = None,
    object_store_secret: str | None = None,
    object_store_endpoint: str | None = None,
) -> dict:
    """Writes the package for the target its extension names; returns the pipeline spec.

    Args:
      pipeline_root: the run's artifact store (gs://, s3:// or minio://BUCKET/PATH; gs://
        for Vertex); the open-source backend takes the root from the run, so pass the same
        one to `imgtfx submit` (or set it in the kfp-launcher ConfigMap).
      images: default of the `images` runtime parameter.
      image: the container image every step runs in (see kubeflow/Dockerfile).
      output_file: `.yaml` (open-source KFP) or `.json` (Vertex AI PipelineJob).
      labels_csv: labels CSV URI; default labels from folders.
      serving_dir: where blessed models are pushed; default PIPELINE_ROOT/serving.
      train_steps: default of the `train_args` runtime parameter.
      beam_pipeline_args: Beam options of the data steps, e.g. for Dataflow.
      image_options, trainer_options, input_config, eval_percent, min_accuracy,
        min_class_accuracy: as for a local run (pipeline.create_pipeline).
      metadata_service: open-source KFP only: host:port of the metadata gRPC service the
        Evaluator asks for the latest blessed model, or 'none' for no baseline.
      trainer_gpus, trainer_gpu_type, trainer_cpu, trainer_memory: the Trainer's container
        resources on the cluster.
      object_store_secret: open-source KFP only: the Kubernetes secret (keys accesskey,
        secretkey) whose credentials the Evaluator copies a baseline model out of minio:// or
        s3:// with; default KFP's own `mlpipeline-minio-artifact` for a minio:// root, none
        otherwise; 'none' for none.
      object_store_endpoint: open-source KFP only: that store's endpoint URL, when not the
        launcher's default MinIO (minio-service.kubeflow:9000) or AWS.
    """
    if not image:
        raise ValueError("give the container image (--image) the steps run in.")
    target = target_of(output_file)
    check_pipeline_root(pipeline_root, target)
    resources = trainer_resources(
        target, trainer_gpus, trainer_gpu_type, trainer_cpu, trainer_memory
    )
    if image_options is None:
        image_options = ImageOptions(labels_csv=labels_csv)
    images_parameter = RuntimeParameter(name=IMAGES_PARAMETER, ptype=str, default=images)
    train_args = RuntimeParameter(
        name=TRAIN_ARGS_PARAMETER, ptype=str, default=train_args_json(train_steps)
    )
    pipeline = create_pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        images=images_parameter,
        serving_dir=serving_dir or os.path.join(pipeline_root, "serving"),
        image_options=image_options,
        trainer_options=trainer_options,
        train_steps=train_args,
        min_accuracy=min_accuracy,
        min_class_accuracy=min_class_accuracy,
        input_config=input_config,
        eval_percent=eval_percent,
        beam_pipeline_args=beam_pipeline_args,
        baseline=BASELINE_FROM_METADATA_SERVICE if target == KFP else BASELINE_FROM_RESOLVER,
    )
    if resources is not None:
        trainer = next(c for c in pipeline.components if c.id == TRAINER)
        trainer.with_platform_config(resources)
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            default_image=image, use_pipeline_spec_2_1=target == KFP
        ),
        output_dir=os.path.dirname(os.path.abspath(output_file)),
        output_filename=os.path.basename(output_file),
    )
    parameters = {
        IMAGES_PARAMETER: images,
        TRAIN_ARGS_PARAMETER: train_args_json(train_steps),
    }
    if target == VERTEX:
        job = runner.run(pipeline, parameter_values=parameters, write_out=False)
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
    job = runner.run(pipeline, parameter_values=parameters, write_out=False)
    spec = for_open_source_backend(
        job["pipelineSpec"], pipeline_root, pipeline_name, metadata_service, parameters
    )
    if images.startswith(object_store.SCHEMES):  # TensorFlow in the image cannot read them
        image_tree_importer(spec)
    if object_store_endpoint:
        evaluator_container(spec)["env"].append(
            {"name": object_store.ENDPOINT_ENV, "value": object_store_endpoint}
        )
    if object_store_secret is None and pipeline_root.startswith("minio://"):
        object_store_secret = OBJECT_STORE_SECRET
    platform = None
    if object_store_secret and object_store_secret.lower() != "none":
        platform = secret_as_env(spec, object_store_secret)
    write_kfp_package(spec, output_file, platform)
    return spec


def _evaluator_executor(spec: dict) -> str:
    component = spec["root"]["dag"]["tasks"][EVALUATOR]["componentRef"]["name"]
    return spec["components"][component]["executorLabel"]


def evaluator_container(spec: dict) -> dict:
    return spec["deploymentSpec"]["executors"][_evaluator_executor(spec)]["container"]


def secret_as_env(spec: dict, secret: str) -> dict:
    """The package's Kubernetes platform spec: the Evaluator's pod gets the object store's
    credentials from `secret` as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, to copy its
    baseline model (components/baseline_evaluator/object_store.py).

    Written as kfp-kubernetes' `use_secret_as_env` writes it, with only the fields every
    backend from 2.2 reads (kubernetes_platform/proto/kubernetes_executor_config.proto
    SecretAsEnv: secret_name, key_to_env at 2.2.0; the driver's extendPodSpecPatch adds the
    env, driver/driver.go 2.2.0 :554, 2.5.0 :893, driver/k8s.go 2.15.0 :333). Not the newer
    `secretNameParameter` (2.5) or `optional` (2.15): the 2.2 driver parses strictly and
    refuses unknown fields (kubeflow/pipelines#11935, #12495). Without `optional`, a missing
    secret keeps the pod from starting, which is why it is only named for a store that has
    one: KFP's `mlpipeline-minio-artifact` (config/env.go, keys accesskey and secretkey) is
    in the kubeflow namespace and, synced by the profile controller, in every profile's."""
    keys = [{"secretKey": key, "envVar": env} for key, env in OBJECT_STORE_SECRET_KEYS.items()]
    return {
        "platforms": {
            "kubernetes": {
                "deploymentSpec": {
                    "executors": {
                        _evaluator_executor(spec): {
                            "secretAsEnv": [{"secretName": secret, "keyToEnv": keys}]
                        }
                    }
                }
            }
        }
    }


def for_open_source_backend(
    spec: dict,
    pipeline_root: str,
    pipeline_name: str,
    metadata_service: str,
    parameters: dict[str, str],
) -> dict:
    """The spec, adjusted for the open-source backend: every task through this project's
    entrypoint (kubeflow/entrypoint.py), ImageExampleGen's task uncached (its
    cache key would be its parameters alone: new images under the same URI would reuse stale
    examples), the Evaluator told where ML Metadata is, and the pipeline root and the runtime
    parameters' defaults in the package (TFX puts them only in a PipelineJob; without a root
    the backend would use its own minio:// default, which TFX cannot write to)."""
    spec["defaultPipelineRoot"] = pipeline_root
    for name, value in parameters.items():
        spec["root"]["inputDefinitions"]["parameters"][name]["defaultValue"] = value
    tasks = spec["root"]["dag"]["tasks"]
    tasks[EXAMPLE_GEN_TASK].pop("cachingOptions", None)  # absent: not cached
    container = evaluator_container(spec)
    container["env"] = [
        {"name": baseline.METADATA_SERVICE_ENV, "value": metadata_service},
        {"name": baseline.PIPELINE_NAME_ENV, "value": pipeline_name},
    ]
    for executor in spec["deploymentSpec"]["executors"].values():
        command = executor.get("container", {}).get("command", [])
        if command and command[-1] == entrypoint.TFX_ENTRYPOINT:
            command[-1] = ENTRYPOINT  # TFX's own crashes on what the backend sends
    return spec


def image_tree_importer(spec: dict) -> dict:
    """Has the launcher copy the image tree into ImageExampleGen's pod: TensorFlow in the image
    reads gs:// but not minio:// or s3://. An importer task (ImporterSpec, its URI the `images`
    run-time parameter) makes the tree an artifact, and ImageExampleGen takes it as its input
    `image_tree`, which the launcher downloads before the command, every object under the
    prefix, to /minio/... or /s3/... (component/launcher_v2.go downloadArtifacts,
    objectstore.DownloadBlob, 2.2.0 to 2.15.0); the entrypoint points input_base there. As the
    kfp SDK compiles `dsl.importer(artifact_uri=<pipeline parameter>)` (compiler/
    pipeline_spec_builder.py build_importer_spec_for_task, 2.2.0 :589: runtimeParameter
    'uri'); the backend resolves it from the root DAG's inputs (component/importer_launcher.go
    ImportSpecToMLMDArtifact, 2.2.0 :196-221, 2.15.0 :213-238)."""
    dataset = {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"}
    executor = f"{IMAGE_TREE_TASK}_executor"  # TFX's naming, as the package's other tasks
    spec["components"][IMAGE_TREE_TASK] = {
        "executorLabel": executor,
        "inputDefinitions": {"parameters": {"uri": {"parameterType": "STRING"}}},
        "outputDefinitions": {"artifacts": {"artifact": {"artifactType": dataset}}},
    }
    spec["deploymentSpec"]["executors"][executor] = {
        "importer": {"artifactUri": {"runtimeParameter": "uri"}, "typeSchema": dataset}
    }
    tasks = spec["root"]["dag"]["tasks"]
    tasks[IMAGE_TREE_TASK] = {
        "componentRef": {"name": IMAGE_TREE_TASK},
        "inputs": {"parameters": {"uri": {"componentInputParameter": IMAGES_PARAMETER}}},
        "taskInfo": {"name": IMAGE_TREE_TASK},
    }
    task = tasks[EXAMPLE_GEN_TASK]
    task.setdefault("dependentTasks", []).append(IMAGE_TREE_TASK)
    task.setdefault("inputs", {}).setdefault("artifacts", {})[entrypoint.IMAGE_TREE_INPUT] = {
        "taskOutputArtifact": {"outputArtifactKey": "artifact", "producerTask": IMAGE_TREE_TASK}
    }
    component = spec["components"][task["componentRef"]["name"]]
    component.setdefault("inputDefinitions", {}).setdefault("artifacts", {})[
        entrypoint.IMAGE_TREE_INPUT
    ] = {"artifactType": dataset}
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
