"""One awkward tree shaped like the landmark contest, through `imgtfx run` once (slow); each test
reads one side of that run.

1,049 landmarks under train/<city>/<landmark>/<id>.jpg, string ids `<landmark>_<NNN>` mapped to
int landmark ids by a labels CSV, three photos a landmark; ten landmarks with the folder names
that broke the report before (Korean spelled NFD as macOS writes it, a formula sign, HTML, an
emoji, 200 characters), two photos each so the report lists them among the smallest classes;
16-bit PNGs, CMYK and grayscale JPEGs, phone photos stored sideways (EXIF orientation 6 and 8,
either byte order), a broken file, links back into the tree.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
from PIL import Image, ImageOps

from imgtfx.components.examples import layout, reader, reasons
from imgtfx.components.examples.conversion_report import read_report
from imgtfx.components.examples.vocabulary import read_label_names, read_vocabulary
from imgtfx.pipeline.run_summary import read_summary
from tests.helpers.images import photo, with_orientation, write

pytestmark = pytest.mark.slow

CLASSES = 1049
PER_CLASS = 3
AWKWARD = [  # folder names of landmarks, the display names the report shows
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
PER_AWKWARD = 2
CITIES = ["서울", "부산", "대구", "인천", "광주", "대전", "울산"]
KINDS = {3: "png16", 5: "cmyk", 7: "gray"}  # by photo number mod 10; 0 is sideways


def _encoded(kind: str, seed: int) -> tuple[str, bytes]:
    picture = photo((24, 16), seed=seed)
    buffer = io.BytesIO()
    if kind == "png16":
        gray = np.asarray(picture.convert("L")).astype(np.uint16) * 257
        Image.fromarray(gray).save(buffer, "PNG")
        return "png", buffer.getvalue()
    if kind == "cmyk":
        picture = picture.convert("CMYK")
    elif kind == "gray":
        picture = picture.convert("L")
    picture.save(buffer, "JPEG", quality=90)
    return "jpg", buffer.getvalue()


def write_awkward_tree(root: str) -> dict:
    """The tree and its CSV; returns their paths and the sideways photos' upright pixels."""
    images = os.path.join(root, "images")
    train = os.path.join(images, "train")
    rows, upright, n = [], {}, 0
    for k in range(CLASSES):
        landmark_id = 3 + 7 * k  # int ids, not contiguous, as in the contest's CSV
        name = AWKWARD[k] if k < len(AWKWARD) else f"명소{landmark_id}"
        for i in range(PER_AWKWARD if k < len(AWKWARD) else PER_CLASS):
            image_id, n = f"{name}_{i:03d}", n + 1
            extension, data = _encoded(KINDS.get(n % 10, "rgb"), seed=n)
            if n % 10 == 0:  # one photo in ten came off a phone sideways
                data = with_orientation(data, 6 if k % 2 else 8, "II" if i % 2 else "MM")
                picture = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
                upright[unicodedata.normalize("NFC", image_id)] = np.asarray(picture)
            folder = os.path.join(train, CITIES[k % len(CITIES)], name)
            write(os.path.join(folder, f"{image_id}.{extension}"), data)
            rows.append(f"{unicodedata.normalize('NFC', image_id)},{landmark_id}")
    write(os.path.join(train, CITIES[0], AWKWARD[0], "broken.jpg"), b"\xff\xd8\xff\xe0 cut short")
    rows.append("broken,3")
    os.symlink(images, os.path.join(train, CITIES[0], "전체"))  # the whole root again
    os.symlink(train, os.path.join(train, CITIES[1], "위로"))  # an ancestor
    os.symlink(os.path.join(train, CITIES[2]), os.path.join(train, CITIES[3], "대구"))  # sibling
    labels = os.path.join(root, "train.csv")
    with open(labels, "w", encoding="utf-8") as f:
        f.write("id,landmark_id\n" + "\n".join(rows) + "\n")
    return {"images": images, "labels": labels, "upright": upright, "photos": n}


