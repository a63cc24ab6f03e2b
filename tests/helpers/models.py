"""What the trainer's tests share: a learnable task made here (coloured discs), its batches,
and the Keras model's own answer to compare a served model with."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from imgtfx.components.examples import decode

SIZE = 32


def reference(keras_model, encoded: list[bytes], size: int = SIZE) -> np.ndarray:
    """Probabilities of the Keras model on the training decoder's pixels, one image at a time."""
    return np.concatenate(
        [keras_model(decode.decode_image(tf.constant(b), size)[None]).numpy() for b in encoded]
    )


def batches(images, labels, batch=16, seed=0):
    data = tf.data.Dataset.from_tensor_slices((images.astype("float32"), labels))
    return data.shuffle(len(labels), seed=seed).repeat().batch(batch)


def shapes_task(classes, per_class, seed, size=SIZE, offset=0):
    """Coloured shapes: class c is a filled disc of colour c at a random place and scale, on
    a noisy background (pixels in [0, 255])."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, labels = [], []
    palette = np.random.default_rng(100).integers(0, 256, (64, 3))
    for c in range(classes):
        for _ in range(per_class):
            image = rng.normal(128, 30, (size, size, 3))
            cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
            radius = rng.uniform(size * 0.15, size * 0.3)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
            image[disc] = palette[c + offset] + rng.normal(0, 10, 3)
            images.append(image.clip(0, 255))
            labels.append(c)
    return np.stack(images), np.array(labels)
