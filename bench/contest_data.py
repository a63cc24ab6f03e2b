"""A generated tree shaped like the Dacon landmark contest: the seed's own dataset, at any size.

The contest's public `train.csv` holds 88,102 phone photos (960x540 JPEGs, ~100 KB each) of
1,049 landmarks, 66 to 101 photos each (median 84, no long tail), under
`train/<city>/<landmark>/<id>.jpg`, ids `<landmark name>_<NNN>` mapped to int landmark ids
(`id,landmark_id`); about 30% of each landmark's shoot was held out as the test, so a
landmark's numbers have gaps (../shared/reviews/landmark-recognition-anchors.md, section 1).
Nothing may be downloaded here, so this writes a tree of that shape:

- the same layout and ids, Korean city and landmark folder names, int landmark ids in the CSV;
- `shape="contest"`: class sizes of 66-101 (median 84) at 84 photos a class, scaled with the
  photos a class asked for; `shape="long-tail"` (a stress option): a few landmarks of one to
  three photos, most of dozens, a few of hundreds, and random 10-character ids;
- photo-like pictures (smooth colour layout, shapes, sensor grain) of the requested size that
  compress like photos (~100 KB at 960x540, JPEG quality 85); each landmark has its own colour
  layout, each photo its own framing, light and grain, so a model can learn the classes;
- one photo in a hundred stored sideways with an EXIF orientation tag, as phones write them;
- `copies`, the copy density: "none"; "bursts" (a phone's burst: about one shot in three is
  followed by one to three near shots of it, a pixel of shake, other grain); "repeats" (every
  photo the same bytes as one of its landmark's REPEATED_SHOTS shots, as a merged double export
  of one folder leaves it).

Writing is spread over processes and resumable: a tree that is complete is reused as it is.
"""

from __future__ import annotations

import csv
import io
import math
import os
import struct
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image, ImageChops, ImageDraw

CITIES = [
    "서울", "부산", "대구", "인천", "광주", "대전", "울산", "세종", "경기", "강원", "충북", "충남",
    "전북", "전남", "경북", "경남", "제주",
]  # fmt: skip
_SYLLABLES = "가경고광국남대동명백봉부산서석성송수신안양영용운원월은인정주중진천청태평하한해화"
_KINDS = [
    "궁",
    "사",
    "타워",
    "공원",
    "시장",
    "다리",
    "해수욕장",
    "박물관",
    "성당",
    "폭포",
    "역",
    "문",
]
_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
_GRAIN_FIELDS = 8
SIDEWAYS_EVERY = 100  # one photo in a hundred is stored sideways with an EXIF tag
JPEG_QUALITY = 85


