"""Benchmarks: conversion and input pipeline, measured side by side in one run on one tree.

  python bench/bench.py [--images 20000] [--scaling 2000,20000] [--out bench/results]

1. Conversion (images/s, peak RSS of the whole process tree):
   (a) `imgtfx convert` (full integrity check);
   (b) the tutorial's method: one TFRecord file per image, tf.image.decode_jpeg per image,
       labels looked up by a pandas row loop;
   (c) a plain sharded TFRecordWriter loop, no validation (the practical limit);
   (d) reading every byte (the I/O limit).
2. Input pipeline (images/s decoded, resized, batched): the trainer's tf.data input on our
   examples; keras image_dataset_from_directory on the raw tree; tf.data over (b)'s files.
3. Scaling: (a) at each size of --scaling.

Each measurement runs in its own process (`python bench/bench.py --measure NAME ...`), so peak
memory is that method's alone. The tree is generated once (realistic 640x480 JPEGs of about
70 KB, Korean folder names, a labels CSV) and read from the page cache by every method alike.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")

CITIES = ["서울", "부산", "경주", "전주"]
LANDMARKS_PER_CITY = 5
IMAGE_SIZE = 64
BATCH = 32


# ---------------------------------------------------------------------------------------------
# The tree.


def _photo(seed: int) -> bytes:
    """A 640x480 JPEG with photo-like content (gradients, shapes, grain): about 70 KB."""
    import io

    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    h, w = 480, 640
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack(
        [
            127
            + 100
            * np.sin(x / rng.uniform(40, 200) + rng.uniform(0, 6))
            * np.cos(y / rng.uniform(40, 200)),
            127 + 100 * np.cos((x + y) / rng.uniform(60, 300)),
            127 + 100 * np.sin(y / rng.uniform(30, 150) + rng.uniform(0, 6)),
        ],
        axis=-1,
    )
    image = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(25):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        box = [x0, y0, x0 + rng.integers(20, 200), y0 + rng.integers(20, 200)]
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=color)
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    grain = rng.normal(0, 9, (h, w, 3))
    image = Image.fromarray((np.asarray(image, np.float32) + grain).clip(0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def make_tree(root: str, count: int, unique: int = 100) -> dict:
    """`count` images under root/images/train/<city>/<landmark>/<id>.jpg and root/train.csv.
    `unique` distinct photos are reused round-robin (what is measured is per-file work)."""
    import hashlib

    images = os.path.join(root, "images")
    csv_path = os.path.join(root, "train.csv")
    done = os.path.join(root, f".done-{count}")
    if os.path.exists(done):
        return {"images": images, "labels_csv": csv_path}
    photos = [_photo(i) for i in range(unique)]
    rows = []
    for i in range(count):
        city = CITIES[i % len(CITIES)]
        landmark_index = (i // len(CITIES)) % LANDMARKS_PER_CITY
        label = CITIES.index(city) * LANDMARKS_PER_CITY + landmark_index
        folder = os.path.join(images, "train", city, f"명소{landmark_index}")
        os.makedirs(folder, exist_ok=True)
        image_id = hashlib.sha1(str(i).encode()).hexdigest()[:16]
        with open(os.path.join(folder, image_id + ".jpg"), "wb") as f:
            f.write(photos[i % unique])
        rows.append(f"{image_id},{label}\n")
    with open(csv_path, "w", encoding="utf-8") as f:
        f.write("id,landmark_id\n" + "".join(rows))
    open(done, "w").close()
    return {"images": images, "labels_csv": csv_path}


def list_images(images: str) -> list[str]:
    return sorted(
        os.path.join(folder, name)
        for folder, _, names in os.walk(images)
        for name in names
        if name.endswith(".jpg")
    )


# ---------------------------------------------------------------------------------------------
# Conversion methods (each runs in its own process).


def convert_imgtfx(tree: dict, out: str) -> int:
    from components.image_example_gen import ImageOptions
    from components.image_example_gen.convert import convert
    from imgtfx.cli import _beam_args

    report = convert(
        tree["images"],
        out,
        ImageOptions(labels_csv=tree["labels_csv"]),
        beam_pipeline_args=_beam_args([]),
    )
    return report["examples"]


def convert_tutorial(tree: dict, out: str) -> int:
    """The original tutorial: a pandas row loop, decode_jpeg per image, a file per image."""
    import pandas as pd
    import tensorflow as tf

    os.makedirs(out, exist_ok=True)
    df = pd.read_csv(tree["labels_csv"], dtype=str)
    paths = {os.path.splitext(os.path.basename(p))[0]: p for p in list_images(tree["images"])}
    count = 0
    for _, row in df.iterrows():
        path = paths[row["id"]]
        raw = tf.io.read_file(path)
        image = tf.image.decode_jpeg(raw)
        feature = {
            "image_raw": tf.train.Feature(bytes_list=tf.train.BytesList(value=[raw.numpy()])),
            "landmark_id": tf.train.Feature(
                int64_list=tf.train.Int64List(value=[int(row["landmark_id"])])
            ),
            "height": tf.train.Feature(int64_list=tf.train.Int64List(value=[image.shape[0]])),
            "width": tf.train.Feature(int64_list=tf.train.Int64List(value=[image.shape[1]])),
        }
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        with tf.io.TFRecordWriter(os.path.join(out, f"{row['id']}.tfrecord")) as writer:
            writer.write(example.SerializeToString())
        count += 1
    return count


def convert_plain(tree: dict, out: str, shards: int = 20, gzip_level: int | None = None) -> int:
    """Sharded gzipped TFRecords, labels from a dict, no decoding: the practical limit.
    gzip_level None is TFRecordWriter(options="GZIP") as users write it (zlib's default)."""
    import tensorflow as tf

    os.makedirs(out, exist_ok=True)
    with open(tree["labels_csv"], encoding="utf-8") as f:
        next(f)
        labels = dict(line.strip().split(",") for line in f)
    options = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=gzip_level)
    writers = [
        tf.io.TFRecordWriter(os.path.join(out, f"data-{i:05d}.gz"), options=options)
        for i in range(shards)
    ]
    count = 0
    for i, path in enumerate(list_images(tree["images"])):
        with open(path, "rb") as f:
            raw = f.read()
        example = tf.train.Example()
        example.features.feature["image_raw"].bytes_list.value.append(raw)
        label = int(labels[os.path.splitext(os.path.basename(path))[0]])
        example.features.feature["label"].int64_list.value.append(label)
        writers[i % shards].write(example.SerializeToString())
        count += 1
    for writer in writers:
        writer.close()
    return count


