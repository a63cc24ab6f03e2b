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


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """KFP's object store (tests/seaweedfs.py), one per test process: each test keeps to its
    own buckets, prefixes and namespaces."""
    from tests.seaweedfs import SeaweedFS

    server = SeaweedFS(str(tmp_path_factory.mktemp("seaweedfs")))
    yield server
    server.close()


@pytest.fixture(scope="session")
def own_store(tmp_path_factory):
    """An S3-compatible store of the users' own (their data, or an s3:// root): a second
    SeaweedFS, its own admin and keys."""
    from tests.seaweedfs import SeaweedFS

    server = SeaweedFS(str(tmp_path_factory.mktemp("own-store")))
    yield server
    server.close()


def unique(name: str) -> str:
    """`name` with a suffix of its own: a bucket, prefix or namespace no other test uses."""
    import uuid

    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "images"
    make_tree(root)
    return str(root)


def pytest_collection_modifyitems(items):
    """Files with the most end-to-end (slow) tests first, each file's tests kept together and
    in order. `make test` hands whole files, in this order, to one worker per core
    (pytest-xdist: --dist loadfile --no-loadscope-reorder), each the next file as it runs
    out: the long runs start at once on both cores and the short files fill in after."""
    slow_in_file: dict[str, int] = {}
    for item in items:
        slow_in_file.setdefault(item.nodeid.split("::")[0], 0)
        if item.get_closest_marker("slow"):
            slow_in_file[item.nodeid.split("::")[0]] += 1
    order = {path: rank for rank, path in enumerate(slow_in_file)}
    items.sort(
        key=lambda item: (
            -slow_in_file[item.nodeid.split("::")[0]],
            order[item.nodeid.split("::")[0]],
        )
    )
