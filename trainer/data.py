"""The trainer's tf.data input: ImageExampleGen's examples -> (image batch, label batch).

Built on the Examples contract's reader and decoder (components/examples), so users, the
report, serving and the model read the data the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from imgtfx.components.examples import reader
from imgtfx.components.examples.conversion_report import read_report
from imgtfx.components.examples.decode import decode_image
from imgtfx.components.examples.layout import examples_uri_of
from imgtfx.components.examples.vocabulary import read_label_names, read_vocabulary
from imgtfx.trainer.options import TrainerOptions


def vocabulary_of(file_patterns: Sequence[str]) -> list[str]:
    return read_vocabulary(examples_uri_of(file_patterns[0]))


def label_names_of(file_patterns: Sequence[str]) -> list[str]:
    """Display names aligned with the vocabulary (the labels where the examples have none)."""
    return read_label_names(examples_uri_of(file_patterns[0]))


def class_counts(file_patterns: Sequence[str], split: str = "train") -> dict[str, int]:
    classes = read_report(examples_uri_of(file_patterns[0])).classes
    return {label: counts.get(split, 0) for label, counts in classes.items()}


def augment(images: tf.Tensor, options: TrainerOptions) -> tf.Tensor:
    """Random zoom/shift, contrast and brightness (and flips when asked) on a float batch."""
    size = options.image_size
    batch = tf.shape(images)[0]
    # Random crop of 80-100% of the side, resized back: zoom and shift in one step.
    scale = tf.random.uniform([batch, 1], 0.8, 1.0)
    offset = tf.random.uniform([batch, 2], 0.0, 1.0) * (1.0 - scale)
    boxes = tf.concat([offset, offset + scale], axis=1)
    images = tf.image.crop_and_resize(images, boxes, tf.range(batch), [size, size])
    if options.flip:
        images = tf.image.random_flip_left_right(images)
    images = tf.image.random_contrast(images, 0.8, 1.2)
    images = images + tf.random.uniform([batch, 1, 1, 1], -20.0, 20.0)
    return tf.clip_by_value(images, 0.0, 255.0)


def make_dataset(
    file_patterns: str | Sequence[str],
    options: TrainerOptions,
    training: bool,
    repeat: bool = True,
) -> tf.data.Dataset:
    """Batched (float32 RGB images in [0, 255], int64 labels); shuffled and augmented when
    training. Files are read in parallel and decoded in parallel, with prefetch."""
    features = options.features
    dataset = reader.read_examples(file_patterns, features, keys=[features.image, features.label])
    if training:
        dataset = dataset.shuffle(10 * options.batch_size + 1000, reshuffle_each_iteration=True)
    dataset = dataset.map(
        lambda ex: (
            decode_image(ex[features.image], options.image_size),
            ex[features.label],
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not training,
    )
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(options.batch_size, drop_remainder=training)
    if training and options.augment:
        dataset = dataset.map(
            lambda x, y: (augment(x, options), y), num_parallel_calls=tf.data.AUTOTUNE
        )
    return dataset.prefetch(tf.data.AUTOTUNE)
