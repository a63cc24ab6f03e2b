"""The serving signatures answer per image: a bad or oversized image gets its own error, and the
rest of the batch is predicted as if it had come alone."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from imgtfx.components import image_files
from imgtfx.components.examples import decode
from imgtfx.components.examples.reasons import MAX_PIXELS, TOO_MANY_PIXELS
from imgtfx.trainer import model, serving
from imgtfx.trainer.options import TrainerOptions
from tests.helpers.images import encode, photo, write
from tests.helpers.models import reference

SIZE = 32
VOCABULARY = ["a", "b", "c"]
NAMES = ["경복궁", "b", "Namsan <Tower>"]  # display names; "b" has none of its own
LIMIT = 1000  # pixels, for the model exported with a lowered limit


def linear_model():
    """A linear model on the pixels: unlike an untrained CNN, its answer moves with the picture,
    so a mixed-up row in a batch would show."""
    keras = model.keras
    pixels = keras.Input((SIZE, SIZE, 3))
    scores = keras.layers.Dense(
        len(VOCABULARY), kernel_initializer=keras.initializers.RandomNormal(stddev=0.02, seed=1)
    )(keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(pixels)))
    return keras.Model(pixels, keras.layers.Softmax()(scores))


def jpeg(size=(64, 40), seed=0) -> bytes:
    buffer = io.BytesIO()
    photo(size=size, seed=seed).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header (valid IHDR and CRC) claiming width x height, followed by no pixels."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"garbage"


@pytest.fixture(scope="module")
def huge_png():
    """A real 12000x12000 PNG: 137 KiB on disk, 412 MiB of RGB pixels once decoded."""
    buffer = io.BytesIO()
    Image.new("L", (12000, 12000)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(SavedModel path, Keras model, path of the same model with max_pixels=LIMIT); the first
    has NAMES, the second the labels as names (export's default)."""
    keras_model = linear_model()
    root = tmp_path_factory.mktemp("serving")
    paths = []
    for name, options, names in (
        ("default", TrainerOptions(image_size=SIZE, filters=(4, 8)), NAMES),
        ("limited", TrainerOptions(image_size=SIZE, filters=(4, 8), max_pixels=LIMIT), None),
    ):
        paths.append(str(root / name / "1"))
        serving.export(keras_model, VOCABULARY, options, paths[-1], label_names=names)
    return paths[0], keras_model, paths[1]


@pytest.fixture(scope="module")
def loaded(exported):
    """Both SavedModels loaded once (a load takes seconds): (default, limited)."""
    return tf.saved_model.load(exported[0]), tf.saved_model.load(exported[2])


def as_text(values) -> list[str]:
    return [v.decode() for v in values.numpy().reshape(-1)]