@pytest.fixture(scope="module")
def awkward_run(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("awkward")
    tree = write_awkward_tree(str(folder / "data"))
    root = str(folder / "run")
    done = subprocess.run(
        [
            sys.executable, "-m", "imgtfx.cli", "run",
            "--images", tree["images"], "--labels", tree["labels"], "--root", root,
            "--train-steps", "20", "--image-size", "16", "--min-accuracy", "0",
            "--beam-arg=--direct_running_mode=in_memory", "--beam-arg=--direct_num_workers=1",
        ],
        capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return {**tree, "root": root, "stderr": done.stderr}


def test_the_terminal_shows_only_the_users_lines_and_the_log_no_traceback(awkward_run):
    errors = awkward_run["stderr"].strip().splitlines()
    log = errors[0].split()[1]
    for line in errors[1:]:  # the terminal: step lines and warnings, nothing of the libraries
        assert re.match(r"(\[\d\d:\d\d:\d\d\] [A-Za-z]+: |warning: )", line), errors
    logged = open(log, encoding="utf-8").read()
    assert "missing from font" not in logged and "Traceback" not in logged
    # Two or three photos a class: a plain 80/20 hash would leave many classes without an
    # eval photo; every class is covered.
    assert "have no eval example" not in awkward_run["stderr"]
    assert "have no train" not in awkward_run["stderr"]


def test_every_photo_is_one_example_and_the_broken_file_a_reject(awkward_run):
    summary = read_summary(awkward_run["root"])
    assert summary.num_classes == CLASSES and summary.rejected == 1
    assert sum(summary.examples.values()) == awkward_run["photos"]
    assert summary.blessing["blessed"] is True and summary.pushed_model
    report = read_report(summary.examples_uri)
    assert report.rejected_by_reason == {reasons.TRUNCATED_OR_CORRUPT: 1}
    assert set(report.skipped_by_reason) == {reasons.LINK_INTO_TREE} and report.reconciled
    assert report.source_formats.keys() == {"jpeg", "png"}
    ids = [
        example["id"].numpy().decode()
        for split in ("train", "eval")
        for example in reader.read_examples(layout.split_files(summary.examples_uri, split))
    ]
    assert len(ids) == len(set(ids)) == awkward_run["photos"]  # no photo twice through a link


def test_sideways_photos_are_stored_upright(awkward_run):
    uri = read_summary(awkward_run["root"]).examples_uri
    rows = {
        example["id"].numpy().decode(): example
        for split in ("train", "eval")
        for example in reader.read_examples(layout.split_files(uri, split))
    }
    assert awkward_run["upright"]
    for image_id, expected in awkward_run["upright"].items():
        stored = np.asarray(Image.open(io.BytesIO(rows[image_id]["image_raw"].numpy())))
        assert stored.shape[:2] == expected.shape[:2] == (24, 16), image_id  # upright: taller
        error = np.abs(stored.astype(float) - expected).mean()  # a JPEG re-encode of 24x16
        assert error < 12 and error < np.abs(stored - np.rot90(expected, 2)).mean() / 3, image_id
        assert int(rows[image_id]["orientation"]) in (6, 8)


def test_each_landmark_is_named_after_its_folder_in_nfc(awkward_run):
    uri = read_summary(awkward_run["root"]).examples_uri
    names = dict(zip(read_vocabulary(uri), read_label_names(uri), strict=True))
    for k, name in enumerate(AWKWARD):
        assert names[str(3 + 7 * k)] == unicodedata.normalize("NFC", name)
    with open(os.path.join(uri, layout.LABEL_NAMES_FILE), encoding="utf-8") as f:
        assert len(json.load(f)) == CLASSES


def test_the_report_names_the_awkward_landmarks_escaped_and_summarises_the_rest(awkward_run):
    report = os.path.join(awkward_run["root"], "report", "index.html")
    page = open(report, encoding="utf-8").read()
    for name in AWKWARD:  # the smallest classes, listed by name: as text, escaped, in NFC
        assert html.escape(unicodedata.normalize("NFC", name)) in page, name
    assert "<img src=x" not in page
    assert f"{CLASSES} classes" in page and "Most confused pairs" in page
    assert "lowest accuracy, of" in page  # the TFMA slices are summarised, not listed
    assert os.path.getsize(report) < 3_000_000
