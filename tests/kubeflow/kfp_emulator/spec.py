"""A compiled package read as the backend reads it, and the task order of its DAG."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format

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


def constant(value_spec: dict) -> Any:
    """The Python value of a `runtimeValue` in pipeline spec 2.0 or 2.1 form."""
    runtime = value_spec["runtimeValue"]
    if "constantValue" in runtime:  # 2.0: {"stringValue": ...} / {"intValue": ...}
        return next(iter(runtime["constantValue"].values()))
    return runtime["constant"]  # 2.1: a plain JSON value


def value_message(value: Any) -> dict:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return {"stringValue": str(value)}
    return {"intValue": str(value)} if isinstance(value, int) else {"doubleValue": value}