def assert_refused(out, rows: list[int]) -> None:
    """The placeholder answer of refused images."""
    np.testing.assert_array_equal(out[model.PROBABILITIES].numpy()[rows], 0.0)
    assert list(out[model.CLASS_INDEX].numpy()[rows, 0]) == [-1] * len(rows)
    assert [as_text(out[model.LABEL_NAME])[i] for i in rows] == [""] * len(rows)
    assert [as_text(out[model.LABEL_DISPLAY_NAME])[i] for i in rows] == [""] * len(rows)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bad_images_get_their_own_error_and_the_rest_are_predicted(exported, loaded, huge_png):
    keras_model = exported[1]
    good_jpeg, good_png = jpeg(seed=1), encode("PNG", size=(50, 30), seed=2)
    truncated = good_jpeg[: len(good_jpeg) // 2]
    serve = loaded[0].signatures[model.IMAGES_SIGNATURE]

    out = serve(images=tf.constant([good_jpeg, truncated, huge_png, good_png]))
    alone = serve(images=tf.constant([good_jpeg, good_png]))

    errors = as_text(out[model.ERROR])
    assert errors[0] == errors[3] == ""
    assert errors[1].startswith(f"{model.UNDECODABLE}: JPEG")
    # Worded as the converter words its own refusal of the same file.
    refusal = image_files.check_image(huge_png, MAX_PIXELS, transcode=True)
    assert errors[2] == f"{refusal.reason}: {refusal.detail}"
    assert errors[2] == "too_many_pixels: 12000x12000 is over max_pixels=89478485"
    assert_refused(out, [1, 2])
    predicted = out[model.PROBABILITIES].numpy()[[0, 3]]
    np.testing.assert_allclose(predicted, alone[model.PROBABILITIES].numpy(), atol=1e-6)
    np.testing.assert_allclose(predicted, reference(keras_model, [good_jpeg, good_png]), atol=1e-5)
    assert list(out[model.CLASS_INDEX].numpy()[[0, 3], 0]) == list(predicted.argmax(axis=1))
    assert [as_text(out[model.LABEL_NAME])[i] for i in (0, 3)] == [
        VOCABULARY[i] for i in predicted.argmax(axis=1)
    ]
    assert [as_text(out[model.LABEL_DISPLAY_NAME])[i] for i in (0, 3)] == [
        NAMES[i] for i in predicted.argmax(axis=1)
    ]


def test_oversized_images_are_refused_from_their_header_before_decoding(loaded):
    """A header claiming 12000x12000 over bytes that hold no pixels: a decoder would call it
    corrupt; the graph refuses it for its size, so it never reached the decoder."""
    serve = loaded[0].signatures[model.IMAGES_SIGNATURE]
    out = serve(images=tf.constant([png_claiming(12000, 12000), png_claiming(20, 10)]))
    assert as_text(out[model.ERROR]) == [
        "too_many_pixels: 12000x12000 is over max_pixels=89478485",
        f"{model.UNDECODABLE}: PNG data that cannot be decoded",
    ]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP"])
def test_lowered_pixel_limit_is_read_from_each_format_header(exported, loaded, fmt):
    """TrainerOptions.max_pixels bounds serving: 40x25 (exactly the limit) is predicted, 41x25 is
    refused, in every format TensorFlow decodes."""
    serve = loaded[1].signatures[model.IMAGES_SIGNATURE]
    at_limit, over = encode(fmt, size=(40, 25), seed=3), encode(fmt, size=(41, 25), seed=4)
    out = serve(images=tf.constant([over, at_limit]))
    assert as_text(out[model.ERROR]) == ["too_many_pixels: 41x25 is over max_pixels=1000", ""]
    np.testing.assert_allclose(
        out[model.PROBABILITIES].numpy()[1:], reference(exported[1], [at_limit]), atol=1e-5
    )


def test_header_dimensions_agree_with_pil():
    bottom_up = encode("BMP", size=(33, 23), seed=5)
    top_down = bytearray(bottom_up)
    top_down[22:26] = struct.pack("<i", -23)  # a negative height: rows stored top-down
    encoded = [
        encode("JPEG", size=(30, 20)),
        encode("PNG", size=(31, 21), mode="RGBA"),
        encode("GIF", size=(32, 22)),
        bottom_up,
        bytes(top_down),
    ]
    for data in encoded:
        width, height = Image.open(io.BytesIO(data)).size
        assert [int(v) for v in decode.image_dimensions(tf.constant(data))] == [height, width]
    assert tf.io.decode_image(bytes(top_down)).shape == (23, 33, 3)
    kinds = decode.image_format(tf.constant(encoded + [b"RIFF....WEBP", b"", b"BM"]))
    assert as_text(kinds) == ["JPEG", "PNG", "GIF", "BMP", "BMP", "", "", "BMP"]
    heights, widths = decode.header_dimensions(tf.constant([b"", b"BM", b"\x89PNG\r\n\x1a\n"]))
    assert list(heights.numpy()) == list(widths.numpy()) == [0, 0, 0]


def test_examples_signature_answers_per_example(exported, loaded):
    keras_model = exported[1]
    good = jpeg(seed=6)

    def example(**features) -> bytes:
        return tf.train.Example(
            features=tf.train.Features(
                feature={
                    k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
                    for k, v in features.items()
                }
            )
        ).SerializeToString()

    serialized = [example(image_raw=good), example(image_raw=b"not an image"), example(id=b"x")]
    out = loaded[0].signatures[model.EXAMPLES_SIGNATURE](examples=tf.constant(serialized))
    assert as_text(out[model.ERROR]) == [
        "",
        f"{model.UNDECODABLE}: not JPEG, PNG, GIF or BMP data",
        f"{model.UNDECODABLE}: not JPEG, PNG, GIF or BMP data",
    ]
    assert_refused(out, [1, 2])
    np.testing.assert_allclose(
        out[model.PROBABILITIES].numpy()[:1], reference(keras_model, [good]), atol=1e-5
    )
    evaluate = loaded[0].signatures[model.EVAL_SIGNATURE](image_raw=tf.constant([good, b"x"]))
    assert as_text(evaluate[model.ERROR]) == [
        "",
        f"{model.UNDECODABLE}: not JPEG, PNG, GIF or BMP data",
    ]


def test_batches_of_only_bad_images_and_empty_batches(loaded):
    serve = loaded[0].signatures[model.IMAGES_SIGNATURE]
    out = serve(images=tf.constant([b"", b"\xff\xd8\xff\xe0broken"]))
    assert out[model.PROBABILITIES].shape == (2, len(VOCABULARY))
    assert_refused(out, [0, 1])
    empty = serve(images=tf.constant([], tf.string))
    assert empty[model.PROBABILITIES].shape == (0, len(VOCABULARY))
    assert empty[model.ERROR].shape == (0, 1)


def test_a_tf1_session_runs_the_signature_as_tf_serving_does(exported, huge_png):
    """TF Serving loads a SavedModel into a C++ Session and runs the signature's tensors, with no
    Python in the process: the per-image answers must come from graph ops alone."""
    path, _, _ = exported
    batch = [jpeg(seed=7), b"garbage", huge_png]
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        signature = meta.signature_def[model.IMAGES_SIGNATURE]
        fetches = {k: v.name for k, v in signature.outputs.items()}
        out = session.run(fetches, {signature.inputs["images"].name: batch})
    assert [e.decode().split(":")[0] for e in out[model.ERROR][:, 0]] == [
        "",
        model.UNDECODABLE,
        TOO_MANY_PIXELS,
    ]
    assert list(out[model.CLASS_INDEX][1:, 0]) == [-1, -1]
    best = int(out[model.CLASS_INDEX][0, 0])
    assert [n.decode() for n in out[model.LABEL_DISPLAY_NAME][:, 0]] == [NAMES[best], "", ""]


def test_predict_prints_an_error_line_for_an_image_the_model_refuses(exported, tmp_path):
    """A file that passes predict's own checks but is over the model's lowered pixel limit gets
    the model's error line; the files around it are predicted."""
    from imgtfx import predict

    _, keras_model, limited = exported
    small, large = encode("JPEG", size=(30, 20), seed=8), encode("JPEG", size=(60, 40), seed=9)
    files = [
        write(tmp_path / "a.jpg", small),
        write(tmp_path / "b.jpg", large),
        write(tmp_path / "c.jpg", small),
    ]
    lines = list(predict.predict(limited, files, top_k=1))
    assert [line["path"] for line in lines] == files
    assert lines[1] == {"path": files[1], "error": "too_many_pixels: 60x40 is over max_pixels=1000"}
    expected = reference(keras_model, [small])[0]
    for line in (lines[0], lines[2]):
        assert line["label"] == VOCABULARY[int(expected.argmax())]
        assert line["probability"] == pytest.approx(float(expected.max()), abs=1e-5)


def test_predict_names_each_answer_when_the_model_has_names(exported, tmp_path):
    """Each line and each top_k entry gains the label's display name; a model exported before
    label_names.json existed answers with labels only."""
    import shutil

    from imgtfx import predict
    from imgtfx.components.examples.layout import LABEL_NAMES_FILE

    path, keras_model, limited = exported
    image = write(tmp_path / "a.jpg", encode("JPEG", size=(30, 20), seed=10))
    expected = reference(keras_model, [open(image, "rb").read()])[0]
    order = [int(i) for i in (-expected).argsort()]

    (line,) = predict.predict(path, [image], top_k=3)
    assert (line["label"], line["name"]) == (VOCABULARY[order[0]], NAMES[order[0]])
    assert [(k["label"], k["name"]) for k in line["top_k"]] == [
        (VOCABULARY[i], NAMES[i]) for i in order
    ]
    (plain,) = predict.predict(limited, [image], top_k=1)
    assert plain["name"] == plain["label"]  # exported without names: the labels
    older = tmp_path / "older"
    shutil.copytree(path, older)
    os.remove(older / LABEL_NAMES_FILE)
    (old,) = predict.predict(str(older), [image], top_k=2)
    assert "name" not in old and all("name" not in k for k in old["top_k"])
    assert old["label"] == line["label"]


def test_predict_writes_the_contest_submission_one_row_per_image(exported, tmp_path, capsys):
    """`imgtfx predict --submission`: id,landmark_id,conf for every file of the folder, in
    order; a broken file gets an empty prediction and a line on stderr."""
    import csv

    from imgtfx import cli

    path, keras_model, _ = exported
    folder = tmp_path / "test"
    good = encode("JPEG", size=(30, 20), seed=11)
    write(folder / "0a1b.jpg", good)
    write(folder / "남산.jpg", encode("PNG", size=(20, 30), seed=12))
    write(folder / "broken.jpg", b"not an image")
    out = tmp_path / "submission.csv"
    assert cli.main(["predict", "--model", path, "--submission", str(out), str(folder)]) == 0
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "landmark_id", "conf"]
    assert [r[0] for r in rows[1:]] == ["0a1b", "broken", "남산"]
    expected = reference(keras_model, [good])[0]
    assert rows[1][1] == VOCABULARY[int(expected.argmax())]
    assert float(rows[1][2]) == pytest.approx(float(expected.max()), abs=1e-5)
    assert rows[2][1:] == ["", ""] and rows[3][1] in VOCABULARY
    captured = capsys.readouterr()
    assert "broken.jpg: not_an_image" in captured.err
    assert "3 rows, 2 predicted" in captured.out


