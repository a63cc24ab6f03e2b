"""The version of the code a step runs, as an execution property, so TFX's cache key sees it.

TFX keys a step's cache on its execution properties, its input artifacts and its executor's
class name, and reads the contents of a `module_file` only
(tfx/orchestration/portable/cache_utils.py, get_cache_context). Code reached by import path,
as `run_fn='imgtfx.trainer.training.run_fn'` and this project's executors are, is not in the
key: after an upgrade or an edit the next run would reuse the examples and models the old code
made. Each of our steps therefore carries `code_version`: "imgtfx <version> sha256:<hash of
the source files the step runs>", computed once when the pipeline is built. The executors never
read it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

CODE_VERSION = "code_version"
# The folder holding the project's packages (components/, trainer/, pipeline/), in a checkout
# and in an installed wheel alike.
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def package_version() -> str:
    """imgtfx's installed version ('unknown' when it runs from a tree that is not installed)."""
    from importlib import metadata

    try:
        return metadata.version("imgtfx")
    except metadata.PackageNotFoundError:
        return "unknown"


def source_files(paths: Iterable[str], root: str | Path | None = None) -> list[str]:
    """The Python files under `paths` (folders or files relative to `root`), as sorted
    relative POSIX paths: the same list wherever the tree lies.

    Raises:
      FileNotFoundError: a path names nothing, so a renamed folder cannot drop out silently.
    """
    root = Path(root or SOURCE_ROOT)
    found = set()
    for path in paths:
        full = root / path
        if full.is_dir():
            found.update(f.relative_to(root).as_posix() for f in full.rglob("*.py"))
        elif full.is_file():
            found.add(full.relative_to(root).as_posix())
        else:
            raise FileNotFoundError(f"{full}: no source file or folder of this name to version.")
    return sorted(found)


def source_digest(paths: Iterable[str], root: str | Path | None = None) -> str:
    """SHA-256 over each source file's relative path and bytes, in path order."""
    root = Path(root or SOURCE_ROOT)
    digest = hashlib.sha256()
    for relative in source_files(paths, root):
        data = (root / relative).read_bytes()
        # Lengths frame each part: moving bytes from one file to the next changes the hash.
        for part in (relative.encode(), data):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


def code_version(paths: Iterable[str], root: str | Path | None = None) -> str:
    """ "imgtfx <version> sha256:<digest of the source files under `paths`>"."""
    return f"imgtfx {package_version()} sha256:{source_digest(paths, root)}"


def stamp(component, paths: Iterable[str], root: str | Path | None = None):
    """Adds `code_version` to `component`'s execution properties and returns the component.

    Set after construction, as TFX itself sets a packaged module's path (tfx/components/util/
    udf_utils.py): TFX's own specs (Trainer, Evaluator, FileBasedExampleGen) have no slot for
    it, and no executor reads it; the compilers carry every execution property into the local
    IR and the Kubeflow task alike, where the cache key (TFX's, and KFP's) includes it.
    """
    component.exec_properties[CODE_VERSION] = code_version(paths, root)
    return component
