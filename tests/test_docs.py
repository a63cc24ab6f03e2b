"""The docs say what the code does: the site builds strictly, the command line reference is what
the parser says, the file reference lists every field of the typed records, the guides' Python
runs, and the README stays a user's page that links only to what exists."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

from imgtfx.components.examples.conversion_report import ConversionReport
from imgtfx.pipeline.run_summary import RunSummary

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README_MAX_LINES = 250


def _cli_reference():
    spec = importlib.util.spec_from_file_location("cli_reference", DOCS / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_site_builds_strictly(tmp_path):
    """mkdocs-material with --strict: a link to a missing page, a page left out of the
    navigation or an API name mkdocstrings cannot find fails the build."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    assert "ImageExampleGen" in api and "label_level" in api  # the docstrings, rendered


def test_the_command_line_reference_is_what_the_parser_says():
    page = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    assert page == _cli_reference().markdown(), "docs/reference/cli.md is stale: run make docs"
    for command in ("convert", "run", "compile", "submit", "predict", "report", "sample"):
        assert f"## imgtfx {command}\n" in page


def test_the_reference_generator_sees_a_new_option():
    """The check can fail: an option added to the parser shows up in the generated page."""
    from imgtfx import arguments

    reference, build = _cli_reference(), arguments.build_parser

    def with_new_option():
        parser = build()
        commands = next(a for a in parser._actions if a.dest == "command")
        commands.choices["report"].add_argument("--new-flag", help="a new option")
        return parser

    arguments.build_parser = with_new_option
    try:
        assert "| `--new-flag NEW_FLAG` | a new option |" in reference.markdown()
    finally:
        arguments.build_parser = build


def _documented_fields(heading: str) -> set[str]:
    """The backticked names in the first column of the table under `heading` of files.md."""
    text = (DOCS / "reference" / "files.md").read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    return names


def test_the_file_reference_lists_every_field_of_report_json_and_summary_json():
    for heading, record in (("report.json", ConversionReport), ("summary.json", RunSummary)):
        fields = {f.name for f in dataclasses.fields(record)}
        assert fields - _documented_fields(heading) == set(), heading
        assert _documented_fields(heading) - fields == set(), heading


def test_the_guides_read_back_snippet_runs_on_a_conversion(tmp_path, tree):
    """The your-data guide's tf.data snippet, as written, on a folder `imgtfx convert` wrote."""
    from tests.helpers.conversions import run_do

    run_do(tree, tmp_path / "converted")
    guide = (DOCS / "guides" / "your-data.md").read_text(encoding="utf-8")
    (snippet,) = [b for b in re.findall(r"```python\n(.*?)```", guide, re.DOTALL) if "ds =" in b]
    scope: dict = {}
    images, labels = [], []
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the snippet names the folder as a user would, relative
    try:
        exec(snippet, scope)  # the page's own code
        for image, label in scope["ds"]:
            images.append(image.shape)
            labels.append(int(label))
    finally:
        os.chdir(cwd)
    train = sum(1 for _ in open(tmp_path / "converted" / "labels.txt", encoding="utf-8"))
    assert images and all(shape == (64, 64, 3) for shape in images)
    assert set(labels) <= set(range(train))


def test_the_readme_is_a_page_a_person_reads_and_links_what_exists():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", readme), "dated notes go in CHANGELOG.md"
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if "://" not in target:
            assert (REPO / target).exists(), target


def test_the_readmes_own_pipeline_snippet_builds_its_components():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    (snippet,) = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    scope: dict = {}
    exec(snippet, scope)  # the page's own code
    assert scope["example_gen"].outputs["examples"].type_name == "Examples"
    assert scope["statistics_gen"].inputs["examples"].producer_component_id == "ImageExampleGen"