def read_all(tree: dict, out: str) -> int:
    count = 0
    for path in list_images(tree["images"]):
        with open(path, "rb") as f:
            f.read()
        count += 1
    return count


def convert_plain_stored(tree: dict, out: str) -> int:
    """The plain writer with gzip level 0, as imgtfx writes: the limit for the same output."""
    return convert_plain(tree, out, gzip_level=0)


CONVERSIONS = {
    "imgtfx_convert": convert_imgtfx,
    "tutorial_per_image": convert_tutorial,
    "plain_sharded_writer": convert_plain,
    "plain_writer_gzip_level0": convert_plain_stored,
    "read_all_bytes": read_all,
}


# ---------------------------------------------------------------------------------------------
# Input pipelines (each runs in its own process).


def input_trainer(tree: dict, converted: str) -> int:
    from components.image_example_gen import reader
    from trainer import data
    from trainer.options import TrainerOptions

    options = TrainerOptions(image_size=IMAGE_SIZE, batch_size=BATCH, augment=False)
    patterns = [reader.split_pattern(converted, s) for s in ("train", "eval")]
    dataset = data.make_dataset(patterns, options, training=False, repeat=False)
    return sum(int(images.shape[0]) for images, _ in dataset)


def input_image_dataset_from_directory(tree: dict, converted: str) -> int:
    import tf_keras as keras

    dataset = keras.utils.image_dataset_from_directory(
        os.path.join(tree["images"], "train"),
        image_size=(IMAGE_SIZE, IMAGE_SIZE),
        batch_size=BATCH,
        shuffle=False,
    )
    import tensorflow as tf

    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    return sum(int(images.shape[0]) for images, _ in dataset)


