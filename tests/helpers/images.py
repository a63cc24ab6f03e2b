"""Images and image trees made in the test (no downloads): random and smooth pictures in any
format, EXIF orientations written as phones write them, small class trees, the contest's
layout with Korean names."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image


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


def with_orientation(jpeg: bytes, orientation: int, byte_order: str = "II") -> bytes:
    """`jpeg` with an EXIF block (APP1) whose IFD0 holds a tag before the orientation, in either
    TIFF byte order, written by hand as phone cameras write it."""
    import struct

    e = "<" if byte_order == "II" else ">"
    entries = [(0x0103, 3, 1, 6), (0x0112, 3, 1, orientation)]  # compression, orientation
    ifd = struct.pack(e + "H", len(entries))
    for tag, kind, count, value in entries:
        ifd += struct.pack(e + "HHI", tag, kind, count) + struct.pack(e + "HH", value, 0)
    tiff = byte_order.encode() + struct.pack(e + "HI", 42, 8) + ifd + struct.pack(e + "I", 0)
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def photo(size=(48, 30), seed: int = 0) -> Image.Image:
    """A smooth random picture (JPEG round trips change it little), not square so that a turn
    shows in its shape."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray((rng.random((4, 6, 3)) * 255).astype(np.uint8))
    return small.resize(size, Image.BILINEAR)


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


# train/<city>/<landmark folder>/<id>.jpg and its landmark id, as the contest lays them out.
CONTEST_TREE = {
    "서울/경복궁/a1": "902",
    "서울/경복궁/a2": "902",
    "서울/남산타워/b1": "15",
    "서울/남산타워/b2": "15",
    "부산/해운대/c1": "3",  # one id over two folders: no folder names it
    "부산/광안리/c2": "3",
    "부산/시장/d1": "20",  # one folder name for two ids: it names neither
    "대구/시장/e1": "21",
}


def contest_tree(tmp_path) -> tuple:
    """(image root, labels CSV) of CONTEST_TREE; the CSV lies outside the tree."""
    root = tmp_path / "images"
    for seed, rel in enumerate(CONTEST_TREE):
        write(root / "train" / f"{rel}.jpg", encode(size=(8, 8), seed=seed))
    csv = tmp_path / "train.csv"
    rows = "".join(f"{rel.rsplit('/', 1)[1]},{label}\n" for rel, label in CONTEST_TREE.items())
    csv.write_text("id,landmark_id\n" + rows, encoding="utf-8")
    return root, csv