def class_sizes(num_images: int, num_classes: int, seed: int = 0) -> list[int]:
    """Images per class for shape="long-tail": a long tail that sums to `num_images`.

    The smallest classes keep one, two and three images (what a stratified split must handle);
    the rest follow a Zipf-like curve (exponent 0.5): at 88,000 images the largest class holds
    about 1,360, the median class about 60 and the smallest of the curve about 40. The order is
    shuffled, so landmark ids say nothing about size.
    """
    if num_classes < 1 or num_images < num_classes:
        raise ValueError(f"need at least one image per class: {num_images} for {num_classes}.")
    tiny = [n for n in (1, 2, 2, 3, 3) if num_classes > 20][: num_classes // 20]
    rest = num_classes - len(tiny)
    budget = num_images - sum(tiny)
    weights = 1.0 / np.arange(1, rest + 1) ** 0.5
    sizes = np.maximum(1, np.floor(weights / weights.sum() * budget)).astype(int)
    # Largest remainders (or trims from the largest) make the total exact.
    delta = budget - int(sizes.sum())
    order = np.argsort(-weights)
    i = 0
    while delta:
        k = order[i % rest]
        if delta > 0:
            sizes[k] += 1
            delta -= 1
        elif sizes[k] > 1:
            sizes[k] -= 1
            delta += 1
        i += 1
    all_sizes = [*tiny, *sizes.tolist()]
    np.random.default_rng(seed).shuffle(all_sizes)
    return [int(s) for s in all_sizes]


CONTEST_PHOTOS = 88_102
CONTEST_CLASSES = 1_049
CONTEST_SIZES = (66, 84, 101)  # smallest, median, largest photos a landmark
HELD_OUT = 0.3  # the share of each landmark's shoot the contest kept for its test
SHAPES = ("contest", "long-tail")
COPIES = ("none", "bursts", "repeats")
REPEATED_SHOTS = 2  # copies="repeats": the shots each landmark's photos repeat


def contest_sizes(num_images: int, num_classes: int, seed: int = 0) -> list[int]:
    """Images per class as the contest has them: from 66 to 101 (median 84) when the tree holds
    84 photos a class, the bounds scaled with the photos a class asked for; summing exactly
    to `num_images`. Drawn uniformly between the bounds, then evened out within them."""
    if num_classes < 1 or num_images < num_classes:
        raise ValueError(f"need at least one image per class: {num_images} for {num_classes}.")
    scale = num_images / num_classes / CONTEST_SIZES[1]
    low = max(1, round(CONTEST_SIZES[0] * scale))
    high = max(low, round(CONTEST_SIZES[2] * scale))
    rng = np.random.default_rng(seed)
    sizes = rng.integers(low, high + 1, num_classes)
    delta = num_images - int(sizes.sum())
    step = 1 if delta > 0 else -1
    while delta:  # move the total within the bounds, else past them evenly
        room = sizes < high if step > 0 else sizes > low
        if not room.any():
            room[:] = sizes > 1 if step < 0 else True
        picked = rng.permutation(np.flatnonzero(room))[: abs(delta)]
        sizes[picked] += step
        delta -= step * len(picked)
    return [int(size) for size in sizes]


def _landmark_name(rng: np.random.Generator) -> str:
    syllables = "".join(rng.choice(list(_SYLLABLES), size=int(rng.integers(2, 4))))
    return syllables + str(rng.choice(_KINDS))


def _image_id(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list(_ID_CHARS), size=10))


def plan_tree(
    num_images: int, num_classes: int, seed: int = 0, shape: str = "contest"
) -> list[dict]:
    """Every class: its landmark id, city, folder name and image ids (deterministic)."""
    if shape not in SHAPES:
        raise ValueError(f"shape {shape!r}: one of {', '.join(SHAPES)}.")
    rng = np.random.default_rng(seed)
    if shape == "contest":
        sizes = contest_sizes(num_images, num_classes, seed)
    else:
        sizes = class_sizes(num_images, num_classes, seed)
    classes, names, ids = [], set(), set()
    for landmark_id, size in enumerate(sizes):
        name = _landmark_name(rng)
        while name in names:
            name = _landmark_name(rng)
        names.add(name)
        if shape == "contest":  # <name>_<NNN>, the held-out test's numbers left out
            shoot = max(size, math.ceil(size / (1 - HELD_OUT)))
            numbers = np.sort(rng.choice(np.arange(1, shoot + 1), size, replace=False))
            image_ids = [f"{name}_{number:03d}" for number in numbers]
        else:
            image_ids = []
            while len(image_ids) < size:
                image_id = _image_id(rng)
                if image_id not in ids:
                    ids.add(image_id)
                    image_ids.append(image_id)
        classes.append(
            {
                "landmark_id": landmark_id,
                "city": CITIES[landmark_id % len(CITIES)],
                "folder": name,
                "ids": image_ids,
            }
        )
    return classes


def shots(count: int, landmark_id: int, copies: str) -> list[tuple[int, int]]:
    """(shot, variant) of each of a landmark's `count` photos: variant 0 is a shot as taken,
    a higher variant a near shot of it (a burst); under copies="repeats" the same (shot, 0)
    stands for the same bytes."""
    if copies not in COPIES:
        raise ValueError(f"copies {copies!r}: one of {', '.join(COPIES)}.")
    if copies == "none":
        return [(index, 0) for index in range(count)]
    if copies == "repeats":
        return [(index % REPEATED_SHOTS, 0) for index in range(count)]
    rng = np.random.default_rng((landmark_id, 7))
    taken, shot = [], 0
    while len(taken) < count:
        burst = 1 + int(rng.integers(1, 4)) if rng.random() < 1 / 3 else 1
        taken.extend((shot, variant) for variant in range(burst))
        shot += 1
    return taken[:count]


