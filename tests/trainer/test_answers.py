"""What a served model answers where it must not name a label: an answer under its
min_confidence abstains (in the model, `imgtfx predict` and the submission), and a network's
answer that is not a number is an error, not class 0 (test_serving.py has the rest)."""

from __future__ import annotations

import io

import numpy as np
import tensorflow as tf
from PIL import Image

from imgtfx.trainer import model, retrieval, serving
from imgtfx.trainer.options import TrainerOptions
from tests.helpers.images import encode, write
from tests.trainer.test_serving import (
    SIZE,
    VOCABULARY,
    as_text,
    assert_refused,
    linear_model,
    reference,
)


def test_under_min_confidence_the_answer_abstains_in_the_model_predict_and_submission(
    tmp_path, capsys
):
    """A model exported with min_confidence: an image whose best probability is under it gets
    scores of zeros, class_index -1 and no label (no error: it was read); `imgtfx predict`
    says `abstained`, and the submission leaves its row empty, as the contest reads no
    prediction."""
    import csv
    import json

    from imgtfx import cli

    keras_model = linear_model()
    photos = [encode("JPEG", size=(30, 20), seed=s) for s in range(6)]
    best = reference(keras_model, photos).max(axis=1)
    threshold = float(np.median(best))
    path = str(tmp_path / "abstaining" / "1")
    options = TrainerOptions(image_size=SIZE, filters=(4, 8), min_confidence=threshold)
    serving.export(keras_model, VOCABULARY, options, path)
    out = tf.saved_model.load(path).signatures[model.IMAGES_SIGNATURE](images=tf.constant(photos))
    under = [i for i in range(6) if best[i] < threshold]
    assert 0 < len(under) < 6
    assert_refused(out, under)
    assert as_text(out[model.ERROR]) == [""] * 6
    answered = [i for i in range(6) if i not in under]
    assert all(as_text(out[model.LABEL_NAME])[i] in VOCABULARY for i in answered)

    folder = tmp_path / "photos"
    for i, data in enumerate(photos):
        write(folder / f"{i}.jpg", data)
    assert cli.main(["predict", "--model", path, str(folder)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [bool(line.get("abstained")) for line in lines] == [i in under for i in range(6)]
    assert all("label" not in lines[i] for i in under)
    submission = tmp_path / "submission.csv"
    assert cli.main(["predict", "--model", path, "--submission", str(submission), str(folder)]) == 0
    with open(submission, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))[1:]
    assert [row[1] == "" for row in rows] == [i in under for i in range(6)]
    captured = capsys.readouterr()
    assert f"6 rows, {len(answered)} predicted" in captured.out and not captured.err


def test_an_answer_that_is_not_a_number_is_an_error_not_a_label(tmp_path):
    """A network that overflows (weights that do not fit it) answers NaN; argmax would name
    class 0. The image gets a `not_finite` error instead, its neighbours the refused image's
    blanks, and the other images of the batch their own answers."""
    keras = model.keras
    pixels = keras.Input((SIZE, SIZE, 3))
    flat = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(pixels))
    # exp of a bright image's pixel sum overflows float32: inf, then NaN through the softmax
    blown = keras.layers.Lambda(lambda x: tf.exp(100.0 * tf.reduce_mean(x, -1, keepdims=True)))
    scores = keras.layers.Dense(len(VOCABULARY))(keras.layers.Concatenate()([flat, blown(flat)]))
    overflowing = keras.Model(pixels, keras.layers.Softmax()(scores))
    path = str(tmp_path / "model")
    options = TrainerOptions(image_size=SIZE, neighbours=2)
    embedder = keras.Model(overflowing.inputs, model.features_of(overflowing))

    def flat(level: int) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (20, 20), (level,) * 3).save(buffer, "PNG")
        return buffer.getvalue()

    dark, bright = flat(10), flat(250)
    index = retrieval.Index(
        retrieval.embed_images(embedder, [dark, dark], options),
        np.array([0, 1], np.int64),
        np.array([b"d0", b"d1"]),
    )
    serving.export(overflowing, VOCABULARY, options, path, index=index)
    out = tf.saved_model.load(path).signatures[model.IMAGES_SIGNATURE](
        images=tf.constant([dark, bright])
    )
    errors = as_text(out[model.ERROR])
    assert errors[0] == "" and errors[1].startswith(f"{model.NOT_FINITE}: ")
    assert_refused(out, [1])
    assert np.all(np.isfinite(out[model.PROBABILITIES].numpy()))
    assert as_text(out[model.NEIGHBOUR_IDS])[2:] == ["", ""]
    assert as_text(out[model.LABEL_NAME])[0] in VOCABULARY
