"""Shared test helpers: small generated image trees (no downloads)."""

from __future__ import annotations

import io
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


def encode(fmt: str = "JPEG", size=(24, 20), mode: str = "RGB", seed: int = 0, **save) -> bytes:
    """Bytes of a random image in `fmt` and PIL `mode`."""
    rng = np.random.default_rng(seed)
    pixels = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if mode == "I;16":
        image = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
    elif mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def write(path, data: bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def make_tree(root, classes=("cat", "dog"), per_class=6, prefix="train", fmt="JPEG", seed=0):
    """root/<prefix>/<class>/<class>_<i>.jpg; returns the list of relative paths."""
    paths = []
    ext = {"JPEG": "jpg", "PNG": "png"}[fmt]
    for c, name in enumerate(classes):
        for i in range(per_class):
            rel = f"{prefix}/{name}/{name}_{i}.{ext}" if prefix else f"{name}/{name}_{i}.{ext}"
            write(os.path.join(root, rel), encode(fmt, seed=seed + 100 * c + i))
            paths.append(rel)
    return paths


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "images"
    make_tree(root)
    return str(root)
