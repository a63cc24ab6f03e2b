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
import subprocess
import sys
import uuid
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from imgtfx import kubeflow
from imgtfx.kubeflow.entrypoint import local_path
from imgtfx.kubeflow.stores import BUCKET_SCHEMES
from tests.kubeflow.kfp_emulator import image, launcher, pod
from tests.kubeflow.kfp_emulator.cluster import KUBEFLOW, Cluster
from tests.kubeflow.kfp_emulator.metadata import record_outputs, round_trip
from tests.kubeflow.kfp_emulator.spec import (
    EXECUTOR_INPUT_PLACEHOLDER,
    OPEN_SOURCE,
    VERTEX,
    TaskFailed,
    constant,
    task_order,
    value_message,
)
from tests.kubeflow.kfp_emulator.store import Bucket


def image_paths() -> tuple[str, ...]:
    """What the image holds that an emulated pod takes from this machine: the checkout (the
    image's WORKDIR, code and all), the virtual environment and the interpreter it links to,
    shared into every pod at their own places (under the pod's own /tmp too, where a CI clone
    may lie, or in a folder others may not enter, such as /root)."""
    paths = sorted({os.path.realpath(p) for p in (WORKDIR, sys.prefix, sys.base_prefix)})
    return tuple(p for p in paths if not any(p.startswith(q + "/") for q in paths))


# The image's WORKDIR (kubeflow/Dockerfile /pipeline, holding the code): this checkout.
WORKDIR = os.path.dirname(os.path.dirname(os.path.abspath(kubeflow.__file__)))


