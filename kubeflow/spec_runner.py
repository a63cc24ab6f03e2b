"""Executes a compiled package on this machine, the way the KFP v2 driver and launcher would.

No cluster, Docker engine or network is needed: each task's own container command (the
package's `python -m kubeflow.entrypoint ...`, or whatever the spec names) runs in a subprocess
of this environment, in dependency order, with the ExecutorInput JSON the driver builds and the
launcher substitutes for `{{$}}`. What the spec says is what runs: its commands, arguments,
environment, parameters and artifact wiring.

Two launchers, chosen by the package:
- a `.yaml` KFP package runs as the open-source backend runs it, per release (`kfp_version`;
  read from kubeflow/pipelines `backend/src/v2/` at tags 2.2.0-2.17.0, each behaviour cited
  beside its code): the root from the run, never the package; an object store and a pod per
  task (inputs copied down before the command, outputs uploaded after it); inputs rebuilt from
  ML Metadata (named by id, empty schema, metadata round-tripped); from 2.4 a uuid in output
  URIs, from 2.5 the `executor-logs` output, from 2.15 output names and the outputFile under
  the task root; the ExecutorOutput parsed strictly; no `preCacheCheck` hook, no resolver
  executors; every task's outputs recorded in an ML Metadata store as the launcher records them,
  so that the Evaluator's baseline lookup reads what a cluster would hold;
- a `.json` PipelineJob runs as Vertex does: ExampleGen's driver hook first, and resolver tasks
  answered from this run's history (nothing blessed before the first run, as on a new project).

What is emulated rather than read from the spec: the driver and launcher themselves, the object
store (a local folder of buckets) and the metadata service (a SQLite store). Emulated behaviour
is only as faithful as its citation: tests/kubeflow shows TFX's bare entrypoint failing under it
as it fails on a cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from kubeflow.entrypoint import BUCKET_SCHEMES, MOUNT_ENV, local_path

EXECUTOR_INPUT_PLACEHOLDER = "{{$}}"


class TaskFailed(RuntimeError):
    """A task's command exited non-zero; the message holds the tail of its output."""


OPEN_SOURCE, VERTEX = "kfp", "vertex"


def load_spec(path: str) -> dict:
    """{'pipelineSpec', 'runtimeConfig', 'launcher'} of a `.yaml` KFP package (read with kfp's
    own loader, the one `Client.upload_pipeline` uses) or a `.json` PipelineJob."""
    if path.endswith((".yaml", ".yml")):
        from kfp.client.client import _extract_pipeline_yaml

        doc = _extract_pipeline_yaml(path)
        spec = json_format.MessageToDict(doc.pipeline_spec)
        defaults = {
            name: definition["defaultValue"]
            for name, definition in spec["root"]
            .get("inputDefinitions", {})
            .get("parameters", {})
            .items()
            if "defaultValue" in definition
        }
        return {
            "pipelineSpec": spec,
            "runtimeConfig": {"parameterValues": defaults},
            "platformSpec": json_format.MessageToDict(doc.platform_spec),
            "launcher": OPEN_SOURCE,
        }
    with open(path, encoding="utf-8") as f:
        return {**json.load(f), "launcher": VERTEX}


def task_order(tasks: Mapping[str, dict]) -> list[str]:
    """Task names, each after every task it depends on (stable: by name among equals)."""
    done: list[str] = []
    pending = dict(tasks)
    while pending:
        ready = sorted(
            name
            for name, task in pending.items()
            if all(dep in done for dep in task.get("dependentTasks", []))
        )
        if not ready:
            raise ValueError(f"tasks with unmet or circular dependencies: {sorted(pending)}")
        done.extend(ready)
        for name in ready:
            del pending[name]
    return done


def _constant(value_spec: dict) -> Any:
    """The Python value of a `runtimeValue` in pipeline spec 2.0 or 2.1 form."""
    runtime = value_spec["runtimeValue"]
    if "constantValue" in runtime:  # 2.0: {"stringValue": ...} / {"intValue": ...}
        return next(iter(runtime["constantValue"].values()))
    return runtime["constant"]  # 2.1: a plain JSON value


def _value(value: Any) -> dict:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return {"stringValue": str(value)}
    return {"intValue": str(value)} if isinstance(value, int) else {"doubleValue": value}


