"""A tree shaped like the landmark contest data, through `imgtfx run` (slow).

1,049 landmark classes with three small JPEGs each under train/<city>/<landmark>/<id>.jpg,
int landmark ids in the labels CSV, phone photos stored sideways with an EXIF orientation tag,
links back into the tree, and no broken file.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageOps

from imgtfx.components.examples import layout, reader
from imgtfx.pipeline.run_summary import read_summary
from tests.conftest import photo, with_orientation

pytestmark = pytest.mark.slow

CLASSES = 1049
PER_CLASS = 3
CITIES = ["서울", "부산", "대구", "인천", "광주", "대전", "울산"]


def write_landmark_tree(root: str) -> dict:
    """Writes the tree and its CSV; returns paths, the rotated ids and their upright pixels."""
    images = os.path.join(root, "images")
    rows, rotated = [], {}
    for k in range(CLASSES):
        landmark_id = 3 + 7 * k  # int ids, not contiguous, as in the contest CSV
        folder = os.path.join(images, "train", CITIES[k % len(CITIES)], f"명소_{landmark_id}")
        os.makedirs(folder, exist_ok=True)
        for i in range(PER_CLASS):
            image_id = f"{k:04x}{i}a7f"
            buffer = io.BytesIO()
            photo(size=(24, 16), seed=k * PER_CLASS + i).save(buffer, "JPEG", quality=90)
            data = buffer.getvalue()
            if (k * PER_CLASS + i) % 10 == 0:  # one photo in ten came off a phone sideways
                data = with_orientation(data, 6 if k % 2 else 8, "II" if i % 2 else "MM")
                rotated[image_id] = np.asarray(
                    ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
                )
            with open(os.path.join(folder, f"{image_id}.jpg"), "wb") as f:
                f.write(data)
            rows.append(f"{image_id},{landmark_id}")
    train = os.path.join(images, "train")
    os.symlink(images, os.path.join(train, CITIES[0], "전체"))  # the whole root again
    os.symlink(train, os.path.join(train, CITIES[1], "위로"))  # an ancestor
    os.symlink(os.path.join(train, CITIES[2]), os.path.join(train, CITIES[3], "대구"))  # sibling
    labels = os.path.join(root, "train.csv")
    with open(labels, "w", encoding="utf-8") as f:
        f.write("id,landmark_id\n" + "\n".join(rows) + "\n")
    return {"images": images, "labels": labels, "rotated": rotated}


def test_landmark_shaped_tree_runs_to_a_report(tmp_path):
    tree = write_landmark_tree(str(tmp_path / "data"))
    root = str(tmp_path / "run")
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
    assert "Traceback" not in done.stderr
    # Three photos a class: a plain 80/20 hash would leave ~half the classes without an eval
    # photo; every class is covered.
    assert "have no eval example" not in done.stderr and "have no train" not in done.stderr
    summary = read_summary(root)
    assert summary.num_classes == CLASSES and summary.rejected == 0
    assert sum(summary.examples.values()) == CLASSES * PER_CLASS
    assert summary.blessing["blessed"] is True and summary.pushed_model

    rows = {}
    for split in ("train", "eval"):
        for example in reader.read_examples(layout.split_files(summary.examples_uri, split)):
            image_id = example["id"].numpy().decode()
            assert image_id not in rows, f"{image_id} is an example twice"
            rows[image_id] = example
    assert len(rows) == CLASSES * PER_CLASS
    for image_id, expected in tree["rotated"].items():
        stored = np.asarray(Image.open(io.BytesIO(rows[image_id]["image_raw"].numpy())))
        assert stored.shape == expected.shape == (24, 16, 3), image_id  # upright: taller
        error = np.abs(stored.astype(float) - expected).mean()  # a JPEG re-encode of 24x16
        assert error < 12 and error < np.abs(stored - np.rot90(expected, 2)).mean() / 3, image_id
        assert int(rows[image_id]["orientation"]) in (6, 8)

    report = os.path.join(root, "report", "index.html")
    page = open(report, encoding="utf-8").read()
    assert f"{CLASSES} classes" in page and "Most confused pairs" in page
    assert "lowest accuracy, of" in page  # the TFMA slices are summarised, not listed
    assert os.path.getsize(report) < 3_000_000
