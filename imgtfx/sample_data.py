"""Built-in sample data: scikit-learn's handwritten digits as a landmark-style image tree.

No download: the 1,797 real 8x8 digit scans ship inside scikit-learn. They are written as
`train/<group>/<class>/<id>.<ext>` with Korean folder names, and a `train.csv` of `id,landmark_id`,
the layout of landmark-recognition datasets.
"""

from __future__ import annotations

import csv
import hashlib
import os

import numpy as np
from PIL import Image

# Korean names of the digits, and a "city" per group of digits, as landmark trees nest them.
DIGIT_NAMES = ["영", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구"]
GROUPS = {"서울": range(0, 5), "부산": range(5, 10)}


def _group_of(digit: int) -> str:
    return next(name for name, digits in GROUPS.items() if digit in digits)


def write_digits_tree(
    root: str,
    image_size: int = 32,
    limit: int | None = None,
    with_defects: bool = True,
) -> dict[str, str]:
    """Writes the digits tree under `root` and returns {'images': ..., 'labels_csv': ...}.

    Args:
      root: folder to write into (created).
      image_size: side of the written images, upscaled from 8x8.
      limit: write only the first `limit` digits.
      with_defects: also write what real trees contain: a `.DS_Store`, an empty file, a
        truncated JPEG and a text file, which the conversion skips or rejects.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images_root = os.path.join(root, "images")
    rows = []
    count = len(digits.images) if limit is None else min(limit, len(digits.images))
    for i in range(count):
        digit = int(digits.target[i])
        pixels = (digits.images[i] * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
        image = Image.fromarray(pixels, mode="L").resize((image_size, image_size), Image.BILINEAR)
        image_id = hashlib.sha1(f"digit-{i}".encode()).hexdigest()[:16]
        folder = os.path.join(images_root, "train", _group_of(digit), DIGIT_NAMES[digit])
        os.makedirs(folder, exist_ok=True)
        if i % 3 == 0:
            image.convert("RGB").save(os.path.join(folder, f"{image_id}.jpg"), quality=95)
        else:
            image.save(os.path.join(folder, f"{image_id}.png"))
        rows.append((image_id, digit))
    if with_defects:
        folder = os.path.join(images_root, "train", _group_of(0), DIGIT_NAMES[0])
        rows.extend((defect_id, 0) for defect_id in _write_defects(folder))
    labels_csv = os.path.join(root, "train.csv")
    with open(labels_csv, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "landmark_id"])
        writer.writerows(rows)
    return {"images": images_root, "labels_csv": labels_csv}


def _write_defects(folder: str) -> list[str]:
    """Writes broken files beside good ones; returns their ids (listed in the CSV, so that each
    is rejected for what is wrong with its bytes)."""
    with open(os.path.join(folder, ".DS_Store"), "wb") as f:
        f.write(b"\0\0\0\1Bud1")
    open(os.path.join(folder, "empty.jpg"), "wb").close()
    with open(os.path.join(folder, "notes.txt"), "w", encoding="utf-8") as f:
        f.write("사진 메모\n")
    good = next(n for n in sorted(os.listdir(folder)) if n.endswith(".jpg") and n != "empty.jpg")
    with open(os.path.join(folder, good), "rb") as f:
        data = f.read()
    with open(os.path.join(folder, "truncated.jpg"), "wb") as f:
        f.write(data[: len(data) // 2])
    return ["empty", "notes", "truncated"]