class LocalSpecRunner:
    """Runs the tasks of a compiled spec with local artifact URIs under `root`."""

    def __init__(
        self,
        spec: dict,
        root: str,
        parameters: Mapping[str, Any] | None = None,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        timeout_s: int = 1200,
        metadata: str | None = None,
        kfp_version: str = "2.15.0",
        workdir: str | None = None,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
    ):
        """Args:
        spec: from load_spec.
        root: the run's pipeline root (open-source backend); where artifacts go when the spec
          names none (Vertex).
        parameters: runtime parameter values over the spec's defaults.
        env: environment of every task; on the open-source launcher it overrides the spec's
          container env (e.g. to point the baseline lookup at a local store).
        metadata: open-source launcher: the SQLite ML Metadata file to record into.
        kfp_version: open-source launcher: the backend release whose driver and launcher
          contract to follow, "2.2.0" to "2.17.0".
        workdir: open-source launcher: a local folder standing for the cluster: `buckets/`
          (the object store: minio://b/k is buckets/minio/b/k) and `pods/` (each task's local
          mirror of its artifacts, as the launcher makes it in the pod).
        secrets: open-source launcher: the namespace's Kubernetes secrets, {name: {key:
          value}}, for the package's platform spec (secretAsEnv).
        """
        self.pipeline = spec["pipelineSpec"]
        self.platform = spec.get("platformSpec", {}).get("platforms", {}).get("kubernetes", {})
        self.secrets = {name: dict(data) for name, data in (secrets or {}).items()}
        self.launcher = spec.get("launcher", VERTEX)
        self._v2_1 = self.pipeline.get("schemaVersion", "").startswith("2.1")
        if self.launcher == OPEN_SOURCE:
            # The run's pipeline_root; the package's defaultPipelineRoot is never read by the
            # backend (driver/root_dag.go, 2.17.0 :97-115: the run's, else the kfp-launcher
            # ConfigMap's, else minio://mlpipeline/v2/artifacts).
            self.root = (root or DEFAULT_PIPELINE_ROOT).rstrip("/")
            if not self.root.startswith(BUCKET_SCHEMES):  # objectstore/config.go (2.17.0 :137)
                raise ValueError(
                    f'parse bucket config failed: unsupported Cloud bucket: "{self.root}"'
                )
            if workdir is None:
                raise ValueError("the open-source launcher needs a workdir for its buckets.")
            self.buckets = os.path.join(workdir, "buckets")
            self.pods = os.path.join(workdir, "pods")
        else:
            self.root = os.path.abspath(self.pipeline.get("defaultPipelineRoot") or root)
        self.run_id = uuid.uuid4().hex[:12]
        self.metadata = metadata
        self.kfp = tuple(int(p) for p in kfp_version.split(".")[:3])
        self._next_id = 0
        runtime = spec.get("runtimeConfig", {})
        self.parameters = {
            **runtime.get("parameterValues", {}),  # pipeline spec 2.1: plain JSON values
            # pipeline spec 2.0: Value messages, {"stringValue": ...} or {"intValue": ...}
            **{k: next(iter(v.values())) for k, v in runtime.get("parameters", {}).items()},
            **dict(parameters or {}),
        }
        self.python = python
        self.env = {**os.environ, **dict(env or {})}
        self.env_overrides = dict(env or {})
        # `python` in the spec's commands must be this environment's interpreter.
        self.env["PATH"] = os.path.dirname(python) + os.pathsep + self.env.get("PATH", "")
        self.timeout_s = timeout_s
        self.outputs: dict[str, dict[str, list[dict]]] = {}
        self.log: list[tuple[str, list[str]]] = []

    def run(self) -> dict[str, dict[str, list[dict]]]:
        """Runs every task; returns {task: {output key: [RuntimeArtifact as dict]}}."""
        tasks = self.pipeline["root"]["dag"]["tasks"]
        for name in task_order(tasks):
            self.run_task(name, tasks[name])
        return self.outputs

    def run_task(self, name: str, task: dict) -> None:
        component = self.pipeline["components"][task["componentRef"]["name"]]
        executor = self.pipeline["deploymentSpec"]["executors"][component["executorLabel"]]
        if "resolver" in executor:
            if self.launcher == OPEN_SOURCE:
                raise ValueError(f"task {name}: the open-source backend runs no resolver.")
            self.outputs[name] = self._resolve(component)
            return
        if "importer" in executor and self.launcher == OPEN_SOURCE:
            self.outputs[name] = {"artifact": [self._import(task, executor["importer"])]}
            self._record(name)
            return
        if "container" not in executor:
            raise ValueError(f"task {name}: executor {sorted(executor)} is not a container.")
        container = executor["container"]
        if self.launcher == OPEN_SOURCE:
            pipeline_name = self.pipeline["pipelineInfo"]["name"]
            task_root = "/".join((self.root, pipeline_name, self.run_id, name))
            if self.kfp >= (2, 4, 0):
                # driver/driver.go provisionOutputs (2.4.1 :1588): a fresh uuid per execution.
                task_root += "/" + uuid.uuid4().hex
            self.mount = os.path.join(self.pods, f"{name}-{uuid.uuid4().hex[:8]}")
        else:
            task_root = os.path.join(self.root, name)
        executor_input = self._executor_input(name, task, component, task_root)
        env = None
        if self.launcher == OPEN_SOURCE:
            self._download_inputs(executor_input)
            spec_env = {e["name"]: e["value"] for e in container.get("env", [])}
            spec_env.update(self._secret_env(name, component["executorLabel"]))
            env = {**self.env, **spec_env, **self.env_overrides, MOUNT_ENV: self.mount}
        else:
            for artifacts in executor_input["outputs"]["artifacts"].values():
                for artifact in artifacts["artifacts"]:
                    os.makedirs(artifact["uri"], exist_ok=True)
            pre_cache = container.get("lifecycle", {}).get("preCacheCheck")
            if pre_cache:  # ExampleGen's driver: computes span and fingerprint (Vertex only)
                self._call(
                    name + ":driver", pre_cache["command"], pre_cache["args"], executor_input
                )
        self._call(name, container["command"], container.get("args", []), executor_input, env)
        self.outputs[name] = self._merge_output(executor_input)
        if self.launcher == OPEN_SOURCE:
            self._upload_outputs(self.outputs[name])
            self._as_recorded(name, self.outputs[name])
            self._record(name)

    def _record(self, task: str) -> None:
        """The task's outputs into the ML Metadata store, when the run has one."""
        if self.metadata:
            pipeline_name = self.pipeline["pipelineInfo"]["name"]
            record_outputs(self.metadata, pipeline_name, self.run_id, task, self.outputs[task])

    def _import(self, task: dict, importer: dict) -> dict:
        """component/importer_launcher.go ImportSpecToMLMDArtifact: no pod and no download; the
        URI is a constant, or (runtimeParameter) the task input it names, which must come from
        the parent DAG's inputs (2.2.0 :196-221, 2.15.0 :213-238); from 2.4.1 its scheme must
        be one the object store knows (objectstore.ParseProviderFromPath, 2.4.1 :230). The
        object is not looked up: a missing one shows only as a missing path downstream."""
        uri_spec = importer["artifactUri"]
        if "runtimeParameter" in uri_spec:
            source = task.get("inputs", {}).get("parameters", {}).get(uri_spec["runtimeParameter"])
            if source is None:
                raise TaskFailed(
                    f"cannot find parameter {uri_spec['runtimeParameter']} in task input to "
                    "fetch artifact uri"
                )
            name = source.get("componentInputParameter", "")
            if name not in self.parameters:
                raise TaskFailed(f"parent DAG does not have input parameter {name}")
            uri = self.parameters[name]
        elif "constant" in uri_spec:
            uri = uri_spec["constant"]
        else:
            raise TaskFailed("artifact uri not provided")
        if self.kfp >= (2, 4, 0) and not uri.startswith((*BUCKET_SCHEMES, "mem://")):
            raise TaskFailed(f"no provider scheme found in artifact URI: {uri}")
        metadata = dict(importer.get("metadata", {}))
        if self.kfp >= (2, 4, 0):  # importer_launcher.go (2.4.1 :263): session from the pod's env
            provider = uri.split("://")[0]
            metadata["store_session_info"] = json.dumps(
                {"Provider": provider, "Params": {"fromEnv": "true"}}
            )
        self._next_id += 1  # recorded in ML Metadata, an id as every artifact there
        artifact = {"id": str(self._next_id), "type": importer["typeSchema"], "uri": uri}
        return {**artifact, "metadata": {k: _round_trip(v) for k, v in metadata.items()}}

    def _executor_input(self, name: str, task: dict, component: dict, task_root: str) -> dict:
        inputs = task.get("inputs", {})
        parameters = {}
        for key, spec in inputs.get("parameters", {}).items():
            if "componentInputParameter" in spec:
                value = self.parameters[spec["componentInputParameter"]]
            else:
                value = _constant(spec)
            parameters[key] = value if self._v2_1 else _value(value)
        artifacts = {}
        for key, spec in inputs.get("artifacts", {}).items():
            source = spec["taskOutputArtifact"]
            produced = self.outputs[source["producerTask"]].get(source["outputArtifactKey"], [])
            if self.launcher == OPEN_SOURCE:
                produced = [_from_metadata_store(a) for a in produced]
            artifacts[key] = {"artifacts": produced}
        if self.launcher == OPEN_SOURCE:
            outputs, output_file = self._open_source_outputs(name, component, task_root)
        else:
            outputs = {
                key: {
                    "artifacts": [
                        {
                            "name": f"{name}-{key}",
                            "type": definition["artifactType"],
                            "uri": os.path.join(task_root, key),
                            "metadata": {},
                        }
                    ]
                }
                for key, definition in _output_definitions(component).items()
            }
            output_file = os.path.join(task_root, "executor_output.json")
        # Schema 2.1 launchers pass plain JSON values; 2.0 ones pass Value messages.
        parameters_key = "parameterValues" if self._v2_1 else "parameters"
        return {
            "inputs": {parameters_key: parameters, "artifacts": artifacts},
            "outputs": {"artifacts": outputs, "outputFile": output_file},
        }

    def _open_source_outputs(self, name: str, component: dict, task_root: str):
        """Output artifacts and outputFile as the open-source driver provisions them."""
        definitions = {
            key: definition["artifactType"]
            for key, definition in _output_definitions(component).items()
        }
        if self.kfp >= (2, 5, 0):  # driver/driver.go provisionOutputs (2.5.0 :2025), PUBLISH_LOGS
            definitions[EXECUTOR_LOGS] = {"schemaTitle": "system.Artifact"}
        outputs = {}
        for key, artifact_type in definitions.items():
            uri = os.path.join(task_root, key)
            if key == EXECUTOR_LOGS and self.kfp >= (2, 16, 1):
                uri += "-0"  # launcher_v2.go qualifyExecutorLogsForRetry (2.16.1): retry index
            artifact = {"type": artifact_type, "uri": uri}
            if self.kfp >= (2, 15, 0):
                artifact["name"] = key  # driver/driver.go (2.17.0 :783): "Required by Pythonic"
            outputs[key] = {"artifacts": [artifact]}
        if self.kfp >= (2, 15, 0):  # driver/driver.go (2.17.0 :802): under the local task root
            output_file = os.path.join(self._local(task_root), "output_metadata.json")
        else:  # component.OutputMetadataFilepath, /tmp/kfp_outputs/output_metadata.json in a pod
            output_file = os.path.join(self.mount, "tmp", "kfp_outputs", "output_metadata.json")
        return outputs, output_file

    def _local(self, uri: str) -> str:
        """The launcher's mirror of `uri` in this task's pod (LocalPathForURI)."""
        return local_path(uri, self.mount)

    def _secret_env(self, name: str, executor_label: str) -> dict[str, str]:
        """The pod's env from the platform spec's secretAsEnv, as the driver's
        extendPodSpecPatch adds it (driver/driver.go 2.2.0 :554, 2.5.0 :893; driver/k8s.go
        2.15.0 :333: an env var per keyToEnv, valueFrom secretKeyRef). A secret or key the
        namespace lacks keeps the pod from starting: Kubernetes' CreateContainerConfigError."""
        config = self.platform.get("deploymentSpec", {}).get("executors", {}).get(executor_label)
        env = {}
        for entry in (config or {}).get("secretAsEnv", []):
            known = {"secretName", "keyToEnv"}  # kubernetes_executor_config.proto at 2.2.0
            if self.kfp >= (2, 5, 0):
                known.add("secretNameParameter")  # PR #11621
            if self.kfp >= (2, 15, 0):
                known.add("optional")  # PR #12216
            unknown = sorted(set(entry) - known)
            # The 2.2 driver and the 2.14 compiler (argocompiler/container.go 2.14.3 :285) parse
            # the config strictly; the 2.4 to 2.13 drivers drop what they do not know
            # (util.UnmarshalString; kubeflow/pipelines#11935, #12495).
            strict = self.kfp < (2, 4, 0) or (2, 14, 0) <= self.kfp < (2, 15, 0)
            if unknown and strict:
                raise TaskFailed(
                    f'task {name}: unknown field "{unknown[0]}" in kfp_kubernetes.SecretAsEnv'
                )
            entry = {k: v for k, v in entry.items() if k in known}
            parameter = entry.get("secretNameParameter", {}).get("runtimeValue", {})
            if "constant" in parameter:
                entry["secretName"] = parameter["constant"]
            secret = entry.get("secretName")
            if secret not in self.secrets and entry.get("optional"):
                continue
            if secret not in self.secrets:
                raise TaskFailed(
                    f'task {name}: CreateContainerConfigError: secret "{secret}" not found'
                )
            for pair in entry.get("keyToEnv", []):
                if pair["secretKey"] not in self.secrets[secret]:
                    raise TaskFailed(
                        f"task {name}: CreateContainerConfigError: couldn't find key "
                        f"{pair['secretKey']} in Secret {secret}"
                    )
                env[pair["envVar"]] = self.secrets[secret][pair["secretKey"]]
        return env

    def stored(self, uri: str) -> str:
        """Where the emulated object store keeps `uri`."""
        return local_path(uri, self.buckets)

    def _download_inputs(self, executor_input: dict) -> None:
        """launcher_v2.go downloadArtifacts (2.2.0 :392, 2.17.0 :691): every input copied whole
        into the pod's mirror; then prepareOutputFolders: the parent of every output's mirror."""
        for value in executor_input["inputs"]["artifacts"].values():
            for artifact in value["artifacts"]:
                uri = artifact["uri"]
                stored, mirror = self.stored(uri), self._local(uri)
                os.makedirs(os.path.dirname(mirror), exist_ok=True)
                _copy(stored, mirror)
                if self.kfp < (2, 17, 0) and not uri.endswith("/"):
                    # objectstore/object_store.go DownloadBlob (2.2.0 :122-149, 2.15.0
                    # :127-154) lists by a plain string prefix: "data/train" also brings
                    # "data/train2/..." beside it (path-prefix match from 2.17.0, #12928).
                    folder, base = os.path.split(stored.rstrip("/"))
                    beside = os.path.dirname(mirror.rstrip("/"))
                    for sibling in os.listdir(folder) if os.path.isdir(folder) else []:
                        if sibling.startswith(base) and sibling != base:
                            _copy(os.path.join(folder, sibling), os.path.join(beside, sibling))
        for value in executor_input["outputs"]["artifacts"].values():
            for artifact in value["artifacts"]:
                os.makedirs(os.path.dirname(self._local(artifact["uri"])), exist_ok=True)

    def _upload_outputs(self, outputs: dict[str, list[dict]]) -> None:
        """launcher_v2.go uploadOutputArtifacts (2.2.0 :419, 2.17.0 :778): each output's mirror
        to the store, files only (no folder markers); a missing mirror is only a warning
        there; a URI outside the run's bucket fails (KeyFromURI)."""
        bucket = "/".join(self.root.split("/")[:3]) + "/"
        for artifacts in outputs.values():
            for artifact in artifacts:
                if not artifact["uri"].startswith(bucket):
                    raise TaskFailed(
                        f"failed to upload output artifact: URI {artifact['uri']} does not have "
                        f"expected bucket prefix {bucket}"
                    )
                mirror, stored = self._local(artifact["uri"]), self.stored(artifact["uri"])
                os.makedirs(os.path.dirname(stored), exist_ok=True)
                _copy(mirror, stored)

    def _as_recorded(self, task: str, outputs: dict[str, list[dict]]) -> None:
        """Each output as the launcher records it in ML Metadata (metadata/client.go
        RecordArtifact, 2.2.0 :892, 2.17.0 :1214): an id, display_name and store_session_info
        added, each metadata value converted (converter.go StructValueToMLMDValue); a null
        fails the task there."""
        for key, artifacts in outputs.items():
            for artifact in artifacts:
                self._next_id += 1
                artifact["id"] = str(self._next_id)
                metadata = {"display_name": key, **artifact.get("metadata", {})}
                if self.kfp >= (2, 3, 0):
                    metadata["store_session_info"] = json.dumps({"Provider": "local"})
                for name, value in metadata.items():
                    if value is None:
                        raise TaskFailed(
                            f'task {task}: unable to produce MLMD artifact for output "{key}": '
                            f"metadata {name}: unknown/unsupported value type "
                            "*structpb.Value_NullValue"
                        )
                artifact["metadata"] = {k: _round_trip(v) for k, v in metadata.items()}

    def _call(
        self,
        label: str,
        command: list[str],
        args: list[str],
        executor_input: dict,
        env: Mapping[str, str] | None = None,
    ) -> None:
        serialized = json.dumps(executor_input)
        argv = [a.replace(EXECUTOR_INPUT_PLACEHOLDER, serialized) for a in [*command, *args]]
        # Check that what we pass is a valid ExecutorInput, as the launcher's would be.
        json_format.Parse(serialized, pipeline_spec_pb2.ExecutorInput())
        self.log.append((label, argv))
        done = subprocess.run(
            argv, env=env or self.env, capture_output=True, text=True, timeout=self.timeout_s
        )
        logs = executor_input["outputs"]["artifacts"].get(EXECUTOR_LOGS)
        if logs and self.launcher == OPEN_SOURCE:  # launcher_v2.go getLogWriter (2.17.0 :632)
            with open(self._local(logs["artifacts"][0]["uri"]), "w", encoding="utf-8") as f:
                f.write(done.stdout + done.stderr)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr)[-4000:]
            raise TaskFailed(f"task {label} exited {done.returncode}:\n{tail}")

    def _merge_output(self, executor_input: dict) -> dict[str, list[dict]]:
        """The task's output artifacts, with the metadata its executor reported."""
        outputs = {
            key: [dict(a) for a in value["artifacts"]]
            for key, value in executor_input["outputs"]["artifacts"].items()
        }
        path = executor_input["outputs"]["outputFile"]
        if not os.path.exists(path):
            return outputs
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if self.launcher == OPEN_SOURCE:  # launcher_v2.go getExecutorOutputFile (2.17.0 :1208)
            try:
                json_format.Parse(text, pipeline_spec_pb2.ExecutorOutput())
            except json_format.ParseError as e:
                raise TaskFailed(f"failed to unmarshall ExecutorOutput in file {path}: {e}") from e
        reported = json.loads(text).get("artifacts", {})
        for key, value in reported.items():
            if self.launcher == OPEN_SOURCE and key == EXECUTOR_LOGS:
                continue  # launcher_v2.go (2.16.1+): the launcher's own, whatever the command says
            for artifact, update in zip(
                outputs.get(key, []), value.get("artifacts", []), strict=False
            ):
                artifact["metadata"] = update.get("metadata", {})
                artifact["uri"] = update.get("uri", artifact["uri"])
        return outputs

    def _resolve(self, component: dict) -> dict[str, list[dict]]:
        """A resolver task: the latest blessed model of this run's history (none at first)."""
        keys = component.get("outputDefinitions", {}).get("artifacts", {})
        return {key: [] for key in keys}


