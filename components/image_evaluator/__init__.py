"""ImageEvaluator: TFX's Evaluator, with per-class slices capped by the number of classes.

Loaded on first use (PEP 562), so that properties.py can be read without TFX.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["ImageEvaluator"]

if TYPE_CHECKING:
    from imgtfx.components.image_evaluator.component import ImageEvaluator  # noqa: F401


def __getattr__(name: str):
    if name != "ImageEvaluator":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from imgtfx.components.image_evaluator.component import ImageEvaluator

    return ImageEvaluator
