"""`imgtfx run --backbone mobilenet_v3_small --weights FILE` end to end on LocalDagRunner (slow).

The weights file is written here (the backbone without its top, every weight shifted off Keras'
initial values), nothing is downloaded; the run trains the cosine head with the backbone frozen,
then fine-tunes its last layers, and pushes a model whose stem is still the file's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from imgtfx.pipeline.run_summary import read_summary
from imgtfx.sample_data import write_digits_tree
from imgtfx.trainer import backbones, model, options

pytestmark = pytest.mark.slow


def test_a_backbone_from_a_weights_file_runs_to_a_pushed_model(tmp_path):
    digits = write_digits_tree(str(tmp_path / "digits"), limit=200, with_defects=False)
    network = backbones.build("mobilenet_v3_small", 48)  # saved at another size than trained
    network.set_weights([w + 0.125 for w in network.get_weights()])
    weights = str(tmp_path / "weights" / "mobilenet_v3_small_notop.h5")
    os.makedirs(os.path.dirname(weights))
    network.save_weights(weights)
    distractors = tmp_path / "non-landmarks"
    distractors.mkdir()
    for i in range(4):  # photos of no digit: flat greys
        tf.io.write_file(
            str(distractors / f"{i}.png"),
            tf.io.encode_png(tf.fill([32, 32, 3], tf.constant(60 * i, tf.uint8))),
        )
    (distractors / "broken.jpg").write_bytes(b"not a photo")
    root = str(tmp_path / "run")
    done = subprocess.run(
        [
            sys.executable, "-m", "imgtfx.cli", "run",
            "--images", digits["images"], "--labels", digits["labels_csv"], "--root", root,
            "--backbone", "mobilenet_v3_small", "--weights", weights, "--head", "cosine",
            "--image-size", "32", "--train-steps", "10", "--fine-tune-layers", "5",
            "--fine-tune-steps", "5", "--min-accuracy", "0", "--predict-by", "classifier",
            "--non-landmarks", str(distractors),
            "--beam-arg=--direct_running_mode=in_memory", "--beam-arg=--direct_num_workers=1",
        ],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Trainer: done in" in done.stderr and "15 steps" in done.stderr
    summary = read_summary(root)
    assert summary.blessed is True and summary.pushed_model

    served = tf.saved_model.load(summary.pushed_model)
    kept = {v.name: v.numpy() for v in served.weights}
    stem = next(k for k in kept if k.startswith("Conv/kernel"))  # below the fine-tuned top
    assert np.array_equal(kept[stem], network.get_layer("Conv").get_weights()[0])
    assert any(k.startswith(f"{model.COSINES}/kernel") for k in kept)  # the cosine head
    one = next(
        os.path.join(folder, name)
        for folder, _, names in os.walk(digits["images"])
        for name in sorted(names)
        if name.endswith(".jpg")
    )
    out = served.signatures[model.IMAGES_SIGNATURE](images=tf.constant([open(one, "rb").read()]))
    assert out[model.ERROR].numpy()[0, 0] == b""
    # served by the classifier (--predict-by): the cosine head's own probabilities, times the
    # share of the photo's nearest photos that are train photos, not non-landmarks
    assert 0 < out[model.PROBABILITIES].numpy().sum() <= 1.0 + 1e-5
    with open(os.path.join(summary.pushed_model, options.INDEX_FILE), encoding="utf-8") as f:
        built = json.load(f)
    assert built["non_landmarks"]["photos"] == 4
    [reject] = built["non_landmarks"]["rejects"]
    assert reject["path"].endswith("broken.jpg") and reject["reason"].startswith("not_an_image")
    assert built["photos"] == summary.examples["train"] and built["build_seconds"] >= 0
