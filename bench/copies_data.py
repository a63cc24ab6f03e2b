"""Generated trees with copies of pictures planted in them, to measure how ImageExampleGen finds
copies (recall) and groups what is not a copy (false groups), and to stress its split.

`write_planted_tree`: contest-shaped photos (bench/contest_data.py: each landmark its colour
layout, each photo its own framing, light and passers-by) with copies of some of them planted
as users' trees hold them: the same file under another name or with other metadata (exact),
and re-encoded, resized, cropped up to 5% a side, brightness or contrast nudged, or the upright
twin of a sideways photo (near); in the same landmark's folder, under another landmark, or in
the other split folder. The manifest says which file is a copy of which.

`write_tinted_tree`: the adversarial case of a hash blind to what tells classes apart: every
class is a tint of one of a few shots and its photos are crops of it, so that thousands of
photos of different classes lie a few bits apart.
"""

from __future__ import annotations

import csv
import io
import json
import os
import struct

import numpy as np
from PIL import Image, ImageEnhance

from bench.contest_data import CITIES, _grain, render_photo, sideways

NEAR_KINDS = ("reencode", "resize", "crop", "brightness", "contrast", "upright_twin")
EXACT_KINDS = ("renamed", "metadata")
PLACES = ("same_class", "other_class", "other_split")


def _jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _with_comment(jpeg: bytes, text: bytes) -> bytes:
    """The same JPEG with a COM segment: other bytes, the same image data."""
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + jpeg[2:]


