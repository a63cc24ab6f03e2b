"""The contest-shaped generator: the layout, labels and photos the scale benchmark measures."""

from __future__ import annotations

import collections
import csv
import io
import os

import numpy as np
import pytest
from PIL import Image

from bench import contest_data


def test_the_contest_shape_is_the_real_contests():
    """66 to 101 photos a landmark, median 84, 88,102 in all; ids <landmark name>_<NNN> with the
    held-out test's gaps (../shared/reviews/landmark-recognition-anchors.md, section 1)."""
    sizes = contest_data.contest_sizes(88_102, 1_049)
    assert len(sizes) == 1_049 and sum(sizes) == 88_102
    assert min(sizes) == 66 and max(sizes) == 101 and 82 <= sorted(sizes)[524] <= 86
    assert contest_data.contest_sizes(88_102, 1_049) == sizes  # the same tree every time
    small = contest_data.contest_sizes(3_000, 150)  # a CI-sized tree scales the bounds
    assert sum(small) == 3_000 and 16 <= min(small) and max(small) <= 24

    classes = contest_data.plan_tree(2_000, 24)
    for cls in classes:
        numbers = [int(i.rsplit("_", 1)[1]) for i in cls["ids"]]
        assert all(i.rsplit("_", 1)[0] == cls["folder"] for i in cls["ids"])
        assert numbers == sorted(set(numbers)) and numbers[-1] > len(numbers)  # gaps
        assert all(len(i.rsplit("_", 1)[1]) == 3 for i in cls["ids"])
    gaps = sum(max(int(i[-3:]) for i in c["ids"]) - len(c["ids"]) for c in classes)
    assert 0.2 < gaps / (gaps + 2_000) < 0.35  # about 30% held out


def test_each_copy_density_writes_what_it_says(tmp_path):
    """none: every photo its own bytes; bursts: near shots (a pixel of shake) of about one shot
    in three; repeats: every photo the bytes of one of two shots of its landmark."""

    def contents(copies):
        paths = contest_data.write_contest_tree(
            str(tmp_path / copies), 120, 4, size=(96, 54), grain=4.0, workers=1, copies=copies
        )
        found = []
        for folder, _, names in os.walk(paths["images"]):
            found.extend(open(os.path.join(folder, n), "rb").read() for n in sorted(names))
        return found

    assert len(set(contents("none"))) == 120
    assert len(set(contents("repeats"))) == 4 * contest_data.REPEATED_SHOTS
    bursts = contents("bursts")
    assert len(set(bursts)) == 120  # near, not exact: other bytes
    taken = [s for k in range(4) for s in contest_data.shots(30, k, "bursts")]
    assert 60 < len({(k // 30, shot) for k, (shot, _) in enumerate(taken)}) < 110
    with pytest.raises(ValueError, match="copies 'all'"):
        contest_data.write_contest_tree(str(tmp_path / "x"), 12, 2, copies="all")


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
    assert all("_" in row["id"] for row in rows)  # <landmark name>_<NNN>
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
