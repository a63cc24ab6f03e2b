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

import tensorflow as tf


def nearest(queries: tf.Tensor, index: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """(similarities [q, k], positions [q, k]) of each query's k nearest index rows, nearest
    first: cosine similarity of the L2-normalised query with rows normalised already (float16
    or float32), computed in float32. k is capped at the index's size."""
    queries = tf.math.l2_normalize(tf.cast(queries, tf.float32), axis=-1)
    similarities = tf.matmul(queries, tf.cast(index, tf.float32), transpose_b=True)
    k = tf.minimum(k, tf.shape(index)[0])
    return tf.math.top_k(similarities, k=k, sorted=True)


def vote(
    similarities: tf.Tensor, labels: tf.Tensor, num_classes: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """(label [q], confidence [q]): the label whose neighbours' similarities sum highest among
    each query's top k (`labels` [q, k] the neighbours' labels), and that sum over k, in [0, 1]
    (a neighbour less similar than orthogonal adds nothing). Equal sums go to the lower label."""
    k = tf.cast(tf.shape(similarities)[-1], tf.float32)
    weights = tf.maximum(tf.cast(similarities, tf.float32), 0.0)
    scores = tf.reduce_sum(tf.one_hot(labels, num_classes) * weights[..., None], axis=1)
    label = tf.argmax(scores, axis=-1, output_type=tf.int64)
    confidence = tf.reduce_max(scores, axis=-1) / tf.maximum(k, 1.0)
    return label, tf.clip_by_value(confidence, 0.0, 1.0)
