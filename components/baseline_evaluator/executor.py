"""The Evaluator's executor, looking up its baseline model itself: for open-source Kubeflow.

TFX's latest-blessed-model Resolver compiles to `resolver` executors, ML Metadata queries that
Vertex AI Pipelines runs and the open-source KFP backend rejects ("resolver not implemented yet").
Here the Evaluator task asks the cluster's ML Metadata service, where the KFP launcher records
every task's outputs, for the newest blessed model of this pipeline, and evaluates against it;
on a new cluster there is none, and the change threshold is skipped as TFX skips it then. A
baseline that cannot be had, or that knows other classes, is skipped the same way, and the
blessing says "baseline skipped: <why>" (components/image_evaluator/executor.py).

Where to look comes from the task's environment (set in the compiled package; environment.py):
  IMGTFX_METADATA_SERVICE  host:port of KFP's metadata gRPC service, 'sqlite:PATH', or 'none'
  IMGTFX_PIPELINE_NAME     the pipeline whose blessed models count
  IMGTFX_NAMESPACE         only runs of this namespace count (default: the pod's own, read
                           from its service account; multi-user Kubeflow shares one store)
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Any

from absl import logging
from tfx.components.evaluator import constants
from tfx.types import standard_artifacts, standard_component_specs

from imgtfx.components import object_store
from imgtfx.components.baseline_evaluator.environment import (
    DEFAULT_METADATA_SERVICE,
    METADATA_SERVICE_ENV,
    NAMESPACE_ENV,
    PIPELINE_NAME_ENV,
)
from imgtfx.components.image_evaluator import executor as image_evaluator

POD_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
# How the KFP launcher records things (backend/src/v2/metadata): the pipeline context type, and
# artifact types named after their schema title; metadata numbers become doubles.
PIPELINE_CONTEXT_TYPE = "system.Pipeline"
# The pipeline context is named by pipeline name alone, shared by every namespace; each run's
# context carries its namespace (metadata/client.go GetPipeline: system.PipelineRun with
# custom properties namespace, resource_name, pipeline_root, store_session_info).
RUN_CONTEXT_TYPE = "system.PipelineRun"
BLESSING_TYPE = "tfx.ModelBlessing"
BLESSED = "blessed"
CURRENT_MODEL = "current_model"
STORE_SESSION_INFO = "store_session_info"  # metadata/client.go RecordArtifact, from 2.3.0


class MetadataServiceError(RuntimeError):
    """The metadata service cannot be reached or read; the message says what to set."""


def connect(address: str):
    """An ML Metadata store client for 'host:port' or 'sqlite:PATH'."""
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2

    if address.startswith("sqlite:"):
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = address[len("sqlite:") :]
        config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
        return mlmd.MetadataStore(config)
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise MetadataServiceError(
            f"{METADATA_SERVICE_ENV}={address!r}: give host:port, sqlite:PATH or none."
        )
    client = metadata_store_pb2.MetadataStoreClientConfig(
        host=host, port=int(port), client_timeout_sec=30
    )
    return mlmd.MetadataStore(client)


def _number(value) -> float:
    kind = value.WhichOneof("value")
    return float(getattr(value, kind)) if kind in ("int_value", "double_value") else 0.0


@dataclasses.dataclass(frozen=True)
class Baseline:
    """A blessed model: its URI, and the store session the KFP launcher wrote it with (its
    blessing's `store_session_info`, recorded on every output from KFP 2.3: the provider,
    endpoint, region and secret of the run's root), or None."""

    uri: str
    session: str | None = None


def latest_blessed_model(
    store, pipeline_name: str, exists=os.path.exists, namespace: str | None = None
) -> str | None:
    """The model URI of latest_blessed (None when there is none)."""
    found = latest_blessed(store, pipeline_name, exists, namespace)
    return found.uri if found else None


def latest_blessed(
    store, pipeline_name: str, exists=os.path.exists, namespace: str | None = None
) -> Baseline | None:
    """The newest blessing with blessed=1 in `pipeline_name`'s context whose model still
    exists, from a run of `namespace` when one is given; None when there is none (a new
    cluster, or nothing blessed yet)."""
    context = store.get_context_by_type_and_name(PIPELINE_CONTEXT_TYPE, pipeline_name)
    if context is None:
        return None
    from ml_metadata import errors

    try:
        blessing_type = store.get_artifact_type(BLESSING_TYPE)
    except errors.NotFoundError:  # nothing was ever blessed on this cluster
        return None
    blessings = [
        a
        for a in store.get_artifacts_by_context(context.id)
        if a.type_id == blessing_type.id
        and BLESSED in a.custom_properties
        and _number(a.custom_properties[BLESSED]) == 1
        and a.custom_properties[CURRENT_MODEL].string_value
    ]
    run_type = _context_type_id(store, RUN_CONTEXT_TYPE) if namespace is not None else None
    for blessing in sorted(
        blessings, key=lambda a: (a.create_time_since_epoch, a.id), reverse=True
    ):
        if namespace is not None and _namespace_of(store, blessing, run_type) != namespace:
            continue  # another team's run of a pipeline with the same name
        uri = blessing.custom_properties[CURRENT_MODEL].string_value
        if "://" in uri or exists(uri):
            session = blessing.custom_properties.get(STORE_SESSION_INFO)
            return Baseline(uri, session.string_value if session is not None else None)
        logging.warning("Blessed model %s no longer exists; looking further back.", uri)
    return None


def _context_type_id(store, name: str) -> int | None:
    from ml_metadata import errors

    try:
        return store.get_context_type(name).id
    except errors.NotFoundError:
        return None


def _namespace_of(store, artifact, run_type: int | None) -> str | None:
    """The namespace of the run that produced `artifact` (its system.PipelineRun context)."""
    for context in store.get_contexts_by_artifact(artifact.id):
        if context.type_id == run_type:
            return context.custom_properties["namespace"].string_value
    return None


def pod_namespace(environ=os.environ, path: str = POD_NAMESPACE_FILE) -> str | None:
    """This task's namespace: IMGTFX_NAMESPACE, else the pod's service account's; None outside
    a pod (then every run of the pipeline counts)."""
    if environ.get(NAMESPACE_ENV):
        return environ[NAMESPACE_ENV]
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


def find_baseline(environ=os.environ) -> Baseline | None:
    """The baseline model for this task, per its environment; None for no baseline.

    Raises:
      MetadataServiceError: the service is unreachable or the pipeline name is unset.
    """
    from ml_metadata import errors

    address = environ.get(METADATA_SERVICE_ENV, DEFAULT_METADATA_SERVICE)
    if address.lower() == "none":
        return None
    pipeline_name = environ.get(PIPELINE_NAME_ENV)
    if not pipeline_name:
        raise MetadataServiceError(f"{PIPELINE_NAME_ENV} is not set for the Evaluator task.")
    try:
        return latest_blessed(connect(address), pipeline_name, namespace=pod_namespace(environ))
    except errors.StatusError as e:
        raise MetadataServiceError(
            f"cannot read the ML Metadata service at {address} ({type(e).__name__}: {e}). "
            "Compile with --metadata-service HOST:PORT for your cluster, or "
            "--metadata-service none to evaluate without a baseline."
        ) from None


def _readable(uri: str) -> bool:
    """Whether TensorFlow's file systems in this image can read `uri`."""
    import tensorflow as tf

    try:
        return tf.io.gfile.exists(uri)
    except tf.errors.OpError:  # e.g. "File system scheme 'minio' not implemented"
        return False


def local_baseline(
    uri: str, workdir: str, environ=os.environ, session: str | None = None
) -> tuple[str | None, str | None]:
    """(a path TensorFlow can load the baseline model from, None), or (None, why it cannot be
    had; then the model is evaluated without a baseline and the blessing says why). KFP's
    minio:// and s3:// stores are copied into `workdir`, from the store `session` names (the
    launcher's record; components/object_store.py): the launcher copies only a task's inputs
    into the pod, and the baseline is found at run time, not an input."""
    if uri.startswith(object_store.SCHEMES):
        try:
            baseline = os.path.join(workdir, "baseline")
            object_store.copy_folder(uri, baseline, environ, session=session)
            return baseline, None
        except object_store.ObjectStoreError as e:
            return None, f"cannot copy {uri}: {e}"
    if not _readable(uri):
        return None, (
            f"{uri} is in storage this image cannot read "
            "(it reads gs://, minio://, s3:// and local paths)"
        )
    return uri, None


class Executor(image_evaluator.Executor):
    """The ImageEvaluator's executor, with the baseline model looked up in ML Metadata."""

    def Do(  # noqa: N802 - TFX's API
        self,
        input_dict: dict[str, list],
        output_dict: dict[str, list],
        exec_properties: dict[str, Any],
    ) -> None:
        key = standard_component_specs.BASELINE_MODEL_KEY
        with tempfile.TemporaryDirectory(prefix="baseline-") as workdir:
            uri = skipped = None
            if not input_dict.get(key):
                found = find_baseline()
                uri = found.uri if found else None
                logging.info("Baseline model from ML Metadata: %s", uri or "none")
                path, skipped = (
                    local_baseline(uri, workdir, session=found.session) if found else (None, None)
                )
                if path:
                    # The copy's labels.txt is what the vocabulary check reads.
                    baseline = standard_artifacts.Model()
                    baseline.uri = path
                    input_dict = {**input_dict, key: [baseline]}
            self.evaluate(input_dict, output_dict, exec_properties, baseline_skipped=skipped)
        # The blessing names its baseline by URI and by artifact id; this baseline is no input
        # artifact of the task, and TFX's Kubeflow entrypoint can only translate the ids of
        # those (KeyError otherwise). The URI is the store's, not the pod's copy.
        for blessing in output_dict.get(standard_component_specs.BLESSING_KEY, []):
            properties = blessing.mlmd_artifact.custom_properties
            if constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY in properties:
                del properties[constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY]
            if uri and constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY in properties:
                blessing.set_string_custom_property(
                    constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, uri
                )