def _grain(size: tuple[int, int], strength: float, seed: int) -> list[Image.Image]:
    """Sensor-grain fields centred on 128, reused (shifted) by every photo of a process."""
    rng = np.random.default_rng(10_000 + seed)
    width, height = size
    fields = []
    for _ in range(_GRAIN_FIELDS):
        noise = rng.normal(128, strength, (height + 64, width + 64, 3))
        fields.append(Image.fromarray(noise.clip(0, 255).astype(np.uint8)))
    return fields


def render_photo(
    landmark_id: int,
    index: int,
    size: tuple[int, int],
    grain: list[Image.Image],
    quality: int = JPEG_QUALITY,
    variant: int = 0,
) -> bytes:
    """One photo of a landmark as JPEG bytes: the landmark's colour layout seen with this
    photo's framing (crop and zoom), light and shapes, plus grain. A `variant` above 0 is a
    near shot of the same photo: its framing shaken by a pixel or two, other grain."""
    width, height = size
    layout_rng = np.random.default_rng(landmark_id)
    layout = Image.fromarray((layout_rng.random((4, 7, 3)) * 255).astype(np.uint8))
    marks = layout_rng.integers(0, 255, (3, 3))
    rng = np.random.default_rng((landmark_id, index))
    zoom = rng.uniform(0.75, 1.0)
    left, top = rng.uniform(0, 1 - zoom) * 7, rng.uniform(0, 1 - zoom) * 4
    box = (left, top, left + 7 * zoom, top + 4 * zoom)
    image = layout.resize(size, Image.BILINEAR, box=box)
    draw = ImageDraw.Draw(image)
    for k in range(3):  # the landmark's own marks, moved with the framing
        x, y = (0.2 + 0.3 * k - left / 7) * width / zoom, (0.5 - top / 4) * height / zoom
        r = 0.08 * width / zoom
        color = tuple(int(c) for c in marks[k])
        (draw.ellipse if k % 2 else draw.rectangle)([x - r, y - r, x + r, y + r], fill=color)
    for _ in range(4):  # whatever else is in this photo
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        w, h = rng.integers(width // 20, width // 5), rng.integers(height // 20, height // 5)
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        draw.rectangle([x0, y0, x0 + w, y0 + h], fill=color)
    light = int(rng.integers(-25, 26))
    field = grain[int(rng.integers(len(grain)))]
    dx, dy = int(rng.integers(0, 64)), int(rng.integers(0, 64))
    if variant:  # shake and other grain: the same scene a moment later
        shake = np.random.default_rng((landmark_id, index, variant))
        image = image.transform(
            size, Image.AFFINE, (1, 0, int(shake.integers(-2, 3)), 0, 1, int(shake.integers(-2, 3)))
        )
        field = grain[(grain.index(field) + variant) % len(grain)]
        light += int(shake.integers(-3, 4))
    noise = field.crop((dx, dy, dx + width, dy + height))
    image = ImageChops.add(image, noise, scale=1.0, offset=light - 128)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def sideways(jpeg: bytes, orientation: int) -> bytes:
    """The photo stored turned (as a phone sensor holds it) with the EXIF orientation tag that
    says how to turn it back: 6 (turn 90 clockwise to view) or 8 (90 counter-clockwise)."""
    image = Image.open(io.BytesIO(jpeg))
    stored = image.transpose(Image.Transpose.ROTATE_90 if orientation == 6 else Image.ROTATE_270)
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=JPEG_QUALITY)
    data = buffer.getvalue()
    ifd = (
        struct.pack("<H", 1)
        + struct.pack("<HHI", 0x0112, 3, 1)
        + struct.pack("<HH", orientation, 0)
    )
    tiff = b"II" + struct.pack("<HI", 42, 8) + ifd + struct.pack("<I", 0)
    app1 = b"Exif\x00\x00" + tiff
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:]


