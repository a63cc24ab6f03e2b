"""The CNN as pure functions, its input pipeline, and its two serving signatures."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from imgtfx.components.examples import layout
from imgtfx.trainer import data, model, serving, training
from imgtfx.trainer.options import TrainerOptions
from tests.helpers.conversions import run_do
from tests.helpers.images import encode, make_tree, write

SMALL = TrainerOptions(image_size=16, batch_size=4, filters=(4, 8))


def test_build_model_shapes_and_probabilities():
    m = model.build_model(5, SMALL)
    assert m.input_shape == (None, 16, 16, 3)
    assert m.output_shape == (None, 5)
    out = m(np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32"))
    np.testing.assert_allclose(out.numpy().sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="at least 2 classes"):
        model.build_model(1, SMALL)


def test_options_reject_unknown_image_size():
    with pytest.raises(ValueError, match="--image-size must be between 16 and 512"):
        TrainerOptions(image_size=4)
    back = TrainerOptions.from_dict(SMALL.to_dict())
    assert back == SMALL


def test_balanced_class_weights():
    weights = training.balanced_class_weights([10, 30, 0])
    assert weights == {0: 2.0, 1: 40 / 60, 2: 0.0}
    assert weights[0] * 10 == pytest.approx(weights[1] * 30)


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trainer")
    root = tmp / "images"
    make_tree(root, classes=("cat", "dog", "owl"), per_class=8)
    write(root / "train" / "owl" / "gray.png", encode("PNG", mode="L", size=(30, 10)))
    write(root / "train" / "owl" / "rgba.png", encode("PNG", mode="RGBA", size=(10, 30)))
    out = tmp / "examples"
    run_do(root, out)
    return str(out)


def test_make_dataset_decodes_resizes_and_batches(examples):
    patterns = [layout.split_files(examples, "train")]
    batch_images, batch_labels = next(iter(data.make_dataset(patterns, SMALL, training=True)))
    assert batch_images.shape == (4, 16, 16, 3) and batch_images.dtype == tf.float32
    assert float(tf.reduce_min(batch_images)) >= 0 and float(tf.reduce_max(batch_images)) <= 255
    assert set(batch_labels.numpy()) <= {0, 1, 2}
    plain = data.make_dataset(patterns, SMALL, training=False, repeat=False)
    assert sum(int(b[1].shape[0]) for b in plain) == sum(data.class_counts(patterns).values())
    assert data.vocabulary_of(patterns) == ["cat", "dog", "owl"]


def test_exported_model_answers_both_signatures_with_label_names(examples, tmp_path):
    patterns = [layout.split_files(examples, "train")]
    vocabulary = data.vocabulary_of(patterns)
    m = model.build_model(len(vocabulary), SMALL)
    m.fit(data.make_dataset(patterns, SMALL, training=True), steps_per_epoch=2, epochs=1, verbose=0)
    path = str(tmp_path / "serving")
    serving.export(m, vocabulary, SMALL, path, data.label_names_of(patterns))

    loaded = tf.saved_model.load(path)
    serialized = [
        r.numpy() for r in tf.data.TFRecordDataset(tf.io.gfile.glob(patterns[0]), "GZIP").take(3)
    ]
    by_example = loaded.signatures[model.EXAMPLES_SIGNATURE](examples=tf.constant(serialized))
    raw = [
        tf.train.Example.FromString(s).features.feature["image_raw"].bytes_list.value[0]
        for s in serialized
    ]
    by_image = loaded.signatures[model.IMAGES_SIGNATURE](images=tf.constant(raw))
    for out in (by_example, by_image):
        assert out[model.PROBABILITIES].shape == (3, 3)
        # One answer a row, [batch, 1], as TFX's BulkInferrer needs (serving.ServingModule)
        for key in (model.CLASS_INDEX, model.LABEL_NAME, model.LABEL_DISPLAY_NAME, model.ERROR):
            assert out[key].shape == (3, 1)
        names = [n.decode() for n in out[model.LABEL_NAME].numpy()[:, 0]]
        assert names == [vocabulary[i] for i in out[model.CLASS_INDEX].numpy()[:, 0]]
        # Folder labels are their own display names.
        assert [n.decode() for n in out[model.LABEL_DISPLAY_NAME].numpy()[:, 0]] == names
    np.testing.assert_allclose(
        by_example[model.PROBABILITIES].numpy(), by_image[model.PROBABILITIES].numpy(), rtol=1e-5
    )
    assert open(f"{path}/labels.txt").read().split() == vocabulary
    assert open(f"{path}/label_names.json").read() == '["cat", "dog", "owl"]'


def test_raw_phone_photos_are_served_upright(tmp_path):
    """A sideways photo with an EXIF orientation tag, sent as its file's bytes to the raw-bytes
    signature and to `imgtfx predict`, gets the answer of the upright picture; the same pixels
    without the tag (what a decoder that ignores EXIF sees) get another."""
    import io

    from imgtfx import predict
    from tests.helpers.images import photo, with_orientation

    picture = photo(size=(64, 40), seed=5)

    def jpeg(image):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=95)
        return buffer.getvalue()

    upright = jpeg(picture)
    sideways = jpeg(picture.transpose(2))  # ROTATE_90: stored turned, as a phone stores it
    tagged = with_orientation(sideways, 6)  # "turn 90 degrees clockwise to show"
    options = TrainerOptions(image_size=32, batch_size=4, filters=(4, 8))
    # A linear model on the pixels: unlike an untrained CNN, its answer moves with the picture.
    keras = model.keras
    pixels = keras.Input((32, 32, 3))
    scores = keras.layers.Dense(
        3, kernel_initializer=keras.initializers.RandomNormal(stddev=0.02, seed=1)
    )(keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(pixels)))
    linear = keras.Model(pixels, keras.layers.Softmax()(scores))
    path = str(tmp_path / "serving" / "1")
    serving.export(linear, ["a", "b", "c"], options, path)
    serve = tf.saved_model.load(path).signatures[model.IMAGES_SIGNATURE]
    out = serve(images=tf.constant([upright, tagged, sideways]))[model.PROBABILITIES].numpy()
    np.testing.assert_allclose(out[1], out[0], atol=0.02)
    assert np.abs(out[2] - out[0]).max() > 5 * np.abs(out[1] - out[0]).max() + 0.02

    files = [write(tmp_path / "upright.jpg", upright), write(tmp_path / "phone.jpg", tagged)]
    lines = list(predict.predict(str(tmp_path / "serving"), files, top_k=3))
    np.testing.assert_allclose(
        [p["probability"] for p in lines[1]["top_k"]],
        [p["probability"] for p in lines[0]["top_k"]],
        atol=0.02,
    )


@pytest.mark.parametrize("dim", [0, 24])
def test_the_embedding_is_the_pooled_features_or_the_neck(dim):
    options = TrainerOptions(image_size=32, filters=(4, 8), embedding_dim=dim)
    built = model.build_model(3, options)
    features = model.features_of(built)
    assert features.shape[-1] == (dim or 8)  # the last block's channels without a neck
    with pytest.raises(ValueError, match="--embedding-dim must be 0 or more"):
        TrainerOptions(embedding_dim=-1)
