"""Reading ImageExampleGen's output back with tf.data: decoded images and labels.

The trainer's input pipeline is built on these functions, so what a user inspects is what the
model sees.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import tensorflow as tf

from components.image_example_gen.options import FeatureNames


def split_pattern(examples_uri: str, split: str) -> str:
    """The file pattern of one split of an Examples artifact (or of `imgtfx convert --output`)."""
    return os.path.join(examples_uri, f"Split-{split}", "*.gz")


def feature_spec(features: FeatureNames = FeatureNames()) -> dict[str, tf.io.FixedLenFeature]:
    """Parsing spec of every feature ImageExampleGen writes."""
    spec = {
        name: tf.io.FixedLenFeature([], tf.string)
        for name in (features.image, features.label_name, features.id, features.path)
    }
    spec.update(
        {
            name: tf.io.FixedLenFeature([], tf.int64)
            for name in (features.label, features.height, features.width, features.channels)
        }
    )
    spec[features.format] = tf.io.FixedLenFeature([], tf.string)
    spec[features.source_format] = tf.io.FixedLenFeature([], tf.string, default_value="")
    return spec


def decode_image(encoded: tf.Tensor, image_size: int | None = None) -> tf.Tensor:
    """Encoded JPEG/PNG/GIF/BMP bytes -> uint8 RGB (1/3/4 channels and animations handled);
    resized to image_size x image_size (float32 in [0, 255]) when a size is given.

    With a size, JPEGs are decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps the
    shorter side at least image_size, then resized with antialiasing: the scaled decode does the
    heavy downsampling far cheaper than a full decode. Training and serving share this function.
    """
    if not image_size:
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return image

    def jpeg(ratio: int):
        return lambda: tf.io.decode_jpeg(encoded, channels=3, ratio=ratio)

    def other():
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return image

    is_jpeg = tf.io.is_jpeg(encoded)
    shorter = tf.cond(
        is_jpeg,
        lambda: tf.reduce_min(tf.io.extract_jpeg_shape(encoded)[:2]),
        lambda: tf.constant(0, tf.int32),
    )
    # Branch 1 + k decodes at ratio 2**k: the largest k with shorter / 2**k >= image_size.
    steps = tf.reduce_sum(tf.cast(shorter // tf.constant([2, 4, 8]) >= image_size, tf.int32))
    branch = tf.where(is_jpeg, 1 + steps, 0)
    image = tf.switch_case(branch, [other, jpeg(1), jpeg(2), jpeg(4), jpeg(8)])
    image.set_shape([None, None, 3])
    return tf.image.resize(image, [image_size, image_size], antialias=True)


def read_examples(
    file_patterns: str | Sequence[str],
    features: FeatureNames = FeatureNames(),
    compression: str = "GZIP",
    keys: Sequence[str] | None = None,
) -> tf.data.Dataset:
    """Parsed examples (dicts of tensors, all features or `keys`) from TFRecord file patterns;
    files are read in parallel, interleaved in a fixed order."""
    if isinstance(file_patterns, str):
        file_patterns = [file_patterns]
    files = sorted(f for p in file_patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise ValueError(f"no TFRecord files match {list(file_patterns)}.")
    spec = feature_spec(features)
    if keys is not None:  # parsing only what is needed saves copying the rest
        spec = {k: spec[k] for k in keys}
    records = tf.data.TFRecordDataset(
        files, compression_type=compression, num_parallel_reads=min(len(files), 8)
    )
    return records.map(
        lambda record: tf.io.parse_single_example(record, spec),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def read_images(
    file_patterns: str | Sequence[str],
    features: FeatureNames = FeatureNames(),
    image_size: int | None = None,
) -> tf.data.Dataset:
    """(image, label) pairs: decoded RGB images and label indices into labels.txt."""
    return read_examples(file_patterns, features).map(
        lambda ex: (decode_image(ex[features.image], image_size), ex[features.label]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
