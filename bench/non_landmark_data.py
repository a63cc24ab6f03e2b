"""Photos of no landmark beside the contest tree (bench/contest_data.py): what a phone's roll
holds among the landmarks, for measuring `--non-landmarks` and `--min-confidence`
(bench/retrieval.py). No two share a scene; all share a kind, as the non-landmark photos of
Google Landmarks v2's test do.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from bench.contest_data import JPEG_QUALITY, _grain


def render_non_landmark(seed: int, size: tuple[int, int], grain: list[Image.Image]) -> bytes:
    """A photo of no landmark, as a phone's roll holds them among the landmarks (a room, a
    plate, a face close up): warm indoor light falling off across the frame, one large
    rounded subject filling it, some clutter, grain. No two share a scene; all share the
    kind, as the non-landmark photos of Google Landmarks v2's test do."""
    width, height = size
    rng = np.random.default_rng((99_991, seed))
    warm = np.array([rng.uniform(150, 230), rng.uniform(110, 170), rng.uniform(60, 120)])
    fall = np.linspace(1.0, rng.uniform(0.4, 0.7), width)[None, :, None]
    pixels = (np.ones((height, width, 3)) * warm * fall).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    r = rng.uniform(0.25, 0.4) * height
    subject = tuple(int(c) for c in warm * rng.uniform(0.5, 0.9))
    draw.ellipse([cx - r * 1.2, cy - r, cx + r * 1.2, cy + r], fill=subject)
    for _ in range(6):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        w, h = rng.integers(width // 40, width // 10), rng.integers(height // 40, height // 10)
        draw.rectangle(
            [x0, y0, x0 + w, y0 + h], fill=tuple(int(c) for c in rng.integers(0, 255, 3))
        )
    field = grain[int(rng.integers(len(grain)))]
    dx, dy = int(rng.integers(0, 64)), int(rng.integers(0, 64))
    image = ImageChops.add(image, field.crop((dx, dy, dx + width, dy + height)), 1.0, -128)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def write_non_landmarks(folder: str, count: int, size=(960, 540), first: int = 0) -> list[str]:
    """`count` photos of no landmark (render_non_landmark, seeds first..first+count) under
    `folder`, reused where written; their paths."""
    os.makedirs(folder, exist_ok=True)
    grain = _grain(size, 6.0, 0)
    paths = []
    for seed in range(first, first + count):
        path = os.path.join(folder, f"no-landmark-{seed:05d}.jpg")
        if not os.path.exists(path):
            with open(path + ".part", "wb") as f:
                f.write(render_non_landmark(seed, size, grain))
            os.replace(path + ".part", path)
        paths.append(path)
    return paths
