"""The cosine head: its margin loss against CosFace computed from the cosines, training, serving,
and the options that do not combine with it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from imgtfx.trainer import model, serving
from imgtfx.trainer.options import TrainerOptions
from tests.helpers.models import batches, reference, shapes_task

keras = model.keras
COSINE = TrainerOptions(image_size=32, batch_size=16, filters=(8, 16), head="cosine")


def _cosface(cosines: np.ndarray, labels: np.ndarray, scale: float, margin: float) -> np.ndarray:
    """CosFace's loss as the paper writes it: cross-entropy of s * (cos - m [j == y])."""
    logits = scale * cosines.astype("float64")
    logits[np.arange(len(labels)), labels] -= scale * margin
    logits -= logits.max(axis=1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_softmax[np.arange(len(labels)), labels]


def test_the_margin_loss_is_cosface_computed_from_the_cosines():
    classifier = model.build_model(7, COSINE)
    cosines = keras.Model(classifier.input, classifier.get_layer(model.COSINES).output)
    images = np.random.default_rng(0).uniform(0, 255, (6, 32, 32, 3)).astype("float32")
    labels = np.array([0, 3, 6, 2, 2, 5])
    probabilities = classifier(images, training=False)
    cos = cosines(images, training=False).numpy()
    assert np.all(np.abs(cos) <= 1 + 1e-5)
    np.testing.assert_allclose(
        probabilities.numpy(), tf.nn.softmax(COSINE.cosine_scale * cos).numpy(), rtol=1e-4
    )
    for margin in (0.0, 0.2, 0.5):
        loss = model.cosine_margin_loss(7, COSINE.cosine_scale, margin)(labels, probabilities)
        expected = _cosface(cos, labels, COSINE.cosine_scale, margin)
        np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-4, atol=1e-4)
    # Without a margin it is the softmax head's cross-entropy; with one, more.
    plain = keras.losses.sparse_categorical_crossentropy(labels, probabilities).numpy()
    np.testing.assert_allclose(
        model.cosine_margin_loss(7, 30.0, 0.0)(labels, probabilities).numpy(),
        plain,
        rtol=1e-4,
        atol=1e-5,  # float32 by two routes: a loss near 1e-4 differs in its last digits
    )
    assert np.all(classifier.loss(labels, probabilities).numpy() > plain)


def test_the_margin_loss_stays_finite_where_a_probability_underflows():
    far = np.array([[1.0, 0.0, 0.0]], "float32")  # float32's softmax of cosines 2 apart at s=60
    loss = model.cosine_margin_loss(3, 30.0, 0.2)(np.array([1]), far)
    assert np.isfinite(loss.numpy()).all() and float(loss[0]) > 80


def test_the_cosine_head_learns_and_serves_the_keras_model_probabilities(tmp_path):
    from tests.helpers.images import encode

    tf.keras.utils.set_random_seed(0)
    classifier = model.build_model(4, COSINE)
    images, labels = shapes_task(4, 30, seed=5)
    test_x, test_y = shapes_task(4, 20, seed=6)
    before = classifier.evaluate(test_x.astype("float32"), test_y, verbose=0)[1]
    classifier.fit(batches(images, labels, 16), steps_per_epoch=80, epochs=1, verbose=0)
    _, accuracy = classifier.evaluate(test_x.astype("float32"), test_y, verbose=0)
    print(f"\ncosine head: accuracy {before:.3f} -> {accuracy:.3f}")
    assert accuracy >= 0.8 and accuracy > before + 0.3

    serving.export(classifier, ["a", "b", "c", "d"], COSINE, str(tmp_path / "1"))
    encoded = [encode("JPEG", size=(48, 40), seed=s) for s in range(3)]
    served = tf.saved_model.load(str(tmp_path / "1")).signatures[model.IMAGES_SIGNATURE]
    answer = served(images=tf.constant(encoded))[model.PROBABILITIES].numpy()
    np.testing.assert_allclose(answer, reference(classifier, encoded), atol=1e-5)
    np.testing.assert_allclose(answer.sum(axis=1), 1.0, rtol=1e-5)


def test_a_backbone_takes_the_cosine_head():
    opts = dataclasses.replace(COSINE, backbone="mobilenet_v3_small")
    classifier = model.build_model(5, opts)
    assert classifier.get_layer(model.COSINES).kernel.shape[-1] == 5
    assert classifier.output_shape == (None, 5)


def test_options_of_the_heads():
    with pytest.raises(ValueError, match="unknown head 'arcface'"):
        TrainerOptions(head="arcface")
    with pytest.raises(ValueError, match="label smoothing is for the softmax head"):
        TrainerOptions(head="cosine", label_smoothing=0.1)
    with pytest.raises(ValueError, match="cosine_margin in"):
        TrainerOptions(head="cosine", cosine_margin=1.5)
    opts = TrainerOptions(head="cosine", cosine_margin=0.3, cosine_scale=16.0)
    assert TrainerOptions.from_dict(opts.to_dict()) == opts
