"""The fingerprint and the exact digest of components/fingerprint.py, on contest-shaped photos:
near copies within the grouping threshold, distinct photos of one landmark beyond it."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from PIL import Image

from bench.contest_data import _grain, render_photo, sideways
from bench.copies_data import NEAR_KINDS, _with_comment, near_copy
from imgtfx.components import fingerprint, image_files
from imgtfx.components.examples.reasons import MAX_PIXELS
from imgtfx.components.image_example_gen import duplicates
from imgtfx.components.image_example_gen.duplicates import THRESHOLD

SIZE = (480, 270)


@pytest.fixture(scope="module")
def photos():
    grain = _grain(SIZE, 9.0, 0)
    return {(lm, i): render_photo(lm, i, SIZE, grain) for lm in range(8) for i in range(8)}


def _fingerprint(data: bytes) -> bytes:
    info = image_files.check_image(data, MAX_PIXELS, True)
    return info.fingerprint


def _picture(data: bytes) -> duplicates.Image:
    info = image_files.check_image(data, MAX_PIXELS, True)
    return duplicates.Image("", (), "", info.fingerprint, info.digest, info.centre)


@pytest.mark.parametrize("kind", NEAR_KINDS)
def test_near_copies_lie_within_the_threshold(photos, kind):
    """Every copy of each kind, but crops (0 to 5% off each side, at random): 90% of those at
    this size, measured 64 photos apart, by the centre's fingerprint; the whole picture's alone
    finds about 65%."""
    rng = np.random.default_rng(0)
    distances, wholes = [], []
    for data in photos.values():
        original = sideways(data, 8) if kind == "upright_twin" else data
        copy = near_copy(data, kind, rng)
        distances.append(duplicates.image_distance(_picture(original), _picture(copy)))
        wholes.append(fingerprint.hamming(_fingerprint(original), _fingerprint(copy)))
    within = np.mean(np.array(distances) <= THRESHOLD)
    assert within >= (0.9 if kind == "crop" else 1.0), distances
    if kind == "crop":  # what the centre adds
        assert np.mean(np.array(wholes) <= THRESHOLD) < within - 0.1, wholes


def test_distinct_photos_of_one_landmark_lie_beyond_it_thanks_to_chroma(photos):
    same = [(a, b) for a, b in itertools.combinations(photos, 2) if a[0] == b[0]]
    prints = {key: _fingerprint(data) for key, data in photos.items()}
    assert min(fingerprint.hamming(prints[a], prints[b]) for a, b in same) > THRESHOLD
    pictures = {key: _picture(data) for key, data in photos.items()}  # centres too
    assert min(duplicates.image_distance(pictures[a], pictures[b]) for a, b in same) > THRESHOLD
    # A luma-only 64-bit hash of the same pictures (the common pHash) puts some within the
    # same share of its bits: the landmarks' photos share their luma layout.
    luma = {key: _luma_hash(data) for key, data in photos.items()}
    closest = min(int((luma[a] != luma[b]).sum()) for a, b in same)
    assert closest <= 64 * THRESHOLD / fingerprint.FINGERPRINT_BITS


def _luma_hash(data: bytes) -> np.ndarray:
    small = Image.open(io.BytesIO(data)).convert("L").resize((32, 32), Image.BOX)
    k = np.arange(32)
    dct = np.cos(np.pi * (2 * k[None, :] + 1) * k[:8, None] / 64)
    return (dct @ np.asarray(small, np.float64) @ dct.T).ravel()[1:65] > 0


def test_brightness_and_contrast_change_no_bit_before_jpeg():
    """Signs of AC coefficients: a constant added (brightness) or a scale (contrast) around
    zero-mean coefficients leaves them; what the planted copies differ by is re-encoding."""
    rng = np.random.default_rng(3)
    pixels = (rng.random((64, 96, 3)) * 150 + 40).astype(np.float32)
    base = fingerprint.fingerprint(Image.fromarray(pixels.astype(np.uint8)))
    brighter = fingerprint.fingerprint(Image.fromarray((pixels + 30).astype(np.uint8)))
    assert fingerprint.hamming(base, brighter) <= 4  # rounding of a few pixels only


def test_a_picture_without_colour_is_told_apart_by_finer_luma(photos):
    gray = [Image.open(io.BytesIO(d)).convert("L") for d in list(photos.values())[:16]]
    prints = [fingerprint.fingerprint(g) for g in gray]
    assert all(p[-1] & 0x40 == 0 for p in prints)  # the colour bit (bit 225) is off
    distances = [fingerprint.hamming(a, b) for a, b in itertools.combinations(prints, 2)]
    assert min(distances) > THRESHOLD


def test_the_exact_digest_is_the_image_data_not_the_file(photos):
    data = next(iter(photos.values()))
    info = image_files.check_image(data, MAX_PIXELS, True)
    commented = image_files.check_image(_with_comment(data, b"edited"), MAX_PIXELS, True)
    assert commented.digest == info.digest and commented.fingerprint == info.fingerprint
    reencoded = near_copy(data, "reencode", np.random.default_rng(0))
    other = image_files.check_image(reencoded, MAX_PIXELS, True)
    assert other.digest != info.digest
    png = io.BytesIO()
    Image.open(io.BytesIO(data)).save(png, "PNG", compress_level=1)
    again = io.BytesIO()
    Image.open(io.BytesIO(data)).save(again, "PNG", compress_level=9)
    first, second = (image_files.check_image(b.getvalue(), MAX_PIXELS, True) for b in (png, again))
    assert first.digest == second.digest  # the same pixels, other bytes
