"""The layout as docs/architecture.md describes it: who may import whom, what ships to users
(the wheel, built by the project's own build backend, and the container image's build context),
and modules of a readable size."""

from __future__ import annotations

import ast
import fnmatch
import os
import re
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONVERTER = "imgtfx.components.image_example_gen"
PARTS = ("components", "pipeline", "trainer", "kubeflow")  # imgtfx.<part>, top-level folders
# Stages after the converter read the Examples artifact through components/examples only.
READERS = (
    "trainer",
    "imgtfx/predict.py",
    "imgtfx/report",
    "components/image_evaluator",
    "components/baseline_evaluator",
    "components/label_schema",
    "components/examples",
    "pipeline/results.py",
)
# Test and bench tools that stay out of everything users install.
DEV_ONLY = ("tests/", "bench/", "docs/")
MAX_LINES = 400
WHY_LONG = "Over 400 lines"


def _python_files(paths) -> list[Path]:
    files = []
    for path in paths:
        full = REPO / path
        files.extend(sorted(full.rglob("*.py")) if full.is_dir() else [full])
    return files


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, at its top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_reader_of_the_examples_imports_the_converter():
    found = {
        str(path.relative_to(REPO)): sorted(
            name
            for name in imports_of(path)
            if name == CONVERTER or name.startswith(CONVERTER + ".")
        )
        for path in _python_files(READERS)
    }
    assert {path: names for path, names in found.items() if names} == {}


def test_the_boundary_check_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from imgtfx.components.image_example_gen.tree import walk\n")
    assert "imgtfx.components.image_example_gen.tree" in imports_of(module)


def test_the_contract_imports_no_stage():
    for path in _python_files(["components/examples"]):
        stages = [
            n
            for n in imports_of(path)
            if n.startswith("imgtfx.")
            and not n.startswith(("imgtfx.components.examples", "imgtfx.components.counters"))
        ]
        assert not stages, (path, stages)


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory) -> list[str]:
    """The files of the wheel `pip install .` builds (kubeflow/Dockerfile), from the project's
    own build backend (pyproject.toml [build-system])."""
    with zipfile.ZipFile(_build_wheel(tmp_path_factory.mktemp("wheel"))) as wheel:
        return wheel.namelist()


def _build_wheel(out: Path) -> Path:
    """The wheel the project's own build backend builds from the checkout, written to `out`."""
    from hatchling.build import build_wheel

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return out / build_wheel(str(out))
    finally:
        os.chdir(cwd)


def test_the_wheel_installs_one_import_name_imgtfx(wheel_files):
    """`kubeflow` is the Kubeflow SDK's package, `pipeline` and `trainer` what `tfx template
    copy` writes into a user's repo: the wheel adds only `imgtfx` to site-packages, with the
    repository's top-level parts under it (hatch_build.py)."""
    tops = {f.split("/")[0] for f in wheel_files if not f.split("/")[0].endswith(".dist-info")}
    assert tops == {"imgtfx"}
    for shipped in (
        "imgtfx/cli.py",
        "imgtfx/components/examples/layout.py",
        "imgtfx/components/image_example_gen/executor.py",
        "imgtfx/kubeflow/entrypoint.py",
        "imgtfx/pipeline/pipeline.py",
        "imgtfx/trainer/model.py",
    ):
        assert shipped in wheel_files
    assert not [f for f in wheel_files if "__pycache__" in f or f.endswith(".pyc")]
    test_tools = [
        f
        for f in wheel_files
        if re.search(
            r"(spec_runner|kfp_emulator|contest_data|gcs_server|seaweedfs|s3_faults|conftest)", f
        )
        or f.startswith(tuple(f"imgtfx/{d}" for d in DEV_ONLY))
    ]
    assert test_tools == []


def test_nothing_imports_the_parts_by_their_old_top_level_names():
    """In a checkout the top-level folders are importable as they are (the editable install
    puts the repository on sys.path); code that did would break in the wheel, and a module
    imported under two names is two modules."""
    found = {
        str(path.relative_to(REPO)): sorted(n for n in imports_of(path) if n.split(".")[0] in PARTS)
        for path in _python_files([*PARTS, "imgtfx", "tests", "bench", "hatch_build.py"])
    }
    assert {path: names for path, names in found.items() if names} == {}


