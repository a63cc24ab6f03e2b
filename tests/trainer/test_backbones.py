"""Pretrained backbones: weights from files the test writes (nothing is downloaded), the frozen
and fine-tuning phases, serving, and what pretraining buys on a few-shot task."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from imgtfx.trainer import backbones, model, options, serving, training
from imgtfx.trainer.options import TrainerOptions
from tests.helpers.models import batches, reference, shapes_task

keras = model.keras
SIZE = 32


def test_the_light_options_know_every_backbone():
    assert options.BACKBONES == backbones.NAMES
    assert options.MIN_BACKBONE_IMAGE_SIZE == backbones.MIN_IMAGE_SIZE


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A mobilenet_v3_small backbone's weights without its top, as `save_weights` writes them
    at 64 px (random, but not Keras' initial values: every weight shifted)."""
    network = backbones.build("mobilenet_v3_small", 64)
    network.set_weights([w + 0.01 * (i + 1) for i, w in enumerate(network.get_weights())])
    path = str(tmp_path_factory.mktemp("weights") / "mobilenet_v3_small_notop.h5")
    network.save_weights(path)
    return path, network.get_weights()


def test_a_backbone_loads_a_weights_file_at_another_image_size(weights_file):
    path, saved = weights_file
    network = backbones.build("mobilenet_v3_small", 96, path)
    loaded = network.get_weights()
    assert len(loaded) == len(saved)
    assert all(np.array_equal(a, b) for a, b in zip(loaded, saved, strict=True))


def test_a_tensorflow_checkpoint_loads_too(tmp_path):
    network = backbones.build("mobilenet_v3_small", SIZE)
    network.set_weights([w + 0.5 for w in network.get_weights()])
    path = str(tmp_path / "checkpoint" / "backbone")
    network.save_weights(path)  # no .h5: TensorFlow's checkpoint format
    again = backbones.build("mobilenet_v3_small", SIZE, path)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(again.get_weights(), network.get_weights(), strict=True)
    )


def test_a_file_of_another_architecture_is_one_clear_error(weights_file, tmp_path):
    path, _ = weights_file
    with pytest.raises(backbones.WeightsError, match="does not fit backbone mobilenet_v3_large"):
        backbones.build("mobilenet_v3_large", SIZE, path)
    with pytest.raises(backbones.WeightsError, match="no weights file at"):
        backbones.check_weights(str(tmp_path / "missing.h5"))
    (tmp_path / "broken.h5").write_bytes(b"not hdf5")
    with pytest.raises(backbones.WeightsError, match="does not fit"):
        backbones.build("mobilenet_v3_small", SIZE, str(tmp_path / "broken.h5"))


