"""imgtfx: a TFX image-classification pipeline for labelled image folder trees.

One import package: `imgtfx.components` (ImageExampleGen, the evaluators, the Examples
contract), `imgtfx.pipeline` (the TFX pipeline and its local runner), `imgtfx.trainer` (the
model and its run_fn), `imgtfx.kubeflow` (compile, submit, the pods' entrypoint) and the command
line (`imgtfx.cli`). The wheel holds the four parts under imgtfx/ (hatch_build.py); a checkout
keeps them as top-level folders beside this package, which the finder below serves under the
same names, so that code, tests and the container image import them one way.
"""

from __future__ import annotations

import importlib.util
import os
import sys

PARTS = ("components", "pipeline", "trainer", "kubeflow")
_HERE = os.path.dirname(os.path.abspath(__file__))
_CHECKOUT = os.path.dirname(_HERE)


class _CheckoutParts:
    """Finds imgtfx.<part> in a checkout's top-level <part>/ folder."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        package, _, part = fullname.partition(".")
        if package != __name__ or part not in PARTS:
            return None
        folder = os.path.join(_CHECKOUT, part)
        return importlib.util.spec_from_file_location(
            fullname, os.path.join(folder, "__init__.py"), submodule_search_locations=[folder]
        )


if not os.path.isdir(os.path.join(_HERE, PARTS[0])) and os.path.isfile(
    os.path.join(_CHECKOUT, "pyproject.toml")
):
    sys.meta_path.append(_CheckoutParts)
