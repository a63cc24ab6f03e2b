"""The image classifier: a small Keras CNN or a pretrained backbone, compiled, and its serving
signatures (trainer/training.py trains it).

Keras: tf-keras (Keras 2), imported explicitly. TFX 1.16's TFMA and TFT use tf-keras, and
`TF_USE_LEGACY_KERAS=1` is set everywhere (CLI, Makefile, container image) so `tf.keras` agrees.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from imgtfx.components.examples import decode  # noqa: E402
from imgtfx.components.examples.layout import LABEL_NAMES_FILE, LABELS_FILE  # noqa: E402
from imgtfx.components.examples.reasons import TOO_MANY_PIXELS  # noqa: E402
from imgtfx.components.examples.vocabulary import write_label_names_file, write_labels_file  # noqa: E402
from imgtfx.trainer import backbones  # noqa: E402
from imgtfx.trainer.options import TrainerOptions  # noqa: E402

PROBABILITIES = "probabilities"
COSINE = "cosine"  # TrainerOptions.head of the cosine classifier
COSINES = "cosines"  # its layer of cosine similarities
TINY = 1.1754944e-38  # float32's smallest normal number: log(0) never reaches the loss
CLASS_INDEX = "class_index"
LABEL_NAME = "label_name"
LABEL_DISPLAY_NAME = "label_display_name"  # the label's name for people (label_names.json)
ERROR = "error"  # per image: "" when predicted, else the reason (reason: detail)
UNDECODABLE = "undecodable"  # or TOO_MANY_PIXELS, the converter's reason for the same refusal
EXAMPLES_SIGNATURE = "serving_default"
IMAGES_SIGNATURE = "serving_images"
# The Evaluator's signature: the encoded image, its input named after the image feature. TFMA
# passes features to a signature by name; a signature of serialized examples it calls
# positionally, which TensorFlow first tries as a structured call and rejects with an error
# text that formats every image of the batch: 12 s per 4,400 photos, thrown away.
EVAL_SIGNATURE = "evaluate"
# The default 0.99 needs thousands of steps before the moving statistics that inference uses
# settle; runs here are hundreds of steps (measured: 0.19 vs 0.99 eval accuracy at 200 steps).
BN_MOMENTUM = 0.9


class ImageClassifier(keras.Model):
    """A functional Keras model whose training and evaluation steps skip AutoGraph.

    Keras wraps its train and test steps in tf.function with AutoGraph, which rewrites the
    Python source of Keras itself (layers, losses, optimizer) on first use: 35 s per process on
    these machines before the first step. The layers here have no Python control flow on
    tensors, so plain graph tracing gives the same graph in about 3 s.
    """

    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        return super().train_step(data)

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        return super().test_step(data)


def build_model(num_classes: int, options: TrainerOptions = TrainerOptions()) -> keras.Model:
    """The compiled classifier of `options.backbone`: the small CNN or a pretrained backbone."""
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}.")
    if options.backbone == backbones.SMALL_CNN:
        model = _small_cnn(num_classes, options)
    else:
        model = _on_backbone(num_classes, options)
    compile_model(model, options, options.learning_rate)
    return model


def _on_backbone(num_classes: int, options: TrainerOptions) -> keras.Model:
    """Backbone -> global average pooling -> the head (`_head`).

    A pretrained backbone is frozen and always runs in inference mode (`training=False`): its
    BatchNorm layers keep ImageNet's statistics through both phases, as Keras' transfer
    learning guide does (updating them from small batches of a new task ruins the features).
    A random backbone trains whole, BatchNorm included.
    """
    size = options.image_size
    inputs = keras.Input(shape=(size, size, 3), name="image")
    network = backbones.build(options.backbone, size, options.weights)
    x = backbones.preprocess(options.backbone, inputs)
    if options.pretrained:
        network.trainable = False
        x = network(x, training=False)
    else:
        x = network(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = _head(x, num_classes, options)
    return ImageClassifier(inputs, outputs, name=f"{options.backbone}_classifier")


def backbone_of(model: keras.Model) -> keras.Model:
    """The backbone inside a classifier built on one."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def unfreeze_top(model: keras.Model, layers: int) -> None:
    """Makes the backbone's last `layers` layers (-1: all) trainable, BatchNorm excepted."""
    network = backbone_of(model)
    network.trainable = True
    chosen = set(map(id, network.layers if layers == -1 else network.layers[-layers:]))
    for layer in network.layers:
        frozen = isinstance(layer, keras.layers.BatchNormalization) or id(layer) not in chosen
        layer.trainable = not frozen


