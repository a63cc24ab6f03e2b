"""The Trainer's `run_fn` (`run_fn='imgtfx.trainer.training.run_fn'`): hardware, the training
phases, progress, and the export (trainer/model.py builds the model, trainer/serving.py
exports it)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import dataclasses  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from absl import logging  # noqa: E402

from imgtfx.components import counters  # noqa: E402
from imgtfx.components.examples.features import read_feature_names  # noqa: E402
from imgtfx.components.examples.layout import examples_uri_of  # noqa: E402
from imgtfx.trainer import data, non_landmarks, retrieval  # noqa: E402
from imgtfx.trainer.model import (  # noqa: E402
    build_model,
    compile_model,
    features_of,
    unfreeze_top,
)
from imgtfx.trainer.options import INDEX_FILE, TrainerOptions  # noqa: E402
from imgtfx.trainer.serving import export  # noqa: E402

EPOCH_STEPS = 100


def balanced_class_weights(counts: list[int]) -> dict[int, float]:
    """Inverse-frequency weights (sklearn's 'balanced'); classes without examples get 0."""
    total, present = sum(counts), sum(1 for c in counts if c)
    return {i: (total / (present * c) if c else 0.0) for i, c in enumerate(counts)}


class StepProgress(keras.callbacks.Callback):
    """Publishes the training step (the local runner's progress lines read it) and logs it
    every `log_every_s` seconds, so that a long training is never silent on any runner."""

    def __init__(self, total_steps: int, log_every_s: float = 60.0):
        super().__init__()
        self._total = total_steps
        self._every = log_every_s
        self._step = 0
        self._start = self._last = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        counters.update("train_steps", self._step, self._total)
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            logging.info(
                "Trainer: step %d/%d (%.2f steps/s).",
                self._step,
                self._total,
                self._step / (now - self._start),
            )


def hardware(options: TrainerOptions) -> tf.distribute.Strategy:
    """MirroredStrategy over the local GPUs (mixed_float16 unless options say off), else the
    default strategy on CPU, unchanged. Sets Keras' global dtype policy: call once a process."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return tf.distribute.get_strategy()
    if options.mixed_precision == "auto":
        keras.mixed_precision.set_global_policy("mixed_float16")
    logging.info("Trainer: %d GPU(s), policy %s.", len(gpus), keras.mixed_precision.global_policy())
    return tf.distribute.MirroredStrategy()


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (`run_fn='imgtfx.trainer.training.run_fn'`).

    A pretrained backbone trains in two phases: `train_steps` of the head alone (the backbone
    frozen), then `fine_tune_steps` with the backbone's last `fine_tune_layers` layers as well,
    at `fine_tune_learning_rate`. Otherwise one phase of `train_steps` trains everything.
    """
    examples = examples_uri_of(fn_args.train_files[0])
    options = dataclasses.replace(
        TrainerOptions.from_dict(fn_args.custom_config), features=read_feature_names(examples)
    )
    strategy = hardware(options)
    # Each replica takes a batch of options.batch_size: the global batch grows with them.
    batched = dataclasses.replace(
        options, batch_size=options.batch_size * strategy.num_replicas_in_sync
    )
    vocabulary = data.vocabulary_of(fn_args.train_files)
    train = data.make_dataset(fn_args.train_files, batched, training=True)
    evaluation = data.make_dataset(fn_args.eval_files, batched, training=False)

    class_weight = None
    if options.class_weights == "balanced":
        counts = data.class_counts(fn_args.train_files)
        class_weight = balanced_class_weights([counts.get(label, 0) for label in vocabulary])

    with strategy.scope():
        model = build_model(len(vocabulary), options)
    steps = max(1, int(fn_args.train_steps))
    fine_tune = options.fine_tune_steps if options.fine_tune_layers else 0
    progress = StepProgress(steps + fine_tune)
    fit = functools.partial(
        _fit,
        model,
        train,
        evaluation,
        validation_steps=max(1, int(fn_args.eval_steps or 1)),
        class_weight=class_weight,
        callbacks=[
            progress,
            keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch"),
        ],
        patience=options.early_stopping_patience,
    )
    logging.info("Training %d classes: %d steps.", len(vocabulary), steps)
    fit(steps)
    if fine_tune:
        with strategy.scope():
            unfreeze_top(model, options.fine_tune_layers)
            compile_model(
                model, options, options.fine_tune_learning_rate or options.learning_rate / 10
            )
        logging.info("Fine-tuning: %d steps.", fine_tune)
        fit(fine_tune)
    index, distractors, facts = None, None, None
    if options.neighbours:
        index, distractors, facts = _neighbour_index(model, fn_args.train_files, options)
    export(
        model,
        vocabulary,
        options,
        fn_args.serving_model_dir,
        data.label_names_of(fn_args.train_files),
        index,
        distractors,
    )
    if facts is not None:
        with tf.io.gfile.GFile(os.path.join(fn_args.serving_model_dir, INDEX_FILE), "w") as f:
            f.write(json.dumps(facts, ensure_ascii=False, indent=1))


def _neighbour_index(model, train_files, options: TrainerOptions):
    """(the train photos' index, the non-landmarks' embeddings or None, what was built: the
    facts of INDEX_FILE, with every non-landmark file that could not be used and why)."""
    started = time.monotonic()
    embedder = keras.Model(model.inputs, features_of(model))
    index = retrieval.build_index(embedder, train_files, options)
    facts = {
        "photos": int(index.embeddings.shape[0]),
        "dimensions": int(index.embeddings.shape[1]),
        "bytes": int(index.embeddings.nbytes + index.labels.nbytes + sum(map(len, index.ids))),
        "build_seconds": round(time.monotonic() - started, 1),
    }
    logging.info(
        "Neighbour index: %(photos)d train photos x %(dimensions)d dimensions in "
        "%(build_seconds).1f s.",
        facts,
    )
    embedded = None
    if options.non_landmarks:
        started = time.monotonic()
        found = non_landmarks.read(options.non_landmarks, options.max_pixels)
        embedded = retrieval.embed_images(embedder, found.images, options)
        facts["non_landmarks"] = {
            "folder": options.non_landmarks,
            "photos": len(found.images),
            "seconds": round(time.monotonic() - started, 1),
            "rejects": found.rejects,
        }
        for reject in found.rejects:
            logging.warning("Non-landmarks: %s not used: %s.", reject["path"], reject["reason"])
        logging.info(
            "Non-landmarks: %d photos, %d files not used.", len(found.images), len(found.rejects)
        )
    return index, embedded, facts


def _fit(model, train, evaluation, steps: int, *, patience: int, callbacks: list, **fit_args):
    """One phase of `steps` in rounds of EPOCH_STEPS, stopping early on the eval loss (and
    keeping that phase's best weights)."""
    epoch_steps = min(steps, EPOCH_STEPS)
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True
    )
    model.fit(
        train,
        steps_per_epoch=epoch_steps,
        epochs=math.ceil(steps / epoch_steps),
        validation_data=evaluation,
        callbacks=[*callbacks, stopping],
        verbose=2,
        **fit_args,
    )
