"""An Evaluator that finds its baseline in the cluster's ML Metadata service (open-source KFP).

Loaded on first use (PEP 562), so that environment.py can be read without TFX.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["BaselineEvaluator"]

if TYPE_CHECKING:
    from imgtfx.components.baseline_evaluator.component import BaselineEvaluator  # noqa: F401


def __getattr__(name: str):
    if name != "BaselineEvaluator":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from imgtfx.components.baseline_evaluator.component import BaselineEvaluator

    return BaselineEvaluator
