"""ImageExampleGen's examples read back with tf.data: parsed features, decoded images, labels.

The trainer's input pipeline and the report are built on these functions, so what a user
inspects is what the model sees.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from imgtfx.components.examples.decode import decode_image
from imgtfx.components.examples.features import FeatureNames


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
    spec[features.orientation] = tf.io.FixedLenFeature([], tf.int64, default_value=1)
    spec[features.image_hash] = tf.io.FixedLenFeature([], tf.string, default_value="")
    return spec


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
