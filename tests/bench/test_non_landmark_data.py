"""The benchmark's photos of no landmark: phone-sized JPEGs, none the same, reused once
written, and unlike any landmark of the contest tree."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from bench.contest_data import _grain, render_photo
from bench.non_landmark_data import render_non_landmark, write_non_landmarks


def test_each_photo_of_no_landmark_is_its_own_scene(tmp_path):
    paths = write_non_landmarks(str(tmp_path), 3, size=(96, 54))
    again = write_non_landmarks(str(tmp_path), 3, size=(96, 54))
    assert paths == again and len(set(paths)) == 3
    photos = [np.asarray(Image.open(p), np.float32) for p in paths]
    assert all(p.shape == (54, 96, 3) for p in photos)
    assert all(np.abs(a - b).mean() > 5 for a in photos for b in photos if a is not b)


def test_they_are_a_kind_of_their_own_beside_the_landmarks():
    """Warm and plain: their colour spread is narrower than a landmark photo's."""
    grain = _grain((96, 54), 6.0, 0)

    def spread(data: bytes) -> float:
        return float(np.asarray(Image.open(io.BytesIO(data)), np.float32).std(axis=(0, 1)).mean())

    strangers = [spread(render_non_landmark(s, (96, 54), grain)) for s in range(8)]
    landmarks = [spread(render_photo(i, 0, (96, 54), grain)) for i in range(8)]
    assert np.median(strangers) < np.median(landmarks)
