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

import dataclasses
import os

from tfx import version as tfx_version
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

from imgtfx.components.baseline_evaluator import environment
from imgtfx.components.object_store import SCHEMES
from imgtfx.kubeflow import entrypoint
from imgtfx.kubeflow.secrets import (
    EVALUATOR,
    EXAMPLE_GEN_TASK,
    container_of,
    data_store,
    description,
    executor_of,
    launcher_config_file,
    needs_launcher_config,
    root_store,
    secret_as_env,
    write_launcher_config,
)
from imgtfx.kubeflow.stores import DEFAULT_ROOT
from imgtfx.kubeflow.target import (
    DEFAULT_GPU_TYPE,
    KFP,
    VERTEX,
    KubeflowTarget,
    gigabytes,
)
from imgtfx.pipeline.pipeline import (
    BASELINE_FROM_METADATA_SERVICE,
    BASELINE_FROM_RESOLVER,
    create_pipeline,
)
from imgtfx.pipeline.run_config import (
    IMAGES_PARAMETER,
    TRAIN_ARGS_PARAMETER,
    RunConfig,
    train_args_json,
)

ENTRYPOINT = "imgtfx.kubeflow.entrypoint"  # python -m, in the image (kubeflow/Dockerfile)
WEIGHTS_TASK = "BackboneWeights"  # the importer of a backbone's weights file (weights_importer)
TRAINER = "Trainer"


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
    target.check_weights(config.trainer_options.weights)
    if config.trainer_options.pretrained:
        from imgtfx.trainer.backbones import resolve_weights

        trainer = resolve_weights(config.trainer_options)
        config = dataclasses.replace(config, trainer_options=trainer)
    folder = config.trainer_options.non_landmarks
    readable = ("gs://",) if platform == VERTEX else ("gs://", *SCHEMES)
    if folder and not folder.startswith(readable):
        raise ValueError(
            f"--non-landmarks {folder}: the Trainer's pod reads a folder on "
            f"{', '.join(readable)}, not one on this machine."
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
    data = target.data_store_secret(config.store_uris)
    if data:
        secrets.setdefault(executor_of(spec, EXAMPLE_GEN_TASK), []).append(data_store(spec, data))
        if folder.startswith(SCHEMES):  # the Trainer copies the non-landmarks in with it too
            secrets.setdefault(executor_of(spec, TRAINER), []).append(
                data_store(spec, data, TRAINER)
            )
    spec["pipelineInfo"]["description"] = description(spec, secrets)
    write_kfp_package(spec, output_file, secret_as_env(secrets) if secrets else None)
    if needs_launcher_config(target):
        write_launcher_config(launcher_config_file(output_file), root_secret)
    return spec


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
    run's, or its namespace's (docs/guides/kubeflow.md, 'Submit')."""
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