class LocalSpecRunner:
    """Runs the tasks of a compiled spec: on an emulated KFP install (`cluster`) for a `.yaml`
    package, with local artifact URIs under `root` for a `.json` PipelineJob."""

    def __init__(
        self,
        spec: dict,
        root: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        timeout_s: int = 1200,
        metadata: str | None = None,
        cluster: Cluster | None = None,
        namespace: str | None = None,
        volumes: tuple[str, ...] = (),
    ):
        """Args:
        spec: from load_spec.
        root: the run's pipeline root (open-source backend: None for none, as a run created
          without one); where artifacts go when the spec names none (Vertex).
        parameters: runtime parameter values over the spec's defaults.
        env: more environment for every task (e.g. TensorFlow's log level); on the open-source
          launcher a pod's environment is otherwise the image's, the spec's, its secrets' and
          Kubernetes' service links, nothing of this process's.
        metadata: open-source launcher: the SQLite ML Metadata file to record into.
        cluster: open-source launcher: the KFP install the run goes to (cluster.py).
        namespace: open-source launcher: the run's namespace: `kubeflow` on a standalone
          install, a profile's on a multi-user one.
        volumes: open-source launcher: folders of this machine every pod mounts at their own
          path, as a PersistentVolume (a local image tree); the folder of `metadata`, the
          cluster's metadata service here, is one.
        """
        self.pipeline = spec["pipelineSpec"]
        self.platform = spec.get("platformSpec", {}).get("platforms", {}).get("kubernetes", {})
        self.launcher = spec.get("launcher", VERTEX)
        self._v2_1 = self.pipeline.get("schemaVersion", "").startswith("2.1")
        self.cluster = cluster
        self.run_id = uuid.uuid4().hex[:12]
        if self.launcher == OPEN_SOURCE:
            if cluster is None:
                raise ValueError("the open-source launcher runs on an emulated cluster.")
            self.namespace = namespace or (None if cluster.multi_user else KUBEFLOW)
            if self.namespace is None:
                raise ValueError("a multi-user install runs pipelines in a profile namespace.")
            self.kfp = cluster.kfp
            self.root = cluster.pipeline_root(root, self.namespace)
            if not self.root.startswith(BUCKET_SCHEMES):  # objectstore/config.go (2.17.0 :137)
                raise ValueError(
                    f'parse bucket config failed: unsupported Cloud bucket: "{self.root}"'
                )
            # The root driver, in the run's namespace: the session recorded in the run context.
            driver_env = cluster.service_links(self.namespace)
            self.session = cluster.store_session(self.root, self.namespace, driver_env)
            # metadata/client.go GetPipeline (2.17.0 :410-420): the run context's root is the
            # run's own, <root>/<pipeline>/<run>; the launcher's bucket is that prefix
            # (launcher_v2.go Execute, 2.17.0 :252-257), so only URIs of this run are its own.
            pipeline_name = self.pipeline["pipelineInfo"]["name"]
            self.run_root = f"{self.root}/{pipeline_name}/{self.run_id}"
            self.session_info = session_json(self.session)
            self.pods = os.path.join(cluster.workdir, "pods")
            self.image = image.read()
        else:
            self.root = os.path.abspath(self.pipeline.get("defaultPipelineRoot") or root)
            self.kfp = ()
        self.metadata = metadata
        if metadata:
            _writable_by_anyone(os.path.dirname(metadata))  # the service's, not a pod user's
        self.volumes = (
            tuple(volumes) + ((os.path.dirname(metadata),) if metadata else ()) + image_paths()
        )
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
            self._run_on_cluster(name, task, component, container)
            return
        executor_input = self._executor_input(name, task, component, os.path.join(self.root, name))
        for artifacts in executor_input["outputs"]["artifacts"].values():
            for artifact in artifacts["artifacts"]:
                os.makedirs(artifact["uri"], exist_ok=True)
        pre_cache = container.get("lifecycle", {}).get("preCacheCheck")
        if pre_cache:  # ExampleGen's driver: computes span and fingerprint (Vertex only)
            self._call(name + ":driver", pre_cache["command"], pre_cache["args"], executor_input)
        self._call(name, container["command"], container.get("args", []), executor_input)
        self.outputs[name] = self._merge_output(executor_input)

    def _run_on_cluster(self, name: str, task: dict, component: dict, container: dict) -> None:
        """A container task as the driver and launcher run it: its pod (env, secrets, user),
        the root's bucket opened and every input downloaded, the command, then its outputs
        uploaded and recorded; a failure on the way published FAILED."""
        pipeline_name = self.pipeline["pipelineInfo"]["name"]
        task_root = "/".join((self.root, pipeline_name, self.run_id, name))
        if self.kfp >= (2, 4, 0):
            # driver/driver.go provisionOutputs (2.4.1 :1588): a fresh uuid per execution.
            task_root += "/" + uuid.uuid4().hex
        self.pod = os.path.join(self.pods, f"{name}-{uuid.uuid4().hex[:8]}")
        executor_input = self._executor_input(name, task, component, task_root)
        env = self._pod_env(name, component, container)  # a missing secret: the pod never starts
        security = self._security()
        image_user = pod.Security(self.image.user, self.image.group)
        pod.prepare(
            self.pod, self.cluster.hosts(), self.namespace, self.image.home, owner=image_user
        )
        try:
            # launcher_v2.go Execute (2.15.0 :210-224): the root's bucket, opened with the run's
            # store session, then downloadArtifacts; an error fails the task before its command.
            self._root_bucket = self.cluster.open_bucket(
                self.root, self.session, self.namespace, env
            )
            self._download_inputs(executor_input, env)
        except TaskFailed:
            self._publish_failed(name, executor_input, logs=False)
            raise
        for mirror in pod.MIRRORS:
            pod.give(os.path.join(self.pod, mirror), security)
        try:
            self._call(name, container["command"], container.get("args", []), executor_input, env)
            self.outputs[name] = self._merge_output(executor_input)
            self._upload_outputs(self.outputs[name])
        except TaskFailed:
            self._publish_failed(name, executor_input)
            raise
        self._as_recorded(name, self.outputs[name])
        self._record(name)

    def _publish_failed(self, name: str, executor_input: dict, logs: bool = True) -> None:
        """launcher_v2.go Execute: the execution is published FAILED (a deferred publish: 2.2.0
        :142, to 2.17.0), whatever failed, before the command too; from 2.16.0 (:415-428;
        2.17.0 :786-790) with its executor-logs uploaded and recorded, and no other output."""
        self.outputs[name] = {}
        if logs and self.kfp >= (2, 16, 0):
            written = self._merge_output(executor_input, only=(EXECUTOR_LOGS,))
            try:
                self._upload_outputs(written)
                self.outputs[name] = written
                self._as_recorded(name, written)
            except TaskFailed:
                pass  # the logs could not be kept either
        self._record(name, "FAILED")

    def _pod_env(self, name: str, component: dict, container: dict) -> dict[str, str]:
        """The user container's environment: the image's ENV (kubeflow/Dockerfile), Kubernetes'
        service links of the namespace, the spec's env, the secrets' (secretAsEnv, appended
        after it: driver/k8s.go@2.17.0:380-382), and the test's extras."""
        env = {"PATH": os.path.dirname(self.python) + os.pathsep + SYSTEM_PATH}
        env.update(self.image.env)
        env.update(self.cluster.service_links(self.namespace))
        env.update({e["name"]: e["value"] for e in container.get("env", [])})
        env.update(self._secret_env(name, component["executorLabel"]))
        env.update(self.env_overrides)
        return env

    def _security(self) -> pod.Security:
        """The image's USER, or the administrator's runAsUser/runAsGroup from 2.16
        (security_context.go@2.17.0 applySecurityContextToExecutorTemplate); from 2.16 with
        every capability dropped and no privilege escalation."""
        user, group = self.image.user, self.image.group
        if self.kfp >= (2, 16, 0):
            if self.cluster.run_as_user is not None:
                user = self.cluster.run_as_user
            if self.cluster.run_as_group is not None:
                group = self.cluster.run_as_group
        return pod.Security(user, group, drop_capabilities=self.kfp >= (2, 16, 0))

    def _record(self, task: str, state: str = "COMPLETE") -> None:
        """The task's outputs into the ML Metadata store, when the run has one."""
        self.states[task] = state
        if self.metadata:
            pipeline_name = self.pipeline["pipelineInfo"]["name"]
            record_outputs(
                self.metadata,
                pipeline_name,
                self.run_id,
                task,
                self.outputs[task],
                namespace=self.namespace,
                state=state,
                pipeline_root=self.run_root,
                store_session_info=self.session_info,
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
        secrets = self.cluster.secrets(self.namespace)
        return launcher.secret_env(self.platform, name, executor_label, secrets, self.kfp)

    def _bucket_of(self, key: str, uri: str, env: Mapping[str, str]) -> Bucket:
        """launcher_v2.go fetchNonDefaultBuckets (2.15.0 :774-812, 2.17.0 :1006-1049): the
        root's bucket for an input under the root, the root's session for another path of the
        same scheme and bucket, and no session for any other bucket (cluster.open_bucket)."""
        if uri.startswith(launcher.prefixed_bucket(self.run_root)):
            return self._root_bucket
        scheme, bucket = uri.split("://")[0], uri.split("://", 1)[1].split("/")[0]
        same = (scheme, bucket) == (self.root.split("://")[0], split_uri(self.root)[0])
        try:
            return self.cluster.open_bucket(
                uri, self.session if same else None, self.namespace, env
            )
        except TaskFailed as e:
            raise TaskFailed(
                f'failed to open bucket for output artifact "{key}" with uri "{uri}": {e}'
            ) from None

    def _download_inputs(self, executor_input: dict, env: Mapping[str, str]) -> None:
        """launcher_v2.go downloadArtifacts (2.2.0 :392, 2.15.0 :695, 2.17.0 :691): every
        input's bucket opened first (_bucket_of), then each input copied whole into the pod's
        mirror (DownloadBlob); then prepareOutputFolders: the parent of every output's
        mirror."""
        inputs = [
            (key, artifact["uri"])
            for key, value in executor_input["inputs"]["artifacts"].items()
            for artifact in value["artifacts"]
            if local_path(artifact["uri"]) is not None  # else skipped with a warning
        ]
        buckets = {uri: self._bucket_of(key, uri, env) for key, uri in inputs}
        for key, uri in inputs:
            try:
                self._download(buckets[uri], split_uri(uri)[1], self._local(uri))
            except TaskFailed as e:
                raise TaskFailed(
                    f'failed to download input artifact "{key}" from remote storage URI '
                    f'"{uri}": {e}'
                ) from None
        for value in executor_input["outputs"]["artifacts"].values():
            for artifact in value["artifacts"]:
                os.makedirs(os.path.dirname(self._local(artifact["uri"])), exist_ok=True)

    def _download(self, bucket: Bucket, blob_dir: str, local_dir: str) -> None:
        """objectstore DownloadBlob (object_store.go 2.15.0 :127-154, 2.17.0 :171-205): every
        key listed with `blob_dir` as a plain string prefix, written at its path relative to
        it (filepath.Rel): before 2.17 "data/train" also brings "data/train2/..." beside it,
        and a `dir/` marker object becomes a file (kubeflow/pipelines#13476); from 2.17 only
        keys under the path (isBlobKeyUnderPrefix), and none that would land outside."""
        for key in bucket.keys(blob_dir):
            under = key == blob_dir.rstrip("/") or key.startswith(blob_dir.rstrip("/") + "/")
            if self.kfp >= (2, 17, 0) and not under:
                continue
            relative = os.path.relpath(key, blob_dir) if key.rstrip("/") != blob_dir else "."
            path = os.path.normpath(os.path.join(local_dir, relative))
            if self.kfp >= (2, 17, 0) and not (path + "/").startswith(local_dir.rstrip("/") + "/"):
                raise TaskFailed(f"path traversal detected: blob key {key!r} resolves to {path!r}")
            bucket.download(key, path)

    def _upload_outputs(self, outputs: dict[str, list[dict]]) -> None:
        """launcher_v2.go uploadOutputArtifacts (2.2.0 :419, 2.15.0 :616-649, 2.17.0 :778):
        each output's mirror to the root's bucket under its key (launcher.upload_key), files
        only (UploadBlob walks files: no folder markers, nothing for an empty folder); a
        missing mirror is only a warning there."""
        for name, artifacts in outputs.items():
            for artifact in artifacts:
                uri = artifact["uri"]
                local = self._local(uri)
                if launcher.upload_key(name, uri, self.run_root, local) is None:
                    continue  # "does not have a recognized storage URI": skipped
                if not os.path.exists(local):
                    continue  # "Local filepath does not exist": components may write nothing
                key = split_uri(uri)[1]
                files = [(local, key)]
                if os.path.isdir(local):
                    files = [
                        (
                            os.path.join(folder, n),
                            key
                            + "/"
                            + os.path.relpath(os.path.join(folder, n), local).replace(os.sep, "/"),
                        )
                        for folder, _, names in os.walk(local)
                        for n in sorted(names)
                    ]
                try:
                    for path, object_key in files:
                        self._root_bucket.upload(path, object_key)
                except TaskFailed as e:
                    raise TaskFailed(
                        f'failed to upload output artifact "{name}" to remote storage URI '
                        f'"{uri}": {e}'
                    ) from None

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
                if self.kfp >= (2, 3, 0):  # client.go 2.3.0 :924-930: the run's root session
                    metadata.setdefault("store_session_info", self.session_info)
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
        if self.launcher == OPEN_SOURCE:
            argv = launcher.resolve_args([*command, *args], executor_input, self.kfp, local_path)
        else:
            argv = [a.replace(EXECUTOR_INPUT_PLACEHOLDER, serialized) for a in [*command, *args]]
        # Check that what we pass is a valid ExecutorInput, as the launcher's would be.
        json_format.Parse(serialized, pipeline_spec_pb2.ExecutorInput())
        self.log.append((label, argv))
        if self.launcher == OPEN_SOURCE:
            done = pod.run_in_pod(
                self.pod,
                argv,
                env or self.env,
                WORKDIR,
                self.volumes,
                self.timeout_s,
                security=self._security(),
                home=self.image.home,
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
            path = pod.host_path(self.pod, path)
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
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def session_json(session: dict) -> str:
    """A SessionInfo as Go's json.Marshal writes it (root_dag.go: recorded in the run's
    context and, from 2.3, on every output artifact): Provider, then Params by key."""
    params = dict(sorted(session.get("Params", {}).items()))
    return json.dumps({"Provider": session["Provider"], "Params": params}, separators=(",", ":"))


def split_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of scheme://bucket/key."""
    bucket, _, key = uri.split("://", 1)[1].partition("/")
    return bucket, key


def _writable_by_anyone(folder: str) -> None:
    """A volume every pod's user writes (the metadata store stands for a cluster service)."""
    os.makedirs(folder, exist_ok=True)
    os.chmod(folder, 0o777)
    for name in os.listdir(folder):
        os.chmod(os.path.join(folder, name), 0o666)


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
