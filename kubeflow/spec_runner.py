"""Executes a compiled PipelineJob spec on this machine, the way the KFP v2 launcher would.

No cluster, Docker engine or network is needed: each task's own container command
(`python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor ...`) runs in a
subprocess of this environment, in dependency order, with the ExecutorInput JSON the launcher
would substitute for `{{$}}`, and artifact URIs under a local root. What the spec says is what
runs: its commands, arguments, parameters and artifact wiring.

What is emulated rather than read from the spec: the launcher itself (building ExecutorInput,
merging each ExecutorOutput into the artifacts passed downstream) and resolver tasks, which on a
cluster query ML Metadata; here they return what this local run has produced (nothing blessed
before the first run, as on a new cluster).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

EXECUTOR_INPUT_PLACEHOLDER = "{{$}}"


class TaskFailed(RuntimeError):
    """A task's command exited non-zero; the message holds the tail of its output."""


def load_spec(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


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
    ):
        self.pipeline = spec["pipelineSpec"]
        self.root = os.path.abspath(root)
        runtime = spec.get("runtimeConfig", {})
        self.parameters = {
            **runtime.get("parameterValues", {}),  # pipeline spec 2.1: plain JSON values
            # pipeline spec 2.0: Value messages, {"stringValue": ...} or {"intValue": ...}
            **{k: next(iter(v.values())) for k, v in runtime.get("parameters", {}).items()},
            **dict(parameters or {}),
        }
        self.python = python
        self.env = {**os.environ, **dict(env or {})}
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
            self.outputs[name] = self._resolve(component)
            return
        container = executor["container"]
        task_root = os.path.join(self.root, name)
        executor_input = self._executor_input(name, task, component, task_root)
        for artifacts in executor_input["outputs"]["artifacts"].values():
            for artifact in artifacts["artifacts"]:  # the launcher prepares output folders
                os.makedirs(artifact["uri"], exist_ok=True)
        pre_cache = container.get("lifecycle", {}).get("preCacheCheck")
        if pre_cache:  # ExampleGen's driver: computes span and fingerprint
            self._call(name + ":driver", pre_cache["command"], pre_cache["args"], executor_input)
        self._call(name, container["command"], container.get("args", []), executor_input)
        self.outputs[name] = self._merge_output(executor_input)

    def _executor_input(self, name: str, task: dict, component: dict, task_root: str) -> dict:
        inputs = task.get("inputs", {})
        parameters = {}
        for key, spec in inputs.get("parameters", {}).items():
            if "componentInputParameter" in spec:
                value = self.parameters[spec["componentInputParameter"]]
            else:
                value = _constant(spec)
            parameters[key] = _value(value)
        artifacts = {}
        for key, spec in inputs.get("artifacts", {}).items():
            source = spec["taskOutputArtifact"]
            produced = self.outputs[source["producerTask"]].get(source["outputArtifactKey"], [])
            artifacts[key] = {"artifacts": produced}
        outputs = {}
        for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items():
            outputs[key] = {
                "artifacts": [
                    {
                        "name": f"{name}-{key}",
                        "type": definition["artifactType"],
                        "uri": os.path.join(task_root, key),
                        "metadata": {},
                    }
                ]
            }
        return {
            "inputs": {"parameters": parameters, "artifacts": artifacts},
            "outputs": {
                "artifacts": outputs,
                "outputFile": os.path.join(task_root, "executor_output.json"),
            },
        }

    def _call(self, label: str, command: list[str], args: list[str], executor_input: dict) -> None:
        serialized = json.dumps(executor_input)
        argv = [a.replace(EXECUTOR_INPUT_PLACEHOLDER, serialized) for a in [*command, *args]]
        # Check that what we pass is a valid ExecutorInput, as the launcher's would be.
        json_format.Parse(serialized, pipeline_spec_pb2.ExecutorInput())
        self.log.append((label, argv))
        done = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=self.timeout_s
        )
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
            reported = json.load(f).get("artifacts", {})
        for key, value in reported.items():
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
