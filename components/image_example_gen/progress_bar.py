"""One progress bar per process on a terminal, shared by the shards it writes."""

from __future__ import annotations

import sys
import threading

_BAR = None

_BAR_LOCK = threading.Lock()


def bar():
    """One progress bar per process, shared by the shards it writes (terminals only)."""
    global _BAR
    with _BAR_LOCK:
        if _BAR is None:
            from tqdm import tqdm

            _BAR = tqdm(unit="img", desc="images", file=sys.stderr, mininterval=0.5)
        return _BAR


def close() -> None:
    global _BAR
    with _BAR_LOCK:
        if _BAR is not None:
            _BAR.close()
            _BAR = None
