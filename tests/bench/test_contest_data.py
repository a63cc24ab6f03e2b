"""The contest-shaped generator: the layout, labels and photos the scale benchmark measures."""

from __future__ import annotations

import collections
import csv
import io
import os

import numpy as np
from PIL import Image

from bench import contest_data


def test_class_sizes_are_a_long_tail_that_sums_exactly():
    sizes = contest_data.class_sizes(88_000, 1_049)
    assert len(sizes) == 1_049 and sum(sizes) == 88_000
    ordered = sorted(sizes)
    assert ordered[:5] == [1, 2, 2, 3, 3]  # what a stratified split must handle
    assert 40 <= ordered[len(ordered) // 2] <= 80 and ordered[-1] > 1_000
    assert contest_data.class_sizes(88_000, 1_049) == sizes  # the same tree every time


def test_tree_layout_csv_and_sideways_phone_photos(tmp_path):
    paths = contest_data.write_contest_tree(
        str(tmp_path), 120, 12, size=(96, 54), grain=4.0, workers=1
    )
    with open(paths["labels_csv"], encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 120 and set(rows[0]) == {"id", "landmark_id"}
    assert all(row["landmark_id"].isdigit() for row in rows)
    files = {}
    for folder, _, names in os.walk(paths["images"]):
        for name in names:
            relative = os.path.relpath(os.path.join(folder, name), paths["images"])
            files[os.path.splitext(name)[0]] = relative.split(os.sep)
    assert set(files) == {row["id"] for row in rows}
    assert all(len(parts) == 4 and parts[0] == "train" for parts in files.values())
    assert {parts[1] for parts in files.values()} <= set(contest_data.CITIES)
    per_folder = collections.Counter(tuple(parts[1:3]) for parts in files.values())
    assert len(per_folder) == 12  # one folder per landmark

    turned = []
    for row in rows:
        image = Image.open(os.path.join(paths["images"], *files[row["id"]]))
        if image.getexif().get(0x0112, 1) != 1:
            turned.append(image)
    assert turned and all(t.size == (54, 96) for t in turned)  # stored sideways, tagged
    assert contest_data.write_contest_tree(str(tmp_path), 120, 12, size=(96, 54)) == paths


def test_photos_compress_like_photos_and_differ_by_landmark():
    grain = contest_data._grain((960, 540), 9.0, 0)
    one = contest_data.render_photo(3, 0, (960, 540), grain)
    assert 60_000 < len(one) < 180_000  # ~100 KB, as the contest's 960x540 phone photos

    small_grain = contest_data._grain((96, 54), 4.0, 0)

    def pixels(landmark, index):
        data = contest_data.render_photo(landmark, index, (96, 54), small_grain)
        return np.asarray(Image.open(io.BytesIO(data)), dtype=float)

    same = np.abs(pixels(3, 0) - pixels(3, 1)).mean()
    other = np.abs(pixels(3, 0) - pixels(4, 0)).mean()
    assert same < other  # a landmark's photos look alike: a model can learn them