def test_imagenet_weights_never_download(monkeypatch, tmp_path):
    """An empty Keras cache and no network: one error naming the cache, not a download."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    from tf_keras.src.utils import data_utils

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure: no network here")

    monkeypatch.setattr(data_utils, "urlretrieve", no_network)
    with pytest.raises(backbones.WeightsError, match="no ImageNet weights for resnet50"):
        backbones.build("resnet50", SIZE, backbones.IMAGENET)


def test_the_weights_digest_follows_the_content(weights_file, tmp_path):
    path, _ = weights_file
    copy = tmp_path / "copy.h5"
    copy.write_bytes(open(path, "rb").read())
    assert backbones.weights_digest(str(copy)) == backbones.weights_digest(path)
    copy.write_bytes(open(path, "rb").read() + b"\0")
    assert backbones.weights_digest(str(copy)) != backbones.weights_digest(path)


def test_frozen_phase_keeps_the_backbone_and_fine_tuning_trains_its_top(weights_file):
    path, saved = weights_file
    opts = TrainerOptions(
        image_size=SIZE, backbone="mobilenet_v3_small", weights=path, fine_tune_layers=10,
        fine_tune_steps=3, batch_size=8,
    )  # fmt: skip
    classifier = model.build_model(3, opts)
    network = model.backbone_of(classifier)
    before = [w.numpy().copy() for w in network.weights]
    images, labels = shapes_task(3, 8, seed=1)
    classifier.fit(batches(images, labels, 8), steps_per_epoch=3, epochs=1, verbose=0)
    after_head = [w.numpy() for w in network.weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after_head, strict=True))

    model.unfreeze_top(classifier, opts.fine_tune_layers)
    model.compile_model(classifier, opts, 1e-3)
    classifier.fit(batches(images, labels, 8), steps_per_epoch=3, epochs=1, verbose=0)
    changed = {
        w.name
        for w, a in zip(network.weights, before, strict=True)
        if not np.array_equal(w.numpy(), a)
    }
    top = {w.name for layer in network.layers[-10:] for w in layer.trainable_weights}
    assert top and changed == top  # the top trained; the rest and every BatchNorm did not
    assert not any("BatchNorm" in name or "moving" in name for name in changed)


def test_exported_backbone_model_serves_the_keras_model_probabilities(weights_file, tmp_path):
    from tests.helpers.images import encode

    path, _ = weights_file
    opts = TrainerOptions(image_size=SIZE, backbone="mobilenet_v3_small", weights=path)
    classifier = model.build_model(4, opts)
    vocabulary = ["a", "b", "c", "d"]
    serving.export(classifier, vocabulary, opts, str(tmp_path / "1"))
    images = [encode("JPEG", size=(48, 40), seed=s) for s in range(3)]
    served = tf.saved_model.load(str(tmp_path / "1")).signatures[model.IMAGES_SIGNATURE]
    answer = served(images=tf.constant(images))
    expected = reference(classifier, images)
    np.testing.assert_allclose(answer[model.PROBABILITIES].numpy(), expected, atol=1e-5)
    assert [e.decode() for e in answer[model.ERROR].numpy()[:, 0]] == ["", "", ""]


@pytest.mark.slow
def test_a_pretrained_backbone_beats_random_weights_on_a_few_shotshapes_task(tmp_path):
    """The mechanism, on data made here: a backbone pretrained (by the test) on 8 classes of
    coloured discs, then its head and top trained on 4 new colours with 4 photos each, beats the
    same backbone trained from random weights on those 16 photos for as many steps."""
    pretrain = TrainerOptions(image_size=SIZE, backbone="mobilenet_v3_small", batch_size=32)
    tf.keras.utils.set_random_seed(1)  # the pretraining too: a seed-free start scored 0.41
    source = model.build_model(8, pretrain)
    for layer in model.backbone_of(source).layers:  # 150 steps: let BatchNorm's averages settle
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    model.compile_model(source, pretrain, 2e-3)
    images, labels = shapes_task(8, 60, seed=2)
    source.fit(batches(images, labels, 32), steps_per_epoch=150, epochs=1, verbose=0)
    path = str(tmp_path / "pretrained_notop.h5")
    model.backbone_of(source).save_weights(path)

    few_x, few_y = shapes_task(4, 4, seed=3, offset=8)
    test_x, test_y = shapes_task(4, 50, seed=4, offset=8)
    scores = {}
    for weights in (path, "none"):
        opts = dataclasses.replace(pretrain, weights=weights, batch_size=16)
        tf.keras.utils.set_random_seed(0)
        classifier = model.build_model(4, opts)
        classifier.fit(batches(few_x, few_y, 16), steps_per_epoch=60, epochs=1, verbose=0)
        _, scores[weights] = classifier.evaluate(test_x.astype("float32"), test_y, verbose=0)
    print(f"\nfew-shot accuracy: pretrained {scores[path]:.3f}, random {scores['none']:.3f}")
    assert scores[path] > scores["none"] + 0.2


def test_options_reject_what_no_backbone_can_use():
    with pytest.raises(ValueError, match="unknown backbone"):
        TrainerOptions(backbone="vgg")
    with pytest.raises(ValueError, match="small_cnn trains from scratch"):
        TrainerOptions(weights="imagenet")
    with pytest.raises(ValueError, match="at least 32 px"):
        TrainerOptions(backbone="resnet50", image_size=24)
    with pytest.raises(ValueError, match="give --weights"):
        TrainerOptions(backbone="resnet50", fine_tune_steps=10, fine_tune_layers=5)
    opts = TrainerOptions(backbone="resnet50", weights="imagenet", fine_tune_steps=5)
    assert TrainerOptions.from_dict(opts.to_dict()) == opts


def test_label_smoothing_and_weight_decay_compile():
    opts = TrainerOptions(image_size=SIZE, filters=(4,), label_smoothing=0.1, weight_decay=1e-4)
    classifier = model.build_model(3, opts)
    assert type(classifier.optimizer).__name__ == "AdamW"
    targets = np.array([0, 1])
    probabilities = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], "float32")
    # Certain and right is not a zero loss once smoothed: 0.1 of the target is elsewhere.
    assert float(tf.reduce_mean(classifier.loss(targets, probabilities))) > 0.1


def test_on_cpu_the_strategy_is_the_default_one_and_the_policy_float32():
    strategy = training.hardware(TrainerOptions())
    assert strategy.num_replicas_in_sync == 1
    assert keras.mixed_precision.global_policy().name == "float32"