def test_a_checkout_and_the_wheel_import_the_parts_alike(tmp_path):
    """The wheel, installed into a folder of its own and imported there with the checkout off
    sys.path, serves imgtfx.components from inside itself; the checkout from its folders."""
    import subprocess
    import sys

    import imgtfx.components

    assert imgtfx.components.__file__ == str(REPO / "components" / "__init__.py")
    with zipfile.ZipFile(_build_wheel(tmp_path)) as wheel:
        wheel.extractall(tmp_path / "site")
    code = (
        "import imgtfx.components.examples.features as f, imgtfx.kubeflow.target as t; "
        "print(f.__file__); print(t.__file__)"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r}); {code}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert all(line.startswith(str(tmp_path / "site" / "imgtfx")) for line in done.stdout.split())


def _dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern that matches decides; '!' re-includes (a path is also
    excluded when a folder above it is)."""
    excluded = False
    parts = path.split("/")
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        for depth in range(1, len(parts) + 1):
            if fnmatch.fnmatchcase("/".join(parts[:depth]), pattern):
                excluded = not negated
                break
    return excluded


def test_the_image_build_context_holds_no_test_tool():
    """What `COPY . .` in kubeflow/Dockerfile copies: the tracked files .dockerignore leaves."""
    import subprocess

    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    copied = [f for f in tracked if not _dockerignore_excludes(f, patterns)]
    assert "kubeflow/entrypoint.py" in copied and "kubeflow/requirements.txt" in copied
    assert "pyproject.toml" in copied and "components/examples/layout.py" in copied
    assert [f for f in copied if f.startswith(DEV_ONLY)] == []
    assert _dockerignore_excludes("tests/kubeflow/kfp_emulator/runner.py", patterns)
    assert not _dockerignore_excludes("trainer/model.py", ["*", "!trainer"])  # the rule itself


def test_long_modules_say_why_they_are_long():
    product = ["components", "pipeline", "trainer", "kubeflow", "imgtfx", "bench", "tests"]
    long = []
    for path in _python_files(product):
        lines = path.read_text(encoding="utf-8").count("\n")
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if lines > MAX_LINES and WHY_LONG not in docstring:
            long.append((str(path.relative_to(REPO)), lines))
    assert long == []


def _module_name(path: Path) -> str | None:
    """The import name of a project module (imgtfx.<part>... for the top-level parts)."""
    relative = path.relative_to(REPO).with_suffix("")
    parts = list(relative.parts)
    if parts[0] in PARTS:
        parts.insert(0, "imgtfx")
    elif parts[0] != "imgtfx":
        return None
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_no_module_imports_itself_back_through_others():
    """An import cycle among the project's modules (at their top or inside functions) means
    one module's concern is split across two: none, in components, pipeline, trainer, kubeflow
    and imgtfx."""
    modules = {}
    for path in _python_files([*PARTS, "imgtfx"]):
        name = _module_name(path)
        if name:
            modules[name] = path
    graph = {}
    for name, path in modules.items():
        imported = {n for n in imports_of(path) if n in modules}
        # `from package import module` reaches the module, not the package's other modules;
        # a package naming its own modules (its public names) is no cycle of concerns.
        graph[name] = {
            n
            for n in imported
            if n != name
            and not any(m.startswith(n + ".") for m in imported)
            and not n.startswith(name + ".")
        }
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


# Who may import whom: each layer only what lies below it (docs/architecture.md).
LAYERS = {
    "components": ("imgtfx.components",),
    "trainer": ("imgtfx.components", "imgtfx.trainer"),
    "pipeline": ("imgtfx.components", "imgtfx.trainer", "imgtfx.pipeline"),
    "kubeflow": ("imgtfx.components", "imgtfx.trainer", "imgtfx.pipeline", "imgtfx.kubeflow"),
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_imports_only_what_lies_below_it(layer):
    """The components know nothing of the pipeline that wires them, the trainer nothing of the
    pipeline, the pipeline nothing of Kubeflow or the command line."""
    found = {
        str(path.relative_to(REPO)): sorted(
            n
            for n in imports_of(path)
            if n.startswith("imgtfx") and not n.startswith(LAYERS[layer])
        )
        for path in _python_files([layer])
    }
    assert {path: names for path, names in found.items() if names} == {}