def near_copy(jpeg: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """A near copy of a photo, as a user's tree holds one."""
    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    width, height = image.size
    if kind == "reencode":
        return _jpeg(image, int(rng.integers(55, 76)))
    if kind == "resize":
        scale = rng.uniform(0.5, 0.8)
        return _jpeg(image.resize((int(width * scale), int(height * scale)), Image.BILINEAR))
    if kind == "crop":  # a few percent: up to 5% off each side
        left, top, right, bottom = rng.uniform(0.0, 0.05, 4)
        box = (width * left, height * top, width * (1 - right), height * (1 - bottom))
        return _jpeg(image.crop(tuple(int(v) for v in box)))
    if kind == "brightness":
        return _jpeg(ImageEnhance.Brightness(image).enhance(rng.choice([0.92, 1.08])))
    if kind == "contrast":
        return _jpeg(ImageEnhance.Contrast(image).enhance(rng.choice([0.9, 1.1])))
    if kind == "upright_twin":  # the sideways original is planted too; this is upright
        return jpeg
    raise ValueError(kind)


def write_planted_tree(
    root: str,
    num_classes: int = 40,
    photos_per_class: int = 6,
    copies: int = 150,
    size: tuple[int, int] = (480, 270),
    seed: int = 0,
    split_folders: bool = True,
    first_photo: int = 0,
) -> dict:
    """Writes images/{train,eval}/<city>/<landmark>/<id>.jpg, train.csv and manifest.json.

    Returns {'images', 'labels_csv', 'manifest'}; the manifest lists `distinct` (every original
    photo's path, relative to images/) and `planted` ({'original', 'copy', 'kind', 'place'}).
    Originals lie in train/ (one photo in five of a landmark in eval/ when `split_folders`);
    they are photos `first_photo` on of each landmark (a later tree of new photos starts
    where an earlier one ended).
    """
    rng = np.random.default_rng(seed)
    grain = _grain(size, 9.0, seed)
    images = os.path.join(root, "images")
    rows, distinct, planted = [], [], []
    files: dict[str, bytes] = {}
    ids = iter(f"{n:08x}" for n in rng.permutation(10**7)[: num_classes * photos_per_class * 3])

    def place(split: str, landmark: int, data: bytes) -> str:
        image_id = next(ids)
        city = CITIES[landmark % len(CITIES)]
        rel = f"{split}/{city}/명소{landmark:03d}/{image_id}.jpg"
        files[rel] = data
        rows.append((image_id, landmark))
        return rel

    originals = []
    for landmark in range(num_classes):
        for index in range(first_photo, first_photo + photos_per_class):
            split = "eval" if split_folders and index % 5 == 4 else "train"
            data = render_photo(landmark, index, size, grain)
            originals.append((landmark, split, place(split, landmark, data), data))
    distinct = [rel for _, _, rel, _ in originals]
    kinds = [*NEAR_KINDS, *EXACT_KINDS]
    for n in range(copies):
        landmark, split, original, data = originals[int(rng.integers(len(originals)))]
        kind = kinds[n % len(kinds)]
        where = PLACES[(n // len(kinds)) % (len(PLACES) if split_folders else 2)]
        if kind == "renamed":
            copy = data
        elif kind == "metadata":
            copy = _with_comment(data, f"edited {n}".encode())
        else:
            copy = near_copy(data, kind, rng)
        if kind == "upright_twin":  # the original becomes a sideways photo with its tag
            files[original] = sideways(data, 6)
        target = landmark
        if where == "other_class":
            target = (landmark + 1 + int(rng.integers(num_classes - 1))) % num_classes
        other = {"train": "eval", "eval": "train"}[split] if where == "other_split" else split
        planted.append(
            {"original": original, "copy": place(other, target, copy), "kind": kind, "place": where}
        )
    for rel, data in files.items():
        path = os.path.join(images, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    labels_csv = os.path.join(root, "train.csv")
    with open(labels_csv, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "landmark_id"])
        writer.writerows(rows)
    manifest = os.path.join(root, "manifest.json")
    with open(manifest, "w", encoding="utf-8") as f:
        json.dump({"distinct": distinct, "planted": planted}, f, ensure_ascii=False)
    return {"images": images, "labels_csv": labels_csv, "manifest": manifest}


def write_tinted_tree(
    root: str,
    num_classes: int = 60,
    photos_per_class: int = 5,
    shots: int = 3,
    size: tuple[int, int] = (480, 270),
    seed: int = 0,
) -> dict:
    """Classes that are tints of a few shots, their photos crops of the tint (10-20% off): a
    hash that does not see the tint puts photos of different classes a few bits apart. Writes
    images/train/<class>/<n>.jpg (folder labels); returns {'images'}."""
    rng = np.random.default_rng(seed)
    grain = _grain(size, 9.0, seed)
    bases = [Image.open(io.BytesIO(render_photo(1000 + s, 0, size, grain))) for s in range(shots)]
    images = os.path.join(root, "images")
    width, height = size
    for c in range(num_classes):
        tint = rng.integers(-40, 41, 3)
        base = np.asarray(bases[c % shots], np.int16) + tint
        shot = Image.fromarray(base.clip(0, 255).astype(np.uint8))
        folder = os.path.join(images, "train", f"tint{c:03d}")
        os.makedirs(folder, exist_ok=True)
        for n in range(photos_per_class):
            cut = rng.uniform(0.05, 0.10, 4)
            box = (width * cut[0], height * cut[1], width * (1 - cut[2]), height * (1 - cut[3]))
            photo = shot.crop(tuple(int(v) for v in box)).resize(size, Image.BILINEAR)
            with open(os.path.join(folder, f"{n}.jpg"), "wb") as f:
                f.write(_jpeg(photo))
    return {"images": images}


def measure(lines: list[dict], manifest: dict) -> dict:
    """How the groups of duplicates.jsonl (`lines`) meet the planted copies: `recall`, the share
    of planted copies in their original's group; `false_groups`, the share of distinct photos
    in a group with a photo that is neither a copy of it nor its original."""
    source = {rel: rel for rel in manifest["distinct"]}
    source.update({p["copy"]: p["original"] for p in manifest["planted"]})
    group_of = {path: i for i, line in enumerate(lines) for path in line["paths"]}
    found = [
        p
        for p in manifest["planted"]
        if p["copy"] in group_of and group_of[p["copy"]] == group_of.get(p["original"])
    ]
    falsely = set()
    for line in lines:
        sources = {source[path] for path in line["paths"]}
        if len(sources) > 1:
            falsely.update(sources)
    return {
        "planted": len(manifest["planted"]),
        "recall": len(found) / max(1, len(manifest["planted"])),
        "missed": [p for p in manifest["planted"] if p not in found],
        "distinct": len(manifest["distinct"]),
        "false_groups": len(falsely) / max(1, len(manifest["distinct"])),
        "falsely_grouped": sorted(falsely),
    }
