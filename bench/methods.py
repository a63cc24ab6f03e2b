"""The methods bench.py measures, each run in its own process (`bench.py --measure NAME`):
conversions of a contest-shaped tree (imgtfx convert, the tutorial's way, plain writers, the
decode bounds), the stages of convert one at a time, and input pipelines over the result.
"""

from __future__ import annotations

import os
import tempfile
import time

IMAGE_SIZE = 64
BATCH = 32


# ---------------------------------------------------------------------------------------------
# The tree.


def make_tree(root: str, count: int, size: tuple[int, int] = (960, 540)) -> dict:
    """A contest-shaped tree of `count` photos (bench/contest_data.py: 960x540 JPEGs of about
    110 KB under train/<city>/<landmark>/<id>.jpg, 84 a landmark on average, train.csv mapping
    `<landmark name>_<NNN>` ids to int landmark ids), written once and reused."""
    from bench.contest_data import CONTEST_SIZES, write_contest_tree

    return write_contest_tree(root, count, max(2, round(count / CONTEST_SIZES[1])), size=size)


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
    from imgtfx.cli import _beam_args
    from imgtfx.components.image_example_gen import ImageOptions
    from imgtfx.components.image_example_gen.convert import convert

    report = convert(
        tree["images"],
        out,
        ImageOptions(labels_csv=tree["labels_csv"]),
        beam_pipeline_args=_beam_args([]),
    )
    return report.examples


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


def convert_plain(
    tree: dict,
    out: str,
    shards: int = 20,
    gzip_level: int | None = None,
    compression: str = "GZIP",
) -> int:
    """Sharded TFRecords, labels from a dict, no decoding: the practical limit.
    gzip_level None is TFRecordWriter(options="GZIP") as users write it (zlib's default)."""
    import tensorflow as tf

    os.makedirs(out, exist_ok=True)
    with open(tree["labels_csv"], encoding="utf-8") as f:
        next(f)
        labels = dict(line.strip().split(",") for line in f)
    options = tf.io.TFRecordOptions(compression_type=compression, compression_level=gzip_level)
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


def convert_plain_uncompressed(tree: dict, out: str) -> int:
    """The plain writer without compression: the issue's "no decode, no compression" limit."""
    return convert_plain(tree, out, compression="")


def decode_bound(tree: dict, out: str) -> int:
    """The physical limit of a validating converter: every image read and its whole entropy
    stream decoded (PIL's reduced-scale JPEG decode, as the check does), on a thread per core,
    and nothing else: no labels, no checks of the header, no writes."""
    import concurrent.futures
    import io

    from PIL import Image

    def decode(path: str) -> None:
        with open(path, "rb") as f:
            image = Image.open(io.BytesIO(f.read()))
        image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()

    paths = list_images(tree["images"])
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for _ in pool.map(decode, paths):
            pass
    return len(paths)


