"""ML Metadata as the KFP launcher fills it on a cluster (backend/src/v2/metadata), in a SQLite
store: what the BaselineEvaluator's lookup reads."""

from __future__ import annotations

from typing import Any


def round_trip(value: Any) -> Any:
    """A metadata value after ML Metadata (converter.go StructValueToMLMDValue, then
    propertiesToMetadata): numbers come back as doubles, bools as 1/0, lists and dicts wrapped."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return {"list": value}
    if isinstance(value, dict):
        return {"struct": value}
    return value


def _mlmd_value(value: Any):
    """A metadata value as the launcher stores it (structValueToMLMDValue in KFP's backend)."""
    from ml_metadata.proto import metadata_store_pb2

    result = metadata_store_pb2.Value()
    if isinstance(value, bool):
        result.int_value = int(value)
    elif isinstance(value, (int, float)):
        result.double_value = float(value)
    elif isinstance(value, str):
        result.string_value = value
    else:
        key = "list" if isinstance(value, list) else "struct"
        result.struct_value.update({key: value})
    return result


def _type_name(artifact_type: dict) -> str:
    """The MLMD type name the launcher gives an artifact: its schema's title."""
    if "schemaTitle" in artifact_type:
        return artifact_type["schemaTitle"]
    import yaml

    return yaml.safe_load(artifact_type["instanceSchema"])["title"]


def record_outputs(
    metadata_file: str,
    pipeline_name: str,
    run_id: str,
    task: str,
    outputs: dict,
    namespace: str = "kubeflow",
    state: str = "COMPLETE",
) -> None:
    """Records a task's execution (`state`: COMPLETE or FAILED) and output artifacts in a
    SQLite ML Metadata store, in the types and contexts the KFP v2 launcher uses on a
    cluster."""
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2 as pb

    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = metadata_file
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    store = mlmd.MetadataStore(config)

    def context(type_name: str, name: str) -> pb.Context:
        type_id = store.put_context_type(pb.ContextType(name=type_name))
        found = store.get_context_by_type_and_name(type_name, name)
        if found is not None:
            return found
        (context_id,) = store.put_contexts([pb.Context(type_id=type_id, name=name)])
        return store.get_contexts_by_id([context_id])[0]

    pipeline = context("system.Pipeline", pipeline_name)
    run = context("system.PipelineRun", run_id)
    if "namespace" not in run.custom_properties:  # metadata/client.go GetPipeline (2.17.0)
        run.custom_properties["namespace"].string_value = namespace
        run.custom_properties["resource_name"].string_value = "run-resource"
        store.put_contexts([run])
    if not store.get_parent_contexts_by_context(run.id):
        store.put_parent_contexts([pb.ParentContext(child_id=run.id, parent_id=pipeline.id)])
    execution_type = store.put_execution_type(pb.ExecutionType(name="system.ContainerExecution"))
    execution = pb.Execution(type_id=execution_type, last_known_state=getattr(pb.Execution, state))
    execution.custom_properties["task_name"].string_value = task
    pairs = []
    for key, artifacts in outputs.items():
        for artifact in artifacts:
            title = _type_name(artifact["type"])
            type_id = store.put_artifact_type(pb.ArtifactType(name=title))
            recorded = pb.Artifact(type_id=type_id, uri=artifact["uri"], state=pb.Artifact.LIVE)
            for name, value in artifact.get("metadata", {}).items():
                recorded.custom_properties[name].CopyFrom(_mlmd_value(value))
            event = pb.Event(type=pb.Event.OUTPUT)
            event.path.steps.add().key = key
            pairs.append((recorded, event))
    store.put_execution(execution, pairs, [pipeline, run])