def compile_model(model: keras.Model, options: TrainerOptions, learning_rate: float) -> None:
    """Adam (AdamW with weight decay), cross-entropy (label-smoothed when asked; with a margin
    for the cosine head), accuracy."""
    if options.weight_decay:
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=options.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(learning_rate)
    loss = keras.losses.SparseCategoricalCrossentropy()
    if options.label_smoothing:
        loss = _smoothed_loss(model.output_shape[-1], options.label_smoothing)
    if options.head == COSINE:
        loss = cosine_margin_loss(
            model.output_shape[-1], options.cosine_scale, options.cosine_margin
        )
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def _head(features: tf.Tensor, num_classes: int, options: TrainerOptions) -> tf.Tensor:
    """Dropout, then the class probabilities (float32 under mixed precision): a dense softmax,
    or for the cosine head softmax(s * cos), cos the similarity of the features' direction to
    one learned unit vector per class. The output is probabilities either way, so serving,
    the Evaluator and predict read both heads alike."""
    x = keras.layers.Dropout(options.dropout)(features)
    if options.head != COSINE:
        return keras.layers.Dense(
            num_classes, activation="softmax", dtype="float32", name=PROBABILITIES
        )(x)
    cosines = CosineSimilarity(num_classes, dtype="float32", name=COSINES)(x)
    logits = keras.layers.Rescaling(options.cosine_scale, dtype="float32")(cosines)
    return keras.layers.Softmax(dtype="float32", name=PROBABILITIES)(logits)


