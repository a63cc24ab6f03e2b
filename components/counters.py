"""Counters that a running step publishes for whoever watches the run in the same process.

ImageExampleGen counts the images it has written and the trainer the steps it has taken; the
local runner's step lines (pipeline/steps.py) read them every few seconds. Only the process that
runs the step sees them: on Kubeflow or Dataflow the steps' own log lines are the progress.
"""

from __future__ import annotations

import threading
import time

_LOCK = threading.Lock()
_COUNTS: dict[str, dict] = {}
_WATCHED = threading.Event()


def count(name: str, n: int = 1) -> None:
    """Adds `n` to counter `name` (created at 0 on first use)."""
    with _LOCK:
        entry = _COUNTS.setdefault(name, {"value": 0, "total": None, "since": time.monotonic()})
        entry["value"] += n


def update(name: str, value: int, total: int | None = None) -> None:
    """Sets counter `name` to `value` (out of `total`, when known)."""
    with _LOCK:
        entry = _COUNTS.setdefault(name, {"value": 0, "total": None, "since": time.monotonic()})
        entry["value"] = value
        entry["total"] = total


def snapshot() -> dict[str, dict]:
    """{name: {'value', 'total', 'since' (monotonic seconds of its first update)}}."""
    with _LOCK:
        return {name: dict(entry) for name, entry in _COUNTS.items()}


def clear() -> None:
    with _LOCK:
        _COUNTS.clear()


def watch(on: bool) -> None:
    """Marks whether a watcher prints progress lines (steps then draw no bars of their own)."""
    if on:
        _WATCHED.set()
    else:
        _WATCHED.clear()


def watched() -> bool:
    return _WATCHED.is_set()
