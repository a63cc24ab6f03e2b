"""The emulated driver and launcher: a compiled package's tasks run in dependency order, each
task's command in its own pod (pod.py), its inputs copied down from the emulated object store
before and its outputs uploaded after, recorded in ML Metadata (metadata.py). See __init__.py
for what is emulated and how faithfully; each behaviour cites the backend's file and tag.

Over 400 lines: the driver and the launcher are one contract, per release, and read best in the
order a task goes through them.
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

import kubeflow
from kubeflow.entrypoint import BUCKET_SCHEMES, local_path
from tests.kubeflow.kfp_emulator import launcher
from tests.kubeflow.kfp_emulator.metadata import record_outputs, round_trip
from tests.kubeflow.kfp_emulator.pod import host_path, run_in_pod
from tests.kubeflow.kfp_emulator.spec import (
    EXECUTOR_INPUT_PLACEHOLDER,
    OPEN_SOURCE,
    VERTEX,
    TaskFailed,
    constant,
    task_order,
    value_message,
)


def hidden_by_pod_tmp(*paths: str) -> tuple[str, ...]:
    """The paths a pod's own /tmp would hide (a checkout or a virtual environment cloned under
    /tmp, as CI may): shared into the pod at their own place, as the image holds its code."""
    hidden = sorted({p for p in map(os.path.realpath, paths) if p.startswith("/tmp/")})
    return tuple(p for p in hidden if not any(p.startswith(q + "/") for q in hidden))


# The image's WORKDIR (kubeflow/Dockerfile /pipeline, holding the code): this checkout.
WORKDIR = os.path.dirname(os.path.dirname(os.path.abspath(kubeflow.__file__)))


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
        volumes: tuple[str, ...] = (),
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
        volumes: open-source launcher: folders of this machine every pod mounts at their own
          path, as a PersistentVolume (a local image tree); the folder of `metadata`, the
          cluster's metadata service here, is one.
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
        self.volumes = (
            tuple(volumes)
            + ((os.path.dirname(metadata),) if metadata else ())
            + hidden_by_pod_tmp(WORKDIR, sys.prefix)
        )
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
        self.states: dict[str, str] = {}  # each recorded task's execution state
        self.log: list[tuple[str, list[str]]] = []
        self._imported: dict[str, dict] = {}  # importer artifacts by what matches them

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
            self.pod = os.path.join(self.pods, f"{name}-{uuid.uuid4().hex[:8]}")
        else:
            task_root = os.path.join(self.root, name)
        executor_input = self._executor_input(name, task, component, task_root)
        env = None
        if self.launcher == OPEN_SOURCE:
            spec_env = {e["name"]: e["value"] for e in container.get("env", [])}
            spec_env.update(self._secret_env(name, component["executorLabel"]))
            env = {**self.env, **spec_env, **self.env_overrides}
            self._download_inputs(executor_input, env)
        else:
            for artifacts in executor_input["outputs"]["artifacts"].values():
                for artifact in artifacts["artifacts"]:
                    os.makedirs(artifact["uri"], exist_ok=True)
            pre_cache = container.get("lifecycle", {}).get("preCacheCheck")
            if pre_cache:  # ExampleGen's driver: computes span and fingerprint (Vertex only)
                self._call(
                    name + ":driver", pre_cache["command"], pre_cache["args"], executor_input
                )
        try:
            self._call(name, container["command"], container.get("args", []), executor_input, env)
        except TaskFailed:
            if self.launcher == OPEN_SOURCE:
                # launcher_v2.go Execute: the execution is published FAILED (a deferred
                # publish: 2.2.0 :142, to 2.17.0); from 2.16.0 (:415-428; 2.17.0 :786-790) with its
                # executor-logs uploaded and recorded, and no other output.
                self.outputs[name] = {}
                if self.kfp >= (2, 16, 0):
                    logs = self._merge_output(executor_input, only=(EXECUTOR_LOGS,))
                    self.outputs[name] = logs
                    self._upload_outputs(logs)
                    self._as_recorded(name, logs)
                self._record(name, "FAILED")
            raise
        self.outputs[name] = self._merge_output(executor_input)
        if self.launcher == OPEN_SOURCE:
            self._upload_outputs(self.outputs[name])
            self._as_recorded(name, self.outputs[name])
            self._record(name)

    def _record(self, task: str, state: str = "COMPLETE") -> None:
        """The task's outputs into the ML Metadata store, when the run has one."""
        self.states[task] = state
        if self.metadata:
            pipeline_name = self.pipeline["pipelineInfo"]["name"]
            record_outputs(
                self.metadata, pipeline_name, self.run_id, task, self.outputs[task], state=state
            )

    def _import(self, task: dict, importer: dict) -> dict:
        """component/importer_launcher.go ImportSpecToMLMDArtifact: no pod and no download; the
        URI is a constant, or (runtimeParameter) the task input it names, which must come from
        the parent DAG's inputs (2.2.0 :196-221, 2.15.0 :213-238); from 2.3.0 its scheme must
        be one the object store knows (ParseProviderFromPath, 2.3.0 :230, "No Provider scheme
        found in artifact Uri" until 2.4.1, "no provider scheme found in artifact URI" from
        2.5.0) and its store_session_info is the pod's env (2.3.0 :255). Unless `reimport`,
        an artifact already recorded for this pipeline with the same type, URI and metadata is
        reused, its id and all (findOrNewArtifactToImport, FindMatchedArtifact: metadata/
        client.go 2.2.0 :968-1011). The object is not looked up: a missing one shows only as a
        missing path downstream."""
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
        if self.kfp >= (2, 3, 0) and not uri.startswith((*BUCKET_SCHEMES, "mem://")):
            if self.kfp >= (2, 5, 0):
                raise TaskFailed(f"no provider scheme found in artifact URI: {uri}")
            raise TaskFailed(f"No Provider scheme found in artifact Uri: {uri}")
        metadata = dict(importer.get("metadata", {}))
        if self.kfp >= (2, 3, 0):
            provider = uri.split("://")[0]
            metadata["store_session_info"] = json.dumps(
                {"Provider": provider, "Params": {"fromEnv": "true"}}
            )
        metadata = {k: round_trip(v) for k, v in metadata.items()}
        match = json.dumps([importer["typeSchema"], uri, metadata], sort_keys=True)
        if not importer.get("reimport") and match in self._imported:
            return self._imported[match]
        self._next_id += 1  # recorded in ML Metadata, an id as every artifact there
        artifact = {"id": str(self._next_id), "type": importer["typeSchema"], "uri": uri}
        self._imported[match] = {**artifact, "metadata": metadata}
        return self._imported[match]

    def _executor_input(self, name: str, task: dict, component: dict, task_root: str) -> dict:
        inputs = task.get("inputs", {})
        parameters = {}
        for key, spec in inputs.get("parameters", {}).items():
            if "componentInputParameter" in spec:
                value = self.parameters[spec["componentInputParameter"]]
            else:
                value = constant(spec)
            parameters[key] = value
        if self.launcher == OPEN_SOURCE:
            parameters = launcher.checked_parameters(name, component, parameters)
        if not self._v2_1:
            parameters = {k: value_message(v) for k, v in parameters.items()}
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
            output_file = os.path.join(local_path(task_root), "output_metadata.json")
        else:  # component.OutputMetadataFilepath (component/launcher_v2.go, 2.2.0-2.14)
            output_file = "/tmp/kfp_outputs/output_metadata.json"
        return outputs, output_file

    def _local(self, uri: str) -> str:
        """Where this machine holds the launcher's mirror of `uri` in the task's pod (the pod
        sees it at LocalPathForURI: /minio/..., /gcs/..., /s3/...)."""
        return local_path(uri, self.pod)

    def _secret_env(self, name: str, executor_label: str) -> dict[str, str]:
        """The pod's env from the package's secretAsEnv (launcher.secret_env)."""
        return launcher.secret_env(self.platform, name, executor_label, self.secrets, self.kfp)

    def stored(self, uri: str) -> str:
        """Where the emulated object store keeps `uri`."""
        return local_path(uri, self.buckets)

    def _download_inputs(self, executor_input: dict, env: Mapping[str, str]) -> None:
        """launcher_v2.go downloadArtifacts (2.2.0 :392, 2.17.0 :691): every input copied whole
        into the pod's mirror, from a bucket the launcher can open (launcher.
        input_bucket_refusal); then prepareOutputFolders: the parent of every output's mirror."""
        for key, value in executor_input["inputs"]["artifacts"].items():
            for artifact in value["artifacts"]:
                uri = artifact["uri"]
                refusal = launcher.input_bucket_refusal(key, uri, self.root, env, self.kfp)
                if refusal:
                    raise TaskFailed(refusal)
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
        to the store under its key (launcher.upload_key), files only (no folder markers); a
        missing mirror is only a warning there."""
        for name, artifacts in outputs.items():
            for artifact in artifacts:
                local = self._local(artifact["uri"])
                key = launcher.upload_key(name, artifact["uri"], self.root, local)
                if key is None:
                    continue  # "does not have a recognized storage URI": skipped
                stored = self.stored(artifact["uri"])
                os.makedirs(os.path.dirname(stored), exist_ok=True)
                _copy(local, stored)

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
                artifact["metadata"] = {k: round_trip(v) for k, v in metadata.items()}

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
        if self.launcher == OPEN_SOURCE:
            done = run_in_pod(
                self.pod, argv, env or self.env, WORKDIR, self.volumes, self.timeout_s
            )
        else:
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

    def _merge_output(self, executor_input: dict, only: tuple = ()) -> dict[str, list[dict]]:
        """The task's output artifacts (`only` those keys, if given), with what its executor
        reported merged in (launcher.merge_runtime_artifact)."""
        outputs = {
            key: [json.loads(json.dumps(a)) for a in value["artifacts"]]
            for key, value in executor_input["outputs"]["artifacts"].items()
            if not only or key in only
        }
        if only:
            return outputs
        path = executor_input["outputs"]["outputFile"]
        if self.launcher == OPEN_SOURCE:  # the pod's path
            path = host_path(self.pod, path)
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
                launcher.merge_runtime_artifact(artifact, update)
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
