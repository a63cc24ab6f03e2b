"""The cache sees code changes: each step's `code_version` joins TFX's own cache key.

The keys are computed by TFX's cache_utils.get_cache_context on the compiled pipeline, as the
launcher computes them before reusing a cached execution; the code is a temporary copy of this
tree, edited as a user would edit it.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest
from tfx.dsl.compiler import compiler
from tfx.orchestration import metadata
from tfx.orchestration.portable import cache_utils, inputs_utils

from imgtfx.components import code_version
from imgtfx.pipeline.pipeline import STEP_CODE, create_pipeline
from imgtfx.pipeline.run_config import RunConfig

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("components", "trainer", "pipeline")
# The modules each step's executor starts from (the step's code is what they import).
ENTRY_MODULES = {
    "ImageExampleGen": (
        "components/image_example_gen/executor.py",
        "components/image_example_gen/driver.py",
    ),
    "LabelSchema": ("components/label_schema/component.py",),
    "Trainer": ("trainer/training.py",),
    "Evaluator": (
        "components/baseline_evaluator/executor.py",
        "components/image_evaluator/executor.py",
        "components/image_evaluator/metrics.py",
    ),
}


@pytest.fixture
def source(tmp_path, monkeypatch) -> Path:
    """A copy of this tree's packages, which the pipeline hashes instead of the real ones."""
    root = tmp_path / "source"
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    monkeypatch.setattr(code_version, "SOURCE_ROOT", root)
    return root


def _cache_keys(tmp_path: Path) -> dict[str, str]:
    """{node id: TFX's cache key} of a freshly built pipeline, inputs and outputs left out
    (they are the same artifacts in both builds compared)."""
    built = create_pipeline(RunConfig("/images"), str(tmp_path / "root"), str(tmp_path / "serving"))
    ir = compiler.Compiler().compile(built)
    config = metadata.sqlite_metadata_connection_config(str(tmp_path / "metadata.sqlite"))
    keys = {}
    with metadata.Metadata(config) as m:
        for node in ir.nodes:
            node = node.pipeline_node
            parameters = inputs_utils.resolve_parameters(node.parameters)
            context = cache_utils.get_cache_context(
                m, node, ir.pipeline_info, parameters=parameters
            )
            keys[node.node_info.id] = context.name
    return keys


def test_editing_the_trainer_retrains_and_reuses_the_rest(tmp_path, source):
    before = _cache_keys(tmp_path)
    assert _cache_keys(tmp_path) == before  # unchanged code: the cached run is reused
    with open(source / "trainer" / "model.py", "a", encoding="utf-8") as f:
        f.write("# a comment\n")
    after = _cache_keys(tmp_path)
    changed = sorted(node for node in before if before[node] != after[node])
    assert changed == ["Trainer"]


def _edit(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n", encoding="utf-8")


def test_an_edit_of_the_examples_contract_reruns_every_step_that_reads_it(tmp_path, source):
    before = _cache_keys(tmp_path)
    _edit(source / "components" / "examples" / "vocabulary.py")
    after = _cache_keys(tmp_path)
    changed = sorted(node for node in before if before[node] != after[node])
    assert changed == ["Evaluator", "ImageExampleGen", "LabelSchema", "Trainer"]


@pytest.mark.parametrize(
    "converter_file",
    [
        "components/image_example_gen/tree.py",  # the walker
        "components/image_files.py",  # a reject rule
        "components/image_example_gen/outputs.py",
    ],
)
def test_an_edit_of_the_converter_alone_reruns_image_example_gen_only(
    tmp_path, source, converter_file
):
    """The Trainer's code version stays: it reruns only if the examples it reads change."""
    before = _cache_keys(tmp_path)
    trainer = code_version.code_version(STEP_CODE["Trainer"])
    _edit(source / converter_file)
    after = _cache_keys(tmp_path)
    assert sorted(node for node in before if before[node] != after[node]) == ["ImageExampleGen"]
    assert code_version.code_version(STEP_CODE["Trainer"]) == trainer


def test_code_version_names_the_release_and_does_not_depend_on_where_the_tree_lies(source):
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    release = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    for step, paths in STEP_CODE.items():
        copied = code_version.code_version(paths)
        assert copied == code_version.code_version(paths, REPO), step
        assert re.fullmatch(rf"imgtfx {re.escape(release)} sha256:[0-9a-f]{{64}}", copied)

    trainer = STEP_CODE["Trainer"]
    before = code_version.code_version(trainer)
    (source / "trainer" / "__pycache__").mkdir()
    (source / "trainer" / "__pycache__" / "model.cpython-310.pyc").write_bytes(b"\0")
    (source / "README.md").write_text("not code")
    assert code_version.code_version(trainer) == before
    (source / "trainer" / "helpers.py").write_text("")  # a new module counts, even empty
    assert code_version.code_version(trainer) != before
    with pytest.raises(FileNotFoundError, match="renamed"):
        code_version.code_version(["trainer/renamed"])


def _project_imports(relative: str) -> set[str]:
    """The project files `relative` imports, with their parent packages' __init__ files."""
    tree = ast.parse((REPO / relative).read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):  # imports inside functions too
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    files = set()
    for name in names:
        parts = name.split(".")
        if parts[0] not in PACKAGES:
            continue
        for end in range(1, len(parts) + 1):
            stem = "/".join(parts[:end])
            for candidate in (f"{stem}.py", f"{stem}/__init__.py"):
                if (REPO / candidate).is_file():
                    files.add(candidate)
    return files


def test_each_step_hashes_every_project_module_it_imports():
    for step, entries in ENTRY_MODULES.items():
        hashed = set(code_version.source_files(STEP_CODE[step], REPO))
        seen, todo = set(), list(entries)
        while todo:
            relative = todo.pop()
            if relative not in seen:
                seen.add(relative)
                todo.extend(_project_imports(relative))
        # Empty package __init__ files run nothing.
        missing = {f for f in seen - hashed if (REPO / f).stat().st_size}
        assert not missing, f"{step} runs {sorted(missing)}: add them to STEP_CODE"
