"""The exported model: the serving signatures over the trained classifier (trainer/model.py),
labels.txt and label_names.json beside them."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # as trainer/model.py, before TensorFlow

import tensorflow as tf  # noqa: E402

from imgtfx.components.examples import decode  # noqa: E402
from imgtfx.components.examples.layout import LABEL_NAMES_FILE, LABELS_FILE  # noqa: E402
from imgtfx.components.examples.reasons import TOO_MANY_PIXELS  # noqa: E402
from imgtfx.components.examples.vocabulary import write_label_names_file, write_labels_file  # noqa: E402
from imgtfx.trainer import retrieval  # noqa: E402
from imgtfx.trainer.model import (  # noqa: E402
    CLASS_INDEX,
    EMBED_SIGNATURE,
    EMBEDDING,
    ERROR,
    EVAL_SIGNATURE,
    EXAMPLES_SIGNATURE,
    IMAGES_SIGNATURE,
    LABEL_DISPLAY_NAME,
    LABEL_NAME,
    NEIGHBOUR_IDS,
    NEIGHBOUR_LABELS,
    NEIGHBOUR_SIMILARITIES,
    NOT_FINITE,
    PROBABILITIES,
    UNDECODABLE,
    features_of,
    keras,
    scores_of,
)
from imgtfx.trainer.options import PREDICT_BY, TrainerOptions  # noqa: E402


class _Untracked:
    """Holds the Keras model, and the decoder's function, out of the SavedModel's object graph
    (plain attributes): only the signatures are saved."""

    def __init__(self, model: keras.Model):
        self.model = model
        # One forward pass for both: the probabilities and the features of the embedding.
        self.both = keras.Model(model.inputs, [model.outputs[0], features_of(model)])
        self.embedder = keras.Model(model.inputs, features_of(model))
        self.decode = None


class ServingModule(tf.Module):
    """Serving signatures: serialized tf.Examples (TF Serving), raw encoded images, the image
    feature by name (the Evaluator), and `embed` (raw encoded images -> their embedding).

    Exports the model's variables and these graphs only, not the Keras model as an object:
    saving a tracked Keras model makes TensorFlow trace every layer's call for Keras' own
    loading path, through AutoGraph (48 of a 66 s export here). The signatures are traced
    without AutoGraph for the same reason; their graphs have no Python control flow on tensors.

    Every signature answers per image: `error` is "" for an image that was predicted, or says why
    it was not (then probabilities are zeros, class_index -1, label_name and label_display_name
    ""); one bad image never fails the batch. Those four answers are [batch, 1], not [batch]:
    TFX's BulkInferrer (tfx_bsl's RunInference) splits each output by example and asks the
    piece for its dtype, which the piece of a rank-1 string output, Python bytes, lacks
    (AttributeError), as it does for no output of rank 2. Images over `options.max_pixels` are
    refused from their header, before any pixel is decoded. `label_display_name` is the
    label's name for people (label_names.json), beside `label_name`, the class. `embedding`
    ([batch, d], in every signature) is the model's features (trainer/model.py features_of)
    L2-normalised, zeros for a refused image: what the nearest training photos are found by.
    An answer under `options.min_confidence` abstains: the same zeros, -1 and "" as a refused
    image, with `error` "" (it was read); with non-landmarks, every answer's scores are first
    multiplied by its landmark share (trainer/retrieval.py).
    """

    def __init__(
        self,
        model: keras.Model,
        vocabulary: list[str],
        options: TrainerOptions,
        label_names: list[str] | None = None,
        index: retrieval.Index | None = None,
        non_landmarks=None,
    ):
        super().__init__()
        self.weights = list(model.variables)  # what the SavedModel saves of the model
        self._keras = _Untracked(model)
        self.vocabulary = tf.constant(vocabulary)
        self.label_names = tf.constant(label_names or vocabulary)
        self._options = options
        self._neighbours = options.neighbours if index is not None else 0
        if self._neighbours:  # variables: saved once, shared by every signature
            self.index_embeddings = tf.Variable(index.embeddings, trainable=False)
            self.index_labels = tf.Variable(index.labels, trainable=False)
            self.index_ids = tf.Variable(index.ids, dtype=tf.string, trainable=False)
        self._distractors = self._neighbours and non_landmarks is not None
        if self._distractors:
            self.non_landmark_embeddings = tf.Variable(non_landmarks, trainable=False)
        self.serve_image_feature = tf.function(
            self._serve_encoded,
            input_signature=[tf.TensorSpec([None], tf.string, name=options.features.image)],
            autograph=False,
        )
        # One graph of the decoder, called by every signature: traced once, not once for each
        # signature and again when saving (six traces were 8 of an 11 s export).
        self._keras.decode = tf.function(
            self._decode, input_signature=[tf.TensorSpec([None], tf.string)], autograph=False
        )

    def _serve_encoded(self, encoded):
        return self._predict(*self._keras.decode(encoded), by_method=True)

    def _predict(
        self, images: tf.Tensor, errors: tf.Tensor, by_method: bool = False
    ) -> dict[str, tf.Tensor]:
        """The answers; `by_method` (the Evaluator's signature, with an index) adds each
        prediction method's scores, `scores_<method>` [batch, classes], which its accuracy and
        GAP by method read."""
        probabilities, features = self._keras.both(images, training=False)
        # A network that overflowed (weights that do not fit it) answers NaN: said, not argmaxed.
        finite = tf.logical_and(
            tf.reduce_all(tf.math.is_finite(tf.cast(probabilities, tf.float32)), axis=-1),
            tf.reduce_all(tf.math.is_finite(tf.cast(features, tf.float32)), axis=-1),
        )
        errors = tf.where(
            tf.logical_and(tf.equal(errors, ""), tf.logical_not(finite)),
            f"{NOT_FINITE}: the model's scores for this image are not numbers (NaN or infinity)",
            errors,
        )
        ok = tf.equal(errors, "")
        embedding = self._embedding(features, ok)
        near = {}
        if self._neighbours:
            near, neighbour_scores, share = self._nearest(embedding, ok)
            by = {}
            for method in PREDICT_BY if by_method else (self._options.predict_by,):
                by[method] = retrieval.scores_by(method, probabilities, neighbour_scores)
                if share is not None:
                    by[method] = by[method] * share[:, None]
            probabilities = by[self._options.predict_by]
            if by_method:
                near.update({scores_of(m): self._answered(s, ok) for m, s in by.items()})
        probabilities = self._answered(probabilities, ok)
        # No prediction for a refused image, nor for one whose scores abstained (zeros).
        answered = tf.logical_and(ok, tf.reduce_max(probabilities, axis=-1) > 0)
        index = tf.where(answered, tf.argmax(probabilities, axis=-1), -1)
        found = tf.maximum(index, 0)
        return {
            **near,
            PROBABILITIES: probabilities,
            CLASS_INDEX: index[:, None],
            LABEL_NAME: tf.where(answered, tf.gather(self.vocabulary, found), "")[:, None],
            LABEL_DISPLAY_NAME: tf.where(answered, tf.gather(self.label_names, found), "")[:, None],
            ERROR: errors[:, None],
            EMBEDDING: embedding,
        }

    def _nearest(self, embedding: tf.Tensor, ok: tf.Tensor):
        """The k nearest train photos of each image ([batch, k]: ids, labels, similarities,
        nearest first; "" and 0 for a refused image), each label's neighbour score
        (retrieval.label_scores), and with non-landmarks each image's landmark share
        (retrieval.landmark_share; else None)."""
        similarities, positions = retrieval.nearest(
            embedding, self.index_embeddings, self._neighbours
        )
        similarities = tf.where(ok[:, None], similarities, 0.0)
        labels = tf.gather(self.index_labels, positions)
        outputs = {
            NEIGHBOUR_IDS: tf.where(ok[:, None], tf.gather(self.index_ids, positions), ""),
            NEIGHBOUR_LABELS: tf.where(ok[:, None], tf.gather(self.vocabulary, labels), ""),
            NEIGHBOUR_SIMILARITIES: similarities,
        }
        classes = tf.shape(self.vocabulary, out_type=tf.int64)[0]
        share = None
        if self._distractors:
            distractors, _ = retrieval.nearest(
                embedding, self.non_landmark_embeddings, self._neighbours
            )
            share = retrieval.landmark_share(similarities, distractors, self._neighbours)
        return outputs, retrieval.label_scores(similarities, labels, classes), share

    def _answered(self, scores: tf.Tensor, ok: tf.Tensor) -> tf.Tensor:
        """`scores` as served: zeros (no prediction) for a refused image and for one under
        min_confidence."""
        scores = tf.where(ok[:, None], tf.cast(scores, tf.float32), 0.0)
        return retrieval.abstain(scores, self._options.min_confidence)

    @staticmethod
    def _embedding(features: tf.Tensor, ok: tf.Tensor) -> tf.Tensor:
        """[n, d] L2-normalised features, zeros for a refused image."""
        unit = tf.math.l2_normalize(tf.cast(features, tf.float32), axis=-1)
        return tf.where(ok[:, None], unit, tf.zeros_like(unit))

    def _decode(self, encoded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Decoded images [n, size, size, 3] (zeros where refused) and an error per image.

        A graph cannot catch a decoder's error except inside tf.data, so the images go through
        a dataset of (index, bytes) whose map reads the header, decodes only what is within the
        pixel limit, and whose ignore_errors drops what fails; results go back by index, and an
        index that did not come back failed to decode. A last element (index n) makes sure
        the batch that collects them is never empty.
        """
        size, limit = self._options.image_size, self._options.max_pixels
        count = tf.shape(encoded, out_type=tf.int64)[0]
        kind = decode.image_format(encoded)
        known = tf.not_equal(kind, "")
        blank = tf.zeros([size, size, 3], tf.float32)
        zero = tf.constant(0, tf.int64)

        @tf.autograph.experimental.do_not_convert  # tf.data would run AutoGraph on it
        def check_and_decode(index, data):
            height, width = decode.image_dimensions(data)
            image = tf.cond(
                height * width <= limit, lambda: decode.decode_image(data, size), lambda: blank
            )
            return index, height, width, image

        answered = (
            tf.data.Dataset.from_tensor_slices(
                (tf.boolean_mask(tf.range(count), known), tf.boolean_mask(encoded, known))
            )
            .map(check_and_decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
            .ignore_errors()
            .concatenate(tf.data.Dataset.from_tensors((count, zero, zero, blank)))
        )
        index, height, width, image = answered.batch(count + 1).get_single_element()
        slots = index[:, None]
        images = tf.scatter_nd(slots, image, [count + 1, size, size, 3])[:count]
        decoded = tf.scatter_nd(slots, tf.ones_like(index), [count + 1])[:count] > 0
        height = tf.scatter_nd(slots, height, [count + 1])[:count]
        width = tf.scatter_nd(slots, width, [count + 1])[:count]
        too_many = tf.logical_and(decoded, height * width > limit)
        errors = tf.where(
            known,
            tf.strings.join([UNDECODABLE, ": ", kind, " data that cannot be decoded"]),
            f"{UNDECODABLE}: not JPEG, PNG, GIF or BMP data",
        )
        errors = tf.where(decoded, "", errors)
        pixels = tf.strings.join(
            [TOO_MANY_PIXELS, ": ", tf.strings.as_string(width), "x", tf.strings.as_string(height)]
        )
        errors = tf.where(too_many, pixels + f" is over max_pixels={limit}", errors)
        return images, errors

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False
    )
    def serve_examples(self, serialized):
        # An example without the image is answered with an error, not a failed batch.
        image = tf.io.FixedLenFeature([], tf.string, default_value="")
        spec = {self._options.features.image: image}
        parsed = tf.io.parse_example(serialized, spec)
        return self._predict(*self._keras.decode(parsed[self._options.features.image]))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")], autograph=False)
    def serve_images(self, encoded):
        return self._predict(*self._keras.decode(encoded))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")], autograph=False)
    def serve_embedding(self, encoded):
        images, errors = self._keras.decode(encoded)
        features = self._keras.embedder(images, training=False)
        return {
            EMBEDDING: self._embedding(features, tf.equal(errors, "")),
            ERROR: errors[:, None],
        }


def export(
    model: keras.Model,
    vocabulary: list[str],
    options: TrainerOptions,
    path: str,
    label_names: list[str] | None = None,
    index: retrieval.Index | None = None,
    non_landmarks=None,
) -> None:
    """Saves the serving signatures, labels.txt and label_names.json (`label_names` aligned with
    `vocabulary`; default the labels), so that readers of the model need no Examples; with the
    train photos' `index` inside, searched by every signature, and the `non_landmarks`'
    embeddings ([m, d] unit rows) beside it."""
    label_names = label_names or vocabulary
    module = ServingModule(model, vocabulary, options, label_names, index, non_landmarks)
    tf.saved_model.save(
        module,
        path,
        signatures={
            EXAMPLES_SIGNATURE: module.serve_examples.get_concrete_function(),
            IMAGES_SIGNATURE: module.serve_images.get_concrete_function(),
            EVAL_SIGNATURE: module.serve_image_feature.get_concrete_function(),
            EMBED_SIGNATURE: module.serve_embedding.get_concrete_function(),
        },
    )
    write_labels_file(os.path.join(path, LABELS_FILE), vocabulary)
    write_label_names_file(os.path.join(path, LABEL_NAMES_FILE), vocabulary, label_names)