def test_options_carry_the_pixel_limit():
    from imgtfx.components.image_example_gen.options import ImageOptions

    assert TrainerOptions().max_pixels == ImageOptions().max_pixels == MAX_PIXELS
    lowered = TrainerOptions(max_pixels=4_000_000)
    assert TrainerOptions.from_dict(lowered.to_dict()) == lowered
    with pytest.raises(ValueError, match="max_pixels must be positive"):
        TrainerOptions(max_pixels=0)


def test_every_signature_serves_the_embedding_and_embed_serves_it_alone(loaded):
    """Unit rows, the same from each signature for the same image, zeros where refused."""
    serve = loaded[0].signatures
    raw = [jpeg(seed=3), b"garbage", jpeg(seed=4)]
    alone = serve[model.EMBED_SIGNATURE](images=tf.constant(raw))
    embedding = alone[model.EMBEDDING].numpy()
    assert embedding.shape[0] == 3 and alone[model.ERROR].shape == (3, 1)
    np.testing.assert_allclose(np.linalg.norm(embedding[[0, 2]], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(embedding[1], 0.0)
    assert as_text(alone[model.ERROR])[1].startswith(model.UNDECODABLE)
    with_answer = serve[model.IMAGES_SIGNATURE](images=tf.constant(raw))
    np.testing.assert_allclose(with_answer[model.EMBEDDING].numpy(), embedding, atol=1e-6)
    assert not np.allclose(embedding[0], embedding[2])  # a picture's own, not a constant
