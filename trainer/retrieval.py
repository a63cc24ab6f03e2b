"""Recognition by retrieval: a query's nearest training photos and the label they vote for, in
stock TensorFlow ops, so that a SavedModel holding the index serves them in TF Serving, TFMA and
`imgtfx predict` alike (issue 41 builds the index into the exported model).

The index is every train photo's embedding, L2-normalised and stored in float16 (88,102 contest
photos x 512 dimensions: 90 MB); the search is exact, one matrix product and a top-k, as the
Google Landmark Recognition 2020 winner searched its training set. Each label's score is the
sum of the similarities of its photos among the top k (that winner's vote), divided by k so
that the confidence lies in [0, 1] whatever k is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf


class Index(NamedTuple):
    """The train photos a model searches: their embeddings (float16, unit rows), label indexes
    and ids, aligned."""

    embeddings: np.ndarray  # [n, d] float16
    labels: np.ndarray  # [n] int64, indexes into the vocabulary
    ids: np.ndarray  # [n] bytes


def build_index(embedder, file_patterns: Sequence[str], options, batch_size: int = 256) -> Index:
    """Every example of `file_patterns` (the train split only, so eval stays honest) through
    `embedder` (a Keras model of images -> features), L2-normalised and kept in float16, with
    its label and id; read in file order, as the examples were written."""
    from imgtfx.components.examples import reader
    from imgtfx.components.examples.decode import decode_image

    names = options.features
    dataset = (
        reader.read_examples(file_patterns, names, keys=[names.image, names.label, names.id])
        .map(
            lambda ex: (
                decode_image(ex[names.image], options.image_size),
                ex[names.label],
                ex[names.id],
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    embeddings, labels, ids = [], [], []
    for images, label, image_id in dataset:
        features = tf.cast(embedder(images, training=False), tf.float32)
        embeddings.append(tf.math.l2_normalize(features, axis=-1).numpy().astype(np.float16))
        labels.append(label.numpy().astype(np.int64))
        ids.append(image_id.numpy())
    if not embeddings:
        raise ValueError("no train examples to build the neighbour index from.")
    return Index(np.concatenate(embeddings), np.concatenate(labels), np.concatenate(ids))


def nearest(queries: tf.Tensor, index: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """(similarities [q, k], positions [q, k]) of each query's k nearest index rows, nearest
    first: cosine similarity of the L2-normalised query with rows normalised already (float16
    or float32), computed in float32. k is capped at the index's size."""
    queries = tf.math.l2_normalize(tf.cast(queries, tf.float32), axis=-1)
    similarities = tf.matmul(queries, tf.cast(index, tf.float32), transpose_b=True)
    k = tf.minimum(k, tf.shape(index)[0])
    return tf.math.top_k(similarities, k=k, sorted=True)


def label_scores(similarities: tf.Tensor, labels: tf.Tensor, num_classes) -> tf.Tensor:
    """[q, classes]: for each label, the sum of the similarities of its photos among each
    query's top k (`labels` [q, k] the neighbours' label indexes), over k, in [0, 1]; a
    neighbour less similar than orthogonal adds nothing."""
    k = tf.cast(tf.shape(similarities)[-1], tf.float32)
    weights = tf.maximum(tf.cast(similarities, tf.float32), 0.0)
    scores = tf.reduce_sum(
        tf.one_hot(tf.cast(labels, tf.int64), tf.cast(num_classes, tf.int32)) * weights[..., None],
        axis=1,
    )
    return tf.clip_by_value(scores / tf.maximum(k, 1.0), 0.0, 1.0)


# The classifier's share in the neighbours' scores: it only breaks their ties, and names the
# label of a photo none of whose neighbours is similar at all (a vote of zeros).
TIE_BREAK = 1e-6


def scores_by(method: str, probabilities: tf.Tensor, neighbour_scores: tf.Tensor) -> tf.Tensor:
    """Each class's score under `method` (TrainerOptions.predict_by): the classifier's
    probabilities, the neighbours' label scores (ties broken by the classifier), or their
    mean (blend)."""
    from imgtfx.trainer.options import BLEND, NEIGHBOURS

    if method == NEIGHBOURS:
        return neighbour_scores + TIE_BREAK * tf.cast(probabilities, tf.float32)
    if method == BLEND:
        return (tf.cast(probabilities, tf.float32) + neighbour_scores) / 2
    return tf.cast(probabilities, tf.float32)