def _write_class(job) -> int:
    images_root, cls, size, grain_strength, worker, copies = job
    grain = _grain_cache(size, grain_strength, worker)
    folder = os.path.join(images_root, "train", cls["city"], cls["folder"])
    os.makedirs(folder, exist_ok=True)
    written, repeated = 0, {}  # copies="repeats": each shot's bytes, rendered once
    taken = shots(len(cls["ids"]), cls["landmark_id"], copies)
    for index, (image_id, shot) in enumerate(zip(cls["ids"], taken, strict=True)):
        path = os.path.join(folder, f"{image_id}.jpg")
        if os.path.exists(path):
            continue
        data = repeated.get(shot)
        if data is None:
            data = render_photo(cls["landmark_id"], shot[0], size, grain, variant=shot[1])
            photo = index if copies == "none" else shot[0]
            if (cls["landmark_id"] * 7 + photo) % SIDEWAYS_EVERY == 0:
                data = sideways(data, 6 if photo % 2 else 8)
            if copies == "repeats":
                repeated[shot] = data
        with open(path + ".part", "wb") as f:
            f.write(data)
        os.replace(path + ".part", path)
        written += 1
    return written


_GRAIN: dict = {}


def _grain_cache(size, strength, worker):
    key = (size, strength)
    if key not in _GRAIN:
        _GRAIN[key] = _grain(size, strength, worker)
    return _GRAIN[key]


def write_contest_tree(
    root: str,
    num_images: int = CONTEST_PHOTOS,
    num_classes: int = CONTEST_CLASSES,
    size: tuple[int, int] = (960, 540),
    grain: float = 9.0,
    workers: int | None = None,
    seed: int = 0,
    shape: str = "contest",
    copies: str = "none",
) -> dict[str, str]:
    """Writes (or completes) a contest-shaped tree under `root`; returns its paths.

    Returns:
      {'images': root/images, 'labels_csv': root/train.csv}; the tree is
      images/train/<city>/<landmark>/<id>.jpg.
    """
    images_root = os.path.join(root, "images")
    labels_csv = os.path.join(root, "train.csv")
    done = os.path.join(
        root, f".complete-{num_images}-{num_classes}-{size[0]}x{size[1]}-{shape}-{copies}"
    )
    paths = {"images": images_root, "labels_csv": labels_csv}
    if os.path.exists(done):
        return paths
    classes = plan_tree(num_images, num_classes, seed, shape)
    shots(1, 0, copies)  # a wrong density fails here, not in the workers
    jobs = [(images_root, cls, tuple(size), grain, i, copies) for i, cls in enumerate(classes)]
    jobs.sort(key=lambda job: -len(job[1]["ids"]))  # big classes first: even load at the end
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        for job in jobs:
            _write_class(job)
    else:
        with ProcessPoolExecutor(workers) as pool:
            for _ in pool.map(_write_class, jobs, chunksize=4):
                pass
    os.makedirs(root, exist_ok=True)
    with open(labels_csv, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "landmark_id"])
        for cls in classes:
            writer.writerows((image_id, cls["landmark_id"]) for image_id in cls["ids"])
    open(done, "w").close()
    return paths


def expected_counts(
    num_images: int, num_classes: int, seed: int = 0, shape: str = "contest"
) -> dict[int, int]:
    """{landmark_id: images} of the tree write_contest_tree writes with these arguments."""
    classes = plan_tree(num_images, num_classes, seed, shape)
    return {c["landmark_id"]: len(c["ids"]) for c in classes}


def median(values: list[int]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


if __name__ == "__main__":  # a quick look: sizes of the default contest shape
    sizes = contest_sizes(CONTEST_PHOTOS, CONTEST_CLASSES)
    print(min(sizes), median(sizes), max(sizes), sum(sizes), math.fsum(sizes) / len(sizes))