def input_per_image_files(tree: dict, converted: str) -> int:
    import tensorflow as tf

    files = tf.io.gfile.glob(os.path.join(converted, "*.tfrecord"))
    spec = {
        "image_raw": tf.io.FixedLenFeature([], tf.string),
        "landmark_id": tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        image = tf.image.resize(
            tf.io.decode_jpeg(example["image_raw"], channels=3), [IMAGE_SIZE] * 2
        )
        return image, example["landmark_id"]

    dataset = (
        tf.data.TFRecordDataset(files, num_parallel_reads=tf.data.AUTOTUNE)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(BATCH)
        .prefetch(tf.data.AUTOTUNE)
    )
    return sum(int(images.shape[0]) for images, _ in dataset)


INPUTS = {
    "trainer_input_on_examples": input_trainer,
    "image_dataset_from_directory": input_image_dataset_from_directory,
    "tfdata_on_per_image_files": input_per_image_files,
}


# ---------------------------------------------------------------------------------------------
# Measuring.


def measure(name: str, tree: dict, out: str) -> dict:
    """Runs one method in a child process; wall time and peak RSS of its whole process tree."""
    import psutil

    argv = [sys.executable, __file__, "--measure", name, "--tree", json.dumps(tree), "--to", out]
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        process = psutil.Process(child.pid)
        while child.poll() is None:
            try:
                tree_rss = sum(
                    p.memory_info().rss for p in [process, *process.children(recursive=True)]
                )
                peak[0] = max(peak[0], tree_rss)
            except psutil.Error:
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = child.communicate()
    seconds = time.perf_counter() - start
    sampler.join()
    if child.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    # Start-up (imports) is timed apart, so throughput is the work's own.
    work = result["seconds"]
    return {
        "method": name,
        "images": result["count"],
        "seconds": round(work, 2),
        "process_seconds": round(seconds, 2),
        "images_per_s": round(result["count"] / work, 1),
        "peak_rss_mib": round(peak[0] / 2**20, 1),
    }


def run_one(name: str, tree: dict, out: str) -> None:
    fn = {**CONVERSIONS, **INPUTS}[name]
    if name in CONVERSIONS:
        # Imports outside the timed region, as a long-running job would have them.
        import tensorflow  # noqa: F401

        if name == "imgtfx_convert":
            import components.image_example_gen.convert  # noqa: F401
    if name in INPUTS:
        # Input pipelines serve many epochs: time the second pass, as training sees it
        # (the first pays one-off start-up of TensorFlow's thread pools and autotuning).
        fn(tree, out)
    start = time.perf_counter()
    count = fn(tree, out)
    print(json.dumps({"count": count, "seconds": time.perf_counter() - start}))


def table(rows: list[dict], title: str) -> str:
    lines = [
        title,
        f"  {'method':32} {'images':>7} {'seconds':>8} {'img/s':>8} {'peak RSS MiB':>13}",
    ]
    for r in rows:
        lines.append(
            f"  {r['method']:32} {r['images']:>7} {r['seconds']:>8} {r['images_per_s']:>8} "
            f"{r['peak_rss_mib']:>13}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--scaling", default="2000,20000", help="sizes for the scaling run")
    parser.add_argument("--work", default=os.path.join(REPO, "bench", "work"))
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--to", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        run_one(args.measure, json.loads(args.tree), args.to)
        return 0

    import shutil

    results: dict = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "images": args.images,
    }
    tree = make_tree(os.path.join(args.work, f"tree-{args.images}"), args.images)
    sizes = [os.path.getsize(p) for p in list_images(tree["images"])[:500]]
    results["mean_jpeg_kib"] = round(sum(sizes) / len(sizes) / 1024, 1)
    outputs = {name: os.path.join(args.work, "out", name) for name in CONVERSIONS}
    shutil.rmtree(os.path.join(args.work, "out"), ignore_errors=True)

    conversion = [measure(name, tree, outputs[name]) for name in CONVERSIONS]
    print(
        table(conversion, f"\nConversion of {args.images} JPEGs ({results['mean_jpeg_kib']} KiB):")
    )
    inputs = [
        measure("trainer_input_on_examples", tree, outputs["imgtfx_convert"]),
        measure("image_dataset_from_directory", tree, ""),
        measure("tfdata_on_per_image_files", tree, outputs["tutorial_per_image"]),
    ]
    print(table(inputs, f"\nInput pipeline, decode + resize to {IMAGE_SIZE} + batch {BATCH}:"))

    scaling = []
    for size in [int(s) for s in args.scaling.split(",") if s]:
        if size == args.images:
            row = dict(conversion[0])
        else:
            small = make_tree(os.path.join(args.work, f"tree-{size}"), size)
            out = os.path.join(args.work, "out", f"scaling-{size}")
            row = measure("imgtfx_convert", small, out)
        row["method"] = f"imgtfx_convert@{size}"
        scaling.append(row)
    print(table(scaling, "\nScaling of imgtfx convert:"))

    by = {r["method"]: r for r in conversion + inputs}
    ours = by["imgtfx_convert"]["images_per_s"]
    ratios = {
        "convert_vs_tutorial": round(ours / by["tutorial_per_image"]["images_per_s"], 2),
        "convert_vs_plain_writer": round(ours / by["plain_sharded_writer"]["images_per_s"], 2),
        "convert_vs_plain_writer_gzip_level0": round(
            ours / by["plain_writer_gzip_level0"]["images_per_s"], 2
        ),
        "convert_vs_read_all": round(ours / by["read_all_bytes"]["images_per_s"], 2),
        "trainer_input_vs_image_dataset_from_directory": round(
            by["trainer_input_on_examples"]["images_per_s"]
            / by["image_dataset_from_directory"]["images_per_s"],
            2,
        ),
        "trainer_input_vs_per_image_files": round(
            by["trainer_input_on_examples"]["images_per_s"]
            / by["tfdata_on_per_image_files"]["images_per_s"],
            2,
        ),
    }
    if len(scaling) >= 2:
        first, last = scaling[0], scaling[-1]
        ratios["scaling_time_per_image_ratio"] = round(
            (last["seconds"] / last["images"]) / (first["seconds"] / first["images"]), 2
        )
        ratios["scaling_peak_rss_ratio"] = round(last["peak_rss_mib"] / first["peak_rss_mib"], 2)
    targets = {
        "convert_vs_tutorial >= 4": ratios["convert_vs_tutorial"] >= 4,
        "convert_vs_plain_writer >= 0.5": ratios["convert_vs_plain_writer"] >= 0.5,
        "convert peak RSS < 1024 MiB": by["imgtfx_convert"]["peak_rss_mib"] < 1024,
        "trainer_input_vs_image_dataset_from_directory >= 1": ratios[
            "trainer_input_vs_image_dataset_from_directory"
        ]
        >= 1,
        "trainer_input_vs_per_image_files >= 2": ratios["trainer_input_vs_per_image_files"] >= 2,
    }
    print("\nRatios (same run):")
    for key, value in ratios.items():
        print(f"  {key:48} {value}")
    print("\nTargets:")
    for key, ok in targets.items():
        print(f"  {'met' if ok else 'NOT met':8} {key}")
    results.update(
        conversion=conversion,
        input_pipeline=inputs,
        scaling=scaling,
        ratios=ratios,
        targets=targets,
    )
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{datetime.date.today().isoformat()}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False, indent=2)
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
