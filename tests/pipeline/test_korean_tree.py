"""A Korean landmark tree with every awkward image and label, through `imgtfx run` (slow).

Folder labels in Korean (one spelled NFD, as macOS writes it), 16-bit PNGs, CMYK and grayscale
JPEGs, a phone photo stored sideways, a broken file, and label texts that broke the report
before: a formula sign, HTML, an emoji, 200 characters. The run must finish, say only the
user's lines on the terminal, and render a report with every name and no missing glyph.
"""

from __future__ import annotations

import html
import io
import os
import re
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
from PIL import Image

from imgtfx.pipeline.run_summary import read_summary
from tests.conftest import photo, with_orientation, write

pytestmark = pytest.mark.slow

LABELS = [
    "경복궁",
    unicodedata.normalize("NFD", "남산서울타워"),
    "불국사 石窟庵",
    "cost $\\frac$",
    "<img src=x onerror=alert(1)>",
    "해운대 🏖",
    "a" * 200,
    "창덕궁",
    "광안대교",
    "첨성대",
]
PER_CLASS = 8


def _encoded(kind: str, seed: int) -> tuple[str, bytes]:
    picture = photo((40, 28), seed=seed)
    buffer = io.BytesIO()
    if kind == "png16":
        gray = np.asarray(picture.convert("L")).astype(np.uint16) * 257
        Image.fromarray(gray).save(buffer, "PNG")
        return "png", buffer.getvalue()
    if kind == "cmyk":
        picture.convert("CMYK").save(buffer, "JPEG", quality=90)
    elif kind == "gray":
        picture.convert("L").save(buffer, "JPEG", quality=90)
    else:
        picture.save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    return "jpg", with_orientation(data, 6) if kind == "sideways" else data


def write_korean_tree(images: str) -> None:
    kinds = ["rgb", "png16", "cmyk", "gray", "sideways", "rgb", "rgb", "rgb"]
    for c, label in enumerate(LABELS):
        for i, kind in enumerate(kinds[:PER_CLASS]):
            extension, data = _encoded(kind, seed=100 * c + i)
            write(os.path.join(images, "서울", label, f"{kind}_{i}.{extension}"), data)
    write(os.path.join(images, "서울", LABELS[0], "broken.jpg"), b"\xff\xd8\xff\xe0 cut short")


def test_korean_tree_with_every_awkward_image_and_label_runs_to_a_report(tmp_path):
    images = str(tmp_path / "images")
    write_korean_tree(images)
    root = str(tmp_path / "run")
    done = subprocess.run(
        [
            sys.executable, "-m", "imgtfx.cli", "run", "--images", images, "--root", root,
            "--train-steps", "30", "--image-size", "16", "--min-accuracy", "0",
            "--beam-arg=--direct_running_mode=in_memory", "--beam-arg=--direct_num_workers=1",
        ],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    errors = done.stderr.strip().splitlines()
    log = errors[0].split()[1]
    for line in errors[1:]:  # the terminal: step lines and warnings, nothing of the libraries
        assert re.match(r"(\[\d\d:\d\d:\d\d\] [A-Za-z]+: |warning: )", line), errors
    logged = open(log, encoding="utf-8").read()
    assert "missing from font" not in logged and "Traceback" not in logged

    summary = read_summary(root)
    assert summary.num_classes == len(LABELS) and summary.rejected == 1
    assert sum(summary.examples.values()) == len(LABELS) * PER_CLASS
    page = open(os.path.join(root, "report", "index.html"), encoding="utf-8").read()
    for label in LABELS:  # every name, as text, escaped (the NFD one in NFC)
        assert html.escape(unicodedata.normalize("NFC", label)) in page, label
    assert "<img src=x" not in page
    assert os.path.getsize(os.path.join(root, "report", "index.html")) < 5_000_000
