"""Recognition by retrieval: a query's nearest training photos and the label they vote for, in
stock TensorFlow ops, so that a SavedModel holding the index serves them in TF Serving, TFMA and
`imgtfx predict` alike (issue 41 builds the index into the exported model).

A folder of photos of no landmark (`--non-landmarks`) joins the search as a class that names no
label: a query's k nearest photos among the train photos and those together give the landmark
share of its neighbourhood, and every method's scores are multiplied by it, so a query that looks
like the non-landmarks falls to the bottom of the ranking GAP reads. A query whose best score
stays under `--min-confidence` abstains: its scores are zeros, which every reader of the model
takes as no prediction (it takes no rank in GAP).

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

INDEXED = "indexed"  # the counter of train photos embedded into the index


class Index(NamedTuple):
    """The train photos a model searches: their embeddings (float16, unit rows), label indexes
    and ids, aligned."""

    embeddings: np.ndarray  # [n, d] float16
    labels: np.ndarray  # [n] int64, indexes into the vocabulary
    ids: np.ndarray  # [n] bytes


def _embeddings(embedder, dataset, counter: str = "") -> tuple[np.ndarray, list]:
    """Unit rows in float16 of the images of `dataset` ((images, *rest) batches) through
    `embedder`, and the batches' other columns as numpy; `counter` counts the images done
    (components/counters.py: a local run's progress lines show it)."""
    from imgtfx.components import counters

    embeddings, rest = [], []
    for images, *columns in dataset:
        features = tf.cast(embedder(images, training=False), tf.float32)
        embeddings.append(tf.math.l2_normalize(features, axis=-1).numpy().astype(np.float16))
        rest.append([c.numpy() for c in columns])
        if counter:
            counters.count(counter, len(embeddings[-1]))
    return (np.concatenate(embeddings) if embeddings else np.zeros((0, 0), np.float16)), rest


def embed_images(embedder, encoded: Sequence[bytes], options, batch_size: int = 256) -> np.ndarray:
    """[n, d] float16 unit rows of encoded images (checked already: each decodes)."""
    from imgtfx.components.examples.decode import decode_image

    dataset = (
        tf.data.Dataset.from_tensor_slices(tf.constant(list(encoded), tf.string))
        .map(
            lambda data: (decode_image(data, options.image_size),),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .batch(batch_size)
    )
    return _embeddings(embedder, dataset)[0]


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
    embeddings, rest = _embeddings(embedder, dataset, counter=INDEXED)
    if not rest:
        raise ValueError("no train examples to build the neighbour index from.")
    labels = np.concatenate([label for label, _ in rest]).astype(np.int64)
    return Index(embeddings, labels, np.concatenate([image_id for _, image_id in rest]))


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


def landmark_share(
    similarities: tf.Tensor, non_landmark_similarities: tf.Tensor, k: int
) -> tf.Tensor:
    """[q]: of each query's k nearest photos among the train photos and the non-landmarks
    together (given each set's own nearest first, [q, k] and [q, k']), the share of their
    similarity (below orthogonal counts nothing) that train photos hold; 1 for a query with no
    similar photo at all."""
    together = tf.concat(
        [tf.cast(similarities, tf.float32), tf.cast(non_landmark_similarities, tf.float32)], -1
    )
    is_train = tf.concat(
        [
            tf.ones_like(similarities, tf.float32),
            tf.zeros_like(non_landmark_similarities, tf.float32),
        ],
        -1,
    )
    nearest_k, positions = tf.math.top_k(together, k=tf.minimum(k, tf.shape(together)[-1]))
    weights = tf.maximum(nearest_k, 0.0)
    total = tf.reduce_sum(weights, -1)
    train = tf.reduce_sum(weights * tf.gather(is_train, positions, batch_dims=1), -1)
    return tf.where(total > 0, train / tf.maximum(total, 1e-12), 1.0)


def abstain(scores: tf.Tensor, min_confidence: float) -> tf.Tensor:
    """`scores` [q, classes] with the rows whose best score is under `min_confidence` zeroed:
    no prediction, which takes no rank in GAP (components/image_evaluator/metrics.py)."""
    if not min_confidence:
        return scores
    confident = tf.reduce_max(scores, axis=-1, keepdims=True) >= min_confidence
    return tf.where(confident, scores, tf.zeros_like(scores))


# The classifier's share in `blend`, chosen by measurement (bench/retrieval.py): on four models
# of the real-shape contest tree (88,102 photos twice, 22,026 at 600 and 2,000 steps; classifier
# GAP 0.001 to 0.998) a quarter gave a GAP at least the half's at every k, and above it wherever
# the classifier was short of the ceiling (0.840 against 0.834 at k = 3 on the 88,102 photos).
BLEND_CLASSIFIER_SHARE = 0.25

# The classifier's share in the neighbours' scores: it only breaks their ties, and names the
# label of a photo none of whose neighbours is similar at all (a vote of zeros).
TIE_BREAK = 1e-6


def scores_by(method: str, probabilities: tf.Tensor, neighbour_scores: tf.Tensor) -> tf.Tensor:
    """Each class's score under `method` (TrainerOptions.predict_by): the classifier's
    probabilities, the neighbours' label scores (ties broken by the classifier), or both
    weighted (blend: BLEND_CLASSIFIER_SHARE of the classifier)."""
    from imgtfx.trainer.options import BLEND, NEIGHBOURS

    if method == NEIGHBOURS:
        return neighbour_scores + TIE_BREAK * tf.cast(probabilities, tf.float32)
    if method == BLEND:
        share = BLEND_CLASSIFIER_SHARE
        return share * tf.cast(probabilities, tf.float32) + (1 - share) * neighbour_scores
    return tf.cast(probabilities, tf.float32)
