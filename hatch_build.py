"""The wheel's one import package, `imgtfx`: the repository keeps components/, pipeline/,
trainer/ and kubeflow/ at its top level (the layout the design fixes), and the wheel puts them
under imgtfx/, so that `pip install imgtfx` adds no generic top-level name (`kubeflow` is the
Kubeflow SDK's, `pipeline` and `trainer` are what `tfx template copy` writes into a user's
repo). A checkout reaches the same names through imgtfx/__init__.py. Editable installs (`make
setup`) are left as they are: hatchling refuses path rewrites there."""

from __future__ import annotations

import os

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PARTS = ("components", "pipeline", "trainer", "kubeflow")  # imgtfx/__init__.py PARTS


class PartsUnderImgtfx(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or version != "standard":
            return
        for part in PARTS:
            for folder, folders, names in os.walk(os.path.join(self.root, part)):
                folders[:] = sorted(f for f in folders if f != "__pycache__")
                for name in names:
                    if name.endswith((".pyc", ".pyo")):
                        continue
                    source = os.path.join(folder, name)
                    relative = os.path.relpath(source, self.root).replace(os.sep, "/")
                    build_data["force_include"][source] = f"imgtfx/{relative}"
