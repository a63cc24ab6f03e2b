"""ImageExampleGen: a labelled image folder tree (plus optional labels CSV) as TFX Examples.

What it writes, and how later stages read it, is the Examples contract (components/examples).
The names below load on first use (PEP 562), so that importing one light module of the package
(options.py, tree.py) does not import TFX and TensorFlow: the command line checks its arguments
in a fraction of a second that way.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "ImageExampleGen": "imgtfx.components.image_example_gen.component",
    "hash_split_config": "imgtfx.components.image_example_gen.component",
    "FeatureNames": "imgtfx.components.examples.features",
    "ImageOptions": "imgtfx.components.image_example_gen.options",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for type checkers and editors; at run time __getattr__ loads them
    from imgtfx.components.examples.features import FeatureNames  # noqa: F401
    from imgtfx.components.image_example_gen.component import ImageExampleGen, hash_split_config  # noqa: F401
    from imgtfx.components.image_example_gen.options import ImageOptions  # noqa: F401


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
