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
    pipeline_root: str = "",
    store_session_info: str = "",
) -> None:
    """Records a task's execution (`state`: COMPLETE or FAILED) and output artifacts in a
    SQLite ML Metadata store, in the types and contexts the KFP v2 launcher uses on a
    cluster: the run's context with its namespace, root and store session (metadata/client.go
    GetPipeline, 2.15.0 :330-350)."""
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
        run.custom_properties["pipeline_root"].string_value = pipeline_root
        run.custom_properties["store_session_info"].string_value = store_session_info
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


def metadata_service(path: str, address: str = "127.0.0.1", port: int = 0):
    """KFP's metadata gRPC service in miniature: every RPC of ML Metadata's own service
    definition (ml_metadata/proto/metadata_store_service.proto), served by ML Metadata's own
    store on the SQLite file the launcher emulation records into. Only the transport is the
    emulator's: the client is ml_metadata's gRPC client, as in the Evaluator's pod. Returns
    (server, port)."""
    from concurrent import futures

    import grpc
    import ml_metadata as mlmd
    from ml_metadata import errors
    from ml_metadata.proto import metadata_store_pb2, metadata_store_service_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    )
    store = mlmd.MetadataStore(config)
    service = metadata_store_service_pb2.DESCRIPTOR.services_by_name["MetadataStoreService"]

    def handler(method):
        response_class = getattr(metadata_store_service_pb2, method.output_type.name)

        def serve(request, context):
            response = response_class()
            try:
                store._call_method(method.name, request, response)
            except errors.StatusError as e:
                code = next(c for c in grpc.StatusCode if c.value[0] == e.error_code)
                context.abort(code, str(e))
            return response

        request_class = getattr(metadata_store_service_pb2, method.input_type.name)
        return grpc.unary_unary_rpc_method_handler(
            serve,
            request_deserializer=request_class.FromString,
            response_serializer=response_class.SerializeToString,
        )

    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                service.full_name, {m.name: handler(m) for m in service.methods}
            ),
        )
    )
    port = server.add_insecure_port(f"{address}:{port}")
    server.start()
    return server, port
