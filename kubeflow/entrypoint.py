"""The container entrypoint of every task in the open-source KFP package.

TFX's own v2 entrypoint (`tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor`)
assumes the ExecutorInput Vertex sends. The open-source backend's driver and launcher send
another one, and TFX 1.16 crashes on it before any executor runs (tensorflow/tfx#7768). This
module repairs the ExecutorInput, hands over to TFX's entrypoint unchanged, and repairs the
ExecutorOutput TFX writes. What it repairs, each from the KFP backend's source
(kubeflow/pipelines, `backend/src/v2/`, tags 2.2.0 to 2.17.0):

- Input artifacts arrive typed `{"instanceSchema": ""}` (metadata/client.go,
  GetOutputArtifactsByExecutionId: `Schema: "", // TODO(Bobgy): figure out how to get schema`,
  2.2.0 :822, 2.17.0 :1144), or untyped through a DAG input (driver/resolve.go, 2.17.0 :134);
  TFX then fails with `'NoneType' object has no attribute 'get'`. Their types are taken from the
  component's inputs spec, which the package passes as `--json_serialized_inputs_spec_args`.
- From 2.5.0 the driver adds an output `executor-logs` typed `system.Artifact` to every task
  (driver/driver.go provisionOutputs, 2.5.0 :2025, PUBLISH_LOGS on by default); TFX fails with
  `ImportError: Could not import system.Artifact`. The launcher writes that output itself
  (component/launcher_v2.go getLogWriter): it is set aside, and left out of the ExecutorOutput.
- TFX writes unset metadata values as JSON null; the launcher cannot record a null
  (metadata/converter.go StructValueToMLMDValue, `// TODO: support null`): they are dropped.
- The launcher reads the ExecutorOutput from `outputs.outputFile`: from 2.15.0 the local task
  root's `output_metadata.json` (driver/driver.go provisionOutputs, 2.15.0 :716-724), a folder
  the launcher creates as the parent of every output artifact's local path, `executor-logs`
  included (component/launcher_v2.go prepareOutputFolders, 2.15.0 :1048). It is created here
  too, which changes nothing on those releases and keeps a task without outputs working.
- Object storage: the launcher copies every input artifact to a local mirror before the command
  and uploads every output from it after (launcher_v2.go downloadArtifacts and
  uploadOutputArtifacts; LocalPathForURI maps gs:// -> /gcs/, minio:// -> /minio/, s3:// ->
  /s3/). TFX's steps are pointed at those local paths, so they read and write plain files on
  any of the three stores (TensorFlow cannot open minio:// or s3:// without extra file
  systems), and the ExecutorOutput names the remote URIs again. Written this way, outputs carry
  no zero-byte `dir/` marker objects (kubeflow/pipelines#13476: the launcher's download turns
  one into a file and fails), and an input mirror that holds a zero-byte file where its folder
  should be is made a folder again.

- ImageExampleGen copies an image tree and CSVs on minio:// or s3:// into the pod itself, with
  the keys of the data secret the package names (fetch_data): the launcher reads an input
  outside the root's bucket with no credentials. A backbone's weights file, in the root's
  bucket, reaches the Trainer as an input artifact the launcher copies (use_weights); its
  --non-landmarks folder on minio:// or s3:// it copies in itself with the same data secret
  (fetch_non_landmarks).
- A Pusher whose serving folder is on minio:// or s3:// pushes into its own `pushed_model`
  artifact, which the launcher uploads (push_into_artifact).

The functions take the mirrors' `mount` ("/" in a pod) so that each repair can be tested on its
own; the task itself always runs with "/". The tests run whole packages through an emulation of
the backend whose tasks see a pod's filesystem (tests/kubeflow/kfp_emulator).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from imgtfx.kubeflow.stores import BUCKET_SCHEMES, LOCAL_MIRRORS, SERVED_FROM_ARTIFACT

COPY_WORKERS = 16  # downloads at once: each waits mostly on the network
DATA_HINT = (
    "ImageExampleGen has no keys for this store: compile the package with --data-secret "
    "NAME[,endpoint=...][,region=...] (docs/guides/kubeflow.md, 'Data in your own bucket')."
)
WEIGHTS_INPUT = "backbone_weights"
LAUNCHER_OUTPUTS = ("executor-logs",)  # driver/driver.go provisionOutputs, from 2.5.0
TFX_ENTRYPOINT = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"


def local_path(uri: str, mount: str = "/") -> str | None:
    """Where the KFP launcher mirrors `uri` in the pod; None for a URI it does not mirror."""
    for scheme, folder in LOCAL_MIRRORS.items():
        if uri.startswith(scheme):
            return os.path.join(mount, folder, uri[len(scheme) :])
    return None


def remote_uri(path: str, mount: str = "/") -> str | None:
    """The URI whose launcher mirror `path` is (the inverse of local_path); None if none."""
    for scheme, folder in LOCAL_MIRRORS.items():
        prefix = os.path.join(mount, folder) + "/"
        if path.startswith(prefix):
            return scheme + path[len(prefix) :]
    return None


def _has_type(artifact_type: dict | None) -> bool:
    artifact_type = artifact_type or {}
    return bool(artifact_type.get("schemaTitle") or artifact_type.get("instanceSchema"))


def repair_input(executor_input: dict, inputs_spec: dict | None, mount: str = "/") -> dict:
    """The ExecutorInput TFX can run (a copy), on the launcher's local mirrors under `mount`.

    Raises:
      ValueError: an input artifact with no type anywhere (not a package compiled here).
    """
    repaired = json.loads(json.dumps(executor_input))
    spec_artifacts = (inputs_spec or {}).get("artifacts", {})

    def localize(artifact: dict) -> bool:
        path = local_path(artifact.get("uri", ""), mount)
        if path is not None:
            artifact["uri"] = path
        return path is not None

    for key, value in repaired.get("inputs", {}).get("artifacts", {}).items():
        for artifact in value.get("artifacts", []):
            if not _has_type(artifact.get("type")):
                if key not in spec_artifacts:
                    raise ValueError(
                        f"input artifact '{key}' has no type, and the task's inputs spec does "
                        "not name it: compile the package with `imgtfx compile`."
                    )
                artifact["type"] = spec_artifacts[key]["artifactType"]
            localize(artifact)
            _folder_again(artifact["uri"])
    outputs = repaired.get("outputs", {})
    artifacts = outputs.get("artifacts", {})
    for key in LAUNCHER_OUTPUTS:
        artifacts.pop(key, None)
    for key in [k for k, v in artifacts.items() if _system_typed(v)]:
        artifacts.pop(key)  # any other launcher-managed output: not TFX's to write
    for value in artifacts.values():
        for artifact in value.get("artifacts", []):
            if localize(artifact):
                os.makedirs(artifact["uri"], exist_ok=True)
    if outputs.get("outputFile"):
        os.makedirs(os.path.dirname(outputs["outputFile"]), exist_ok=True)
    return repaired


def fetch_data(executor_input: dict, store: dict[str, str], mount: str = "/") -> list[str]:
    """ImageExampleGen (the task with an `input_base` parameter) with its image tree or CSVs on
    minio:// or s3://, which TensorFlow in the image cannot open: each copied into the pod
    where the launcher would mirror it (local_path), the tree COPY_WORKERS objects at once,
    with the data store's settings `store` (object_store.data_environ), and every parameter
    that names one (input_base, the options' labels_csv) names the copy. Returns the URIs
    copied.

    Raises:
      ObjectStoreError: no keys, the store refusing, or nothing there; the message says which.
    """
    from imgtfx.components import object_store

    parameters = executor_input.get("inputs", {}).get("parameterValues", {})
    base = parameters.get("input_base")
    if not isinstance(base, str):
        return []
    from imgtfx.components.object_store import SCHEMES

    named: set[str] = set()
    in_pod = {
        k: _in_pod(v, lambda u: u.startswith(SCHEMES), named, mount)
        for k, v in parameters.items()
        if isinstance(v, str)
    }
    base = base.rstrip("/")
    copied = []
    for uri in sorted(named, key=lambda u: (u.rstrip("/") != base, u)):
        if uri.rstrip("/") == base:
            count = object_store.copy_folder(
                base, local_path(base, mount), store, DATA_HINT, COPY_WORKERS
            )
            print(f"copied {count} objects of {base} into the pod", file=sys.stderr)
        elif uri.startswith(base + "/"):
            continue  # a file in the tree: copied with it
        else:
            object_store.copy_file(uri, local_path(uri, mount), store, DATA_HINT)
        copied.append(uri)
    parameters.update(in_pod)  # once every copy is there
    return copied


def fetch_non_landmarks(executor_input: dict, store: dict[str, str], mount: str = "/") -> str:
    """The Trainer with its --non-landmarks folder on minio:// or s3://, which TensorFlow in
    the image cannot open: the folder copied into the pod (local_path) with the data store's
    settings, as fetch_data copies ImageExampleGen's tree, and the Trainer's options
    (custom_config) name the copy. Returns the URI copied, or "".

    Raises:
      ObjectStoreError: no keys, the store refusing, or nothing there; the message says which.
    """
    from imgtfx.components import object_store

    parameters = executor_input.get("inputs", {}).get("parameterValues", {})
    config = parameters.get("custom_config")
    if not isinstance(config, str) or not config.startswith("{"):
        return ""
    options = json.loads(config)
    folder = options.get("non_landmarks") or ""
    if not folder.startswith(object_store.SCHEMES):
        return ""
    local = local_path(folder, mount)
    count = object_store.copy_folder(folder, local, store, DATA_HINT, COPY_WORKERS)
    print(f"copied {count} non-landmark photos of {folder} into the pod", file=sys.stderr)
    parameters["custom_config"] = json.dumps({**options, "non_landmarks": local})
    return folder


def _in_pod(value: str, wanted, named: set[str], mount: str) -> str:
    """`value` (a URI, or JSON holding URIs) with each URI that `wanted(uri)` accepts its pod
    path (local_path); those URIs go into `named`. JSON is read, not searched as text: a
    non-ASCII path is escaped there."""

    def walk(item):
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        if isinstance(item, str) and wanted(item):
            named.add(item)
            return local_path(item, mount)
        return item

    if not value.startswith(("{", "[")):
        return walk(value)
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    walked = walk(parsed)
    return value if walked == parsed else json.dumps(walked)


def use_weights(executor_input: dict, mount: str = "/") -> bool:
    """The Trainer with a `backbone_weights` input (the weights file, which the launcher has
    copied into the pod): the input set aside, not TFX's, and the Trainer's options
    (custom_config) name the local copy. Returns whether it did."""
    artifacts = executor_input.get("inputs", {}).get("artifacts", {})
    imported = artifacts.pop(WEIGHTS_INPUT, None)
    if not imported:
        return False
    uri = imported["artifacts"][0]["uri"].rstrip("/")
    local = local_path(uri, mount)
    if local is None:
        raise ValueError(f"weights file {uri}: the launcher copies only {BUCKET_SCHEMES} URIs.")
    parameters = executor_input["inputs"].get("parameterValues", {})
    for key, value in parameters.items():
        if isinstance(value, str):  # the file, not a sibling "uri2"
            parameters[key] = _in_pod(value, lambda u: u == uri, set(), mount)
    return True


def _system_typed(value: dict) -> bool:
    return any(
        (a.get("type") or {}).get("schemaTitle", "").startswith("system.")
        for a in value.get("artifacts", [])
    )


def _folder_again(path: str) -> None:
    """An artifact mirror that is a zero-byte file (a `dir/` marker object the launcher
    downloaded as a file, kubeflow/pipelines#13476) is an empty folder."""
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        os.remove(path)
        os.makedirs(path)


def repair_output(output: dict, mount: str = "/") -> dict:
    """The ExecutorOutput as the launcher can use it: remote URIs (also in metadata, such as
    the blessing's model and the pushed destination, which later runs read), no nulls, no
    launcher keys."""
    for key in LAUNCHER_OUTPUTS:
        output.get("artifacts", {}).pop(key, None)
    for value in output.get("artifacts", {}).values():
        for artifact in value.get("artifacts", []):
            uri = artifact.get("uri", "")
            artifact["uri"] = remote_uri(uri, mount) or uri
            if "metadata" in artifact:
                artifact["metadata"] = _cleaned(artifact["metadata"], mount)
    return output


def _cleaned(value: Any, mount: str) -> Any:
    if isinstance(value, dict):
        return {k: _cleaned(v, mount) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_cleaned(v, mount) for v in value if v is not None]
    if isinstance(value, str):
        return remote_uri(value, mount) or value
    return value


def push_into_artifact(executor_input: dict, mount: str = "/") -> bool:
    """A Pusher whose serving folder is on minio:// or s3://, which TensorFlow in the image
    cannot write, or that has none (SERVED_FROM_ARTIFACT: compiled with no root), pushes to a
    folder in the pod instead; its `pushed_model` artifact, a full copy of the model that the
    launcher uploads, is then the served copy, and its `pushed_destination` names it
    (repair_output). Returns whether it did."""
    parameters = executor_input.get("inputs", {}).get("parameterValues", {})
    if not isinstance(parameters.get("push_destination"), str):
        return False
    destination = json.loads(parameters["push_destination"])
    filesystem = destination.get("filesystem", {})
    base = filesystem.get("base_directory", filesystem.get("baseDirectory", ""))
    if not base.startswith(("minio://", "s3://")) and base != SERVED_FROM_ARTIFACT:
        return False
    filesystem.pop("baseDirectory", None)
    filesystem["base_directory"] = os.path.join(mount, "tmp", "serving")
    parameters["push_destination"] = json.dumps(destination)
    return True


def _pushed_here(output: dict) -> None:
    for artifact in output.get("artifacts", {}).get("pushed_model", {}).get("artifacts", []):
        if "pushed_destination" in artifact.get("metadata", {}):
            artifact["metadata"]["pushed_destination"] = artifact["uri"]


def _main(parsed) -> None:
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    from imgtfx.pipeline import local_settings

    local_settings.apply()  # each task is its own process: the same settings as a local run
    args, beam_args = parsed
    mount = "/"  # the launcher's mirrors: /gcs, /minio, /s3 in the pod
    inputs_spec = json.loads(args.json_serialized_inputs_spec_args or "{}")
    executor_input = json.loads(args.json_serialized_invocation_args)
    from imgtfx.components.object_store import ObjectStoreError, data_environ

    try:
        fetch_data(executor_input, data_environ(), mount)
    except ObjectStoreError as e:  # one line, not a traceback
        sys.exit(f"ImageExampleGen cannot copy its data into the pod: {e}")
    try:
        fetch_non_landmarks(executor_input, data_environ(), mount)
    except ObjectStoreError as e:
        sys.exit(f"The Trainer cannot copy its non-landmark photos into the pod: {e}")
    use_weights(executor_input, mount)
    executor_input = repair_input(executor_input, inputs_spec, mount)
    pushed_here = push_into_artifact(executor_input, mount)
    args.json_serialized_invocation_args = json.dumps(executor_input)
    kubeflow_v2_run_executor.main((args, beam_args))
    output_file = executor_input["outputs"].get("outputFile")
    if output_file and os.path.exists(output_file):
        with open(output_file, encoding="utf-8") as f:
            output = repair_output(json.load(f), mount)
        if pushed_here:
            _pushed_here(output)
        with open(output_file, "w", encoding="utf-8") as f:
            json.dump(output, f)


def main(argv: list[str] | None = None) -> None:
    from absl import app
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    app.run(
        _main,
        argv=[sys.argv[0], *(sys.argv[1:] if argv is None else argv)],
        flags_parser=kubeflow_v2_run_executor._parse_flags,
    )


if __name__ == "__main__":
    main()