class CosineSimilarity(keras.layers.Layer):
    """cos(features, w_k) for each class k: both sides L2-normalized, so a class is a direction
    and the features' norm (the photo's contrast, its size of detail) does not decide it."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel",
            shape=(int(input_shape[-1]), self.units),
            initializer=keras.initializers.GlorotUniform(),
        )

    def call(self, features):
        return tf.matmul(
            tf.math.l2_normalize(features, axis=-1), tf.math.l2_normalize(self.kernel, axis=0)
        )

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def cosine_margin_loss(num_classes: int, scale: float, margin: float):
    """CosFace's loss (Wang et al. 2018, additive cosine margin) read from the probabilities.

    With logits s * cos_j, the loss -log(e^{s(cos_y - m)} / (e^{s(cos_y - m)} + sum_{j != y}
    e^{s cos_j})) is softplus(logsumexp_{j != y}(log p_j) - log p_y + s m): differences of log
    probabilities are differences of logits, so the model outputs probabilities as the softmax
    head does and needs no labels at call time. ArcFace's angular margin, cos(theta_y + m), needs
    cos_y itself, which probabilities do not determine; hence this margin. float32 holds the
    smallest probability s = 30 gives (e^-60), so log p is exact enough here.
    """

    def margin_cross_entropy(labels, probabilities):
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        probabilities = tf.cast(probabilities, tf.float32)
        log_p = tf.math.log(tf.maximum(probabilities, TINY))
        target = tf.one_hot(labels, num_classes, on_value=True, off_value=False)
        log_target = tf.reduce_sum(tf.where(target, log_p, 0.0), axis=-1)
        others = tf.reduce_logsumexp(tf.where(target, tf.float32.min, log_p), axis=-1)
        return tf.nn.softplus(others - log_target + scale * margin)

    return margin_cross_entropy


def _smoothed_loss(num_classes: int, smoothing: float):
    def smoothed_cross_entropy(labels, probabilities):
        targets = tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), num_classes)
        return keras.losses.categorical_crossentropy(
            targets, probabilities, label_smoothing=smoothing
        )

    return smoothed_cross_entropy


def _small_cnn(num_classes: int, options: TrainerOptions) -> keras.Model:
    """A strided stem (conv-BN-ReLU, stride 2) -> conv blocks (conv-BN-ReLU, max-pool) ->
    global average pooling -> the head (`_head`).

    Input: float RGB images in [0, 255] of options.image_size; rescaling is part of the model so
    that serving feeds decoded pixels as they are.

    The stem halves the picture before the first block, where full-size convolutions cost most;
    with a fourth, wider block and one convolution per block this trains 2.1x faster than two
    convolutions per block at full size and learned more in 300 steps (measured on the
    contest-shaped tree, 1,049 classes, 64 px: 3.5 vs 1.7 steps/s, eval accuracy 0.21 vs 0.04).
    """
    size = options.image_size
    inputs = keras.Input(shape=(size, size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Conv2D(
        options.filters[0], 3, strides=options.stem_stride, padding="same", use_bias=False
    )(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    x = keras.layers.ReLU()(x)
    for filters in options.filters:
        for _ in range(options.convs_per_block):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(padding="same")(x)  # small inputs end at 1x1, not 0x0
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = _head(x, num_classes, options)
    return ImageClassifier(inputs, outputs, name="image_classifier")


class _Untracked:
    """Holds the Keras model, and the decoder's function, out of the SavedModel's object graph
    (plain attributes): only the signatures are saved."""

    def __init__(self, model: keras.Model):
        self.model = model
        self.decode = None


class ServingModule(tf.Module):
    """Serving signatures: serialized tf.Examples (TF Serving), raw encoded images, and the
    image feature by name (the Evaluator).

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
    label's name for people (label_names.json), beside `label_name`, the class.
    """

    def __init__(
        self,
        model: keras.Model,
        vocabulary: list[str],
        options: TrainerOptions,
        label_names: list[str] | None = None,
    ):
        super().__init__()
        self.weights = list(model.variables)  # what the SavedModel saves of the model
        self._keras = _Untracked(model)
        self.vocabulary = tf.constant(vocabulary)
        self.label_names = tf.constant(label_names or vocabulary)
        self._options = options
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
        return self._predict(*self._keras.decode(encoded))

    def _predict(self, images: tf.Tensor, errors: tf.Tensor) -> dict[str, tf.Tensor]:
        ok = tf.equal(errors, "")
        probabilities = self._keras.model(images, training=False)
        probabilities = tf.where(ok[:, None], probabilities, tf.zeros_like(probabilities))
        index = tf.where(ok, tf.argmax(probabilities, axis=-1), -1)
        found = tf.maximum(index, 0)
        return {
            PROBABILITIES: probabilities,
            CLASS_INDEX: index[:, None],
            LABEL_NAME: tf.where(ok, tf.gather(self.vocabulary, found), "")[:, None],
            LABEL_DISPLAY_NAME: tf.where(ok, tf.gather(self.label_names, found), "")[:, None],
            ERROR: errors[:, None],
        }

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


def export(
    model: keras.Model,
    vocabulary: list[str],
    options: TrainerOptions,
    path: str,
    label_names: list[str] | None = None,
) -> None:
    """Saves the serving signatures, labels.txt and label_names.json (`label_names` aligned with
    `vocabulary`; default the labels), so that readers of the model need no Examples."""
    label_names = label_names or vocabulary
    module = ServingModule(model, vocabulary, options, label_names)
    tf.saved_model.save(
        module,
        path,
        signatures={
            EXAMPLES_SIGNATURE: module.serve_examples.get_concrete_function(),
            IMAGES_SIGNATURE: module.serve_images.get_concrete_function(),
            EVAL_SIGNATURE: module.serve_image_feature.get_concrete_function(),
        },
    )
    write_labels_file(os.path.join(path, LABELS_FILE), vocabulary)
    write_label_names_file(os.path.join(path, LABEL_NAMES_FILE), vocabulary, label_names)