EXECUTOR_LOGS = "executor-logs"
DEFAULT_PIPELINE_ROOT = "minio://mlpipeline/v2/artifacts"  # config/env.go (2.2.0 :36, 2.17.0 :38)


def _copy(source: str, target: str) -> None:
    """An object (a file) or a prefix (a folder) from store to pod or back; nothing if absent."""
    if os.path.isdir(source):
        shutil.copytree(source, target, dirs_exist_ok=True)
    elif os.path.exists(source):
        shutil.copyfile(source, target)


def _output_definitions(component: dict) -> dict:
    return component.get("outputDefinitions", {}).get("artifacts", {})


def _from_metadata_store(artifact: dict) -> dict:
    """An upstream output as the driver hands it on: rebuilt from ML Metadata, named by its id,
    with an empty schema (metadata/client.go GetOutputArtifactsByExecutionId: `Schema: "",
    // TODO(Bobgy): figure out how to get schema`, 2.2.0 :822, 2.17.0 :1144; converter.go
    toRuntimeArtifact: `Name: strconv.FormatInt(artifact.GetId(), 10)`)."""
    return {
        "name": artifact["id"],
        "uri": artifact["uri"],
        "type": {"instanceSchema": ""},
        "metadata": artifact.get("metadata", {}),
    }


def _round_trip(value: Any) -> Any:
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
) -> None:
    """Records a task's execution and output artifacts in a SQLite ML Metadata store, in the
    types and contexts the KFP v2 launcher uses on a cluster."""
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
    execution = pb.Execution(type_id=execution_type, last_known_state=pb.Execution.COMPLETE)
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
