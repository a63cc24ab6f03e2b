"""The image classifier: a small Keras CNN, its training `run_fn`, and its serving signatures.

Keras: tf-keras (Keras 2), imported explicitly. TFX 1.16's TFMA and TFT use tf-keras, and
`TF_USE_LEGACY_KERAS=1` is set everywhere (CLI, Makefile, container image) so `tf.keras` agrees.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import math  # noqa: E402

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from absl import logging  # noqa: E402

from components.image_example_gen import reader  # noqa: E402
from trainer import data  # noqa: E402
from trainer.options import TrainerOptions  # noqa: E402

PROBABILITIES = "probabilities"
CLASS_INDEX = "class_index"
LABEL_NAME = "label_name"
EXAMPLES_SIGNATURE = "serving_default"
IMAGES_SIGNATURE = "serving_images"
EPOCH_STEPS = 100
# The default 0.99 needs thousands of steps before the moving statistics that inference uses
# settle; runs here are hundreds of steps (measured: 0.19 vs 0.99 eval accuracy at 200 steps).
BN_MOMENTUM = 0.9


def build_model(num_classes: int, options: TrainerOptions = TrainerOptions()) -> keras.Model:
    """Conv blocks (conv-BN-ReLU x2, max-pool) -> global average pooling -> dropout -> softmax.

    Input: float RGB images in [0, 255] of options.image_size; rescaling is part of the model so
    that serving feeds decoded pixels as they are.
    """
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}.")
    size = options.image_size
    inputs = keras.Input(shape=(size, size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    for filters in options.filters:
        for _ in range(2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(options.dropout)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name=PROBABILITIES)(x)
    model = keras.Model(inputs, outputs, name="image_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(options.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def balanced_class_weights(counts: list[int]) -> dict[int, float]:
    """Inverse-frequency weights (sklearn's 'balanced'); classes without examples get 0."""
    total, present = sum(counts), sum(1 for c in counts if c)
    return {i: (total / (present * c) if c else 0.0) for i, c in enumerate(counts)}


class ServingModule(tf.Module):
    """Serving signatures: serialized tf.Examples (TFMA, TF Serving) and raw encoded images."""

    def __init__(self, model: keras.Model, vocabulary: list[str], options: TrainerOptions):
        super().__init__()
        self.model = model
        self.vocabulary = tf.constant(vocabulary)
        self._options = options

    def _predict(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = self.model(images, training=False)
        index = tf.argmax(probabilities, axis=-1)
        return {
            PROBABILITIES: probabilities,
            CLASS_INDEX: index,
            LABEL_NAME: tf.gather(self.vocabulary, index),
        }

    def _decode(self, encoded: tf.Tensor) -> tf.Tensor:
        size = self._options.image_size
        return tf.map_fn(
            lambda b: reader.decode_image(b, size),
            encoded,
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(self, serialized):
        spec = {self._options.features.image: tf.io.FixedLenFeature([], tf.string)}
        parsed = tf.io.parse_example(serialized, spec)
        return self._predict(self._decode(parsed[self._options.features.image]))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve_images(self, encoded):
        return self._predict(self._decode(encoded))


def export(model: keras.Model, vocabulary: list[str], options: TrainerOptions, path: str) -> None:
    module = ServingModule(model, vocabulary, options)
    tf.saved_model.save(
        module,
        path,
        signatures={
            EXAMPLES_SIGNATURE: module.serve_examples.get_concrete_function(),
            IMAGES_SIGNATURE: module.serve_images.get_concrete_function(),
        },
    )
    with tf.io.gfile.GFile(os.path.join(path, "labels.txt"), "w") as f:
        f.write("".join(f"{label}\n" for label in vocabulary))


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (`run_fn='trainer.model.run_fn'`)."""
    options = TrainerOptions.from_dict(fn_args.custom_config)
    vocabulary = data.vocabulary_of(fn_args.train_files)
    train = data.make_dataset(fn_args.train_files, options, training=True)
    evaluation = data.make_dataset(fn_args.eval_files, options, training=False)

    class_weight = None
    if options.class_weights == "balanced":
        counts = data.class_counts(fn_args.train_files)
        class_weight = balanced_class_weights([counts.get(label, 0) for label in vocabulary])

    model = build_model(len(vocabulary), options)
    steps = max(1, int(fn_args.train_steps))
    epoch_steps = min(steps, EPOCH_STEPS)
    epochs = math.ceil(steps / epoch_steps)
    callbacks = [
        keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch"),
        keras.callbacks.EarlyStopping(
            monitor="val_loss",
            patience=options.early_stopping_patience,
            restore_best_weights=True,
        ),
    ]
    logging.info("Training %d classes: %d steps in %d rounds.", len(vocabulary), steps, epochs)
    model.fit(
        train,
        steps_per_epoch=epoch_steps,
        epochs=epochs,
        validation_data=evaluation,
        validation_steps=max(1, int(fn_args.eval_steps or 1)),
        class_weight=class_weight,
        callbacks=callbacks,
        verbose=2,
    )
    export(model, vocabulary, options, fn_args.serving_model_dir)
