"""The image classifier: a small Keras CNN or a pretrained backbone, compiled, and the names of
its serving outputs and signatures (trainer/serving.py exports them; trainer/training.py trains
it).

Keras: tf-keras (Keras 2), imported explicitly. TFX 1.16's TFMA and TFT use tf-keras, and
`TF_USE_LEGACY_KERAS=1` is set everywhere (CLI, Makefile, container image) so `tf.keras` agrees.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from imgtfx.trainer import backbones  # noqa: E402
from imgtfx.trainer.options import TrainerOptions  # noqa: E402

PROBABILITIES = "probabilities"
COSINE = "cosine"  # TrainerOptions.head of the cosine classifier
COSINES = "cosines"  # its layer of cosine similarities
TINY = 1.1754944e-38  # float32's smallest normal number: log(0) never reaches the loss
CLASS_INDEX = "class_index"
LABEL_NAME = "label_name"
LABEL_DISPLAY_NAME = "label_display_name"  # the label's name for people (label_names.json)
EMBEDDING = "embedding"  # per image: the L2-normalised features (`features_of`)
FEATURES = "features"  # the layer whose output is the embedding (the pooling, or the neck)
# The k nearest train photos of each image ([batch, k], nearest first), with a neighbour index.
NEIGHBOUR_IDS = "neighbour_ids"
NEIGHBOUR_LABELS = "neighbour_labels"
NEIGHBOUR_SIMILARITIES = "neighbour_similarities"
ERROR = "error"  # per image: "" when predicted, else the reason (reason: detail)
UNDECODABLE = "undecodable"  # or TOO_MANY_PIXELS, the converter's reason for the same refusal
NOT_FINITE = "not_finite"  # the network's answer for an image held NaN or infinity
EXAMPLES_SIGNATURE = "serving_default"
IMAGES_SIGNATURE = "serving_images"
EMBED_SIGNATURE = "embed"  # raw image bytes in, the embedding out
# The Evaluator's signature: the encoded image, its input named after the image feature. TFMA
# passes features to a signature by name; a signature of serialized examples it calls
# positionally, which TensorFlow first tries as a structured call and rejects with an error
# text that formats every image of the batch: 12 s per 4,400 photos, thrown away.
EVAL_SIGNATURE = "evaluate"
# The default 0.99 needs thousands of steps before the moving statistics that inference uses
# settle; runs here are hundreds of steps (measured: 0.19 vs 0.99 eval accuracy at 200 steps).
BN_MOMENTUM = 0.9


def scores_of(method: str) -> str:
    """The Evaluator signature's output of one prediction method's class scores."""
    return f"scores_{method}"


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
    x = _features(x, options)
    outputs = _head(x, num_classes, options)
    return ImageClassifier(inputs, outputs, name=f"{options.backbone}_classifier")


def _features(x: tf.Tensor, options: TrainerOptions) -> tf.Tensor:
    """Global average pooling, then the neck when options ask for one: the layer named
    FEATURES, whose output the exported model serves as its embedding."""
    if not options.embedding_dim:
        return keras.layers.GlobalAveragePooling2D(name=FEATURES)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.layers.Dense(options.embedding_dim, name=FEATURES)(x)


def features_of(model: keras.Model) -> tf.Tensor:
    """The symbolic features a model's embedding is taken from: its FEATURES layer's output,
    or for a model built elsewhere what its last layer reads."""
    names = {layer.name for layer in model.layers}
    return model.get_layer(FEATURES).output if FEATURES in names else model.layers[-1].input


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
    x = _features(x, options)
    outputs = _head(x, num_classes, options)
    return ImageClassifier(inputs, outputs, name="image_classifier")