def decode_write_bound(tree: dict, out: str) -> int:
    """The decode bound plus the one thing every converter must add: writing each image's
    bytes out (one file, in path order, from the main thread while the threads decode). The
    decode bound leaves the output out, so no converter can reach it; this one can be."""
    import concurrent.futures
    import io

    from PIL import Image

    def decode(path: str) -> bytes:
        with open(path, "rb") as f:
            data = f.read()
        image = Image.open(io.BytesIO(data))
        image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
        return data

    paths = list_images(tree["images"])
    os.makedirs(out, exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        with open(os.path.join(out, "images.bin"), "wb") as f:
            for data in pool.map(decode, paths):
                f.write(data)
    return len(paths)


def _orientation(path: str) -> int:
    from PIL import Image

    from imgtfx.components import image_files

    with Image.open(path) as image:
        return image_files._orientation(image)


CONVERSIONS = {
    "imgtfx_convert": convert_imgtfx,
    "tutorial_per_image": convert_tutorial,
    "plain_writer_uncompressed": convert_plain_uncompressed,
    "plain_writer_gzip_level0": convert_plain_stored,
    "read_all_bytes": read_all,
    "decode_bound": decode_bound,
    "decode_write_bound": decode_write_bound,
}


def profile_stages(tree: dict, out: str) -> dict:
    """Seconds of each stage of convert alone, on this tree: {stage: seconds}."""
    import concurrent.futures

    import apache_beam as beam

    from imgtfx.cli import _beam_args
    from imgtfx.components import file_io, image_files
    from imgtfx.components.image_example_gen import example_bytes, plan, shards
    from imgtfx.components.image_example_gen.component import ImageExampleGen
    from imgtfx.components.image_example_gen.convert import serialized_exec_properties
    from imgtfx.components.image_example_gen.options import ImageOptions
    from imgtfx.components.image_example_gen.records import LabeledImage
    from imgtfx.components.image_example_gen.tfrecord import GzipRecordWriter
    from imgtfx.components.image_example_gen.tree import FoundFile

    options = ImageOptions(labels_csv=tree["labels_csv"])
    component = ImageExampleGen(input_base=tree["images"], options=options)
    input_config, output_config, options = ImageOptions.from_exec_properties(
        serialized_exec_properties(component)
    )
    seconds = {}

    start = time.perf_counter()  # the plan on paths, through the grouping into shards
    with beam.Pipeline(argv=_beam_args([])) as pipeline:
        runs = tempfile.mkdtemp(prefix="bench-plan-")
        planned = plan.plan_images(
            pipeline, tree["images"], input_config, output_config, options, runs
        )
        _ = (
            planned.records
            | beam.Map(
                shards._shard_key,
                beam.pvalue.AsSingleton(planned.split_counts),
                options.images_per_shard,
            )
            | beam.GroupByKey()
            | beam.combiners.Count.Globally()
        )
    seconds["plan_on_paths"] = time.perf_counter() - start

    def check_all(paths: list[str]) -> float:
        """Seconds to check `paths` on a thread per core, as convert's shard writer does."""
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            for _ in pool.map(
                lambda p: image_files.check_image(file_io.read_bytes(p), options.max_pixels, True),
                paths,
            ):
                pass
        return time.perf_counter() - start

    paths = list_images(tree["images"])
    seconds["decode_check"] = check_all(paths)  # the decode check alone
    # Part of the decode check: photos stored sideways (1% of the tree) are decoded at full
    # size, turned upright and encoded again, which the decode bound does not do.
    seconds["of_which_turning_sideways_photos_upright"] = check_all(
        [p for p in paths if _orientation(p) != 1]
    )
    seconds["of_which_fingerprint_and_digest"] = _fingerprint_seconds(paths)

    start = time.perf_counter()  # building, serializing and writing examples, nothing else
    record = LabeledImage(FoundFile("train", "a/b.jpg", ""), "b", "x", "train")
    os.makedirs(out, exist_ok=True)
    with GzipRecordWriter(os.path.join(out, "w.gz")) as writer:  # as the shard writer
        for path in paths:
            info = image_files.ImageInfo(file_io.read_bytes(path), "jpeg", "jpeg", 480, 640, 3)
            writer.write(example_bytes.serialize_example(record, info, 0, options.features))
    seconds["build_and_write"] = time.perf_counter() - start

    start = time.perf_counter()
    convert_imgtfx(tree, os.path.join(out, "convert"))
    seconds["whole_convert"] = time.perf_counter() - start
    return seconds


# ---------------------------------------------------------------------------------------------
# Input pipelines (each runs in its own process).


def input_trainer(tree: dict, converted: str) -> int:
    from imgtfx.components.examples.layout import split_files
    from imgtfx.trainer import data
    from imgtfx.trainer.options import TrainerOptions

    options = TrainerOptions(image_size=IMAGE_SIZE, batch_size=BATCH, augment=False)
    patterns = [split_files(converted, s) for s in ("train", "eval")]
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


def _fingerprint_seconds(paths: list[str]) -> float:
    """Seconds the check spends on the fingerprint and the exact digest of `paths`, on a
    thread per core as in the check: each photo decoded as the check decodes it first (not
    timed), then only those two timed, over the same threads."""
    import concurrent.futures
    import io

    from PIL import Image

    from imgtfx.components import fingerprint

    def drafted(path: str):
        with open(path, "rb") as f:
            data = f.read()
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        image.draft(image.mode, (max(width // 8, 32), max(height // 8, 32)))
        image.load()
        return data, image

    def identify(item):
        data, image = item
        return fingerprint.fingerprint(image), fingerprint.exact_digest(data)

    seconds = 0.0
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for first in range(0, len(paths), 256):  # a chunk decoded at a time: memory stays small
            decoded = list(pool.map(drafted, paths[first : first + 256]))
            start = time.perf_counter()
            for _ in pool.map(identify, decoded):
                pass
            seconds += time.perf_counter() - start
    return seconds
