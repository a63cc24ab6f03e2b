"""`imgtfx run --backbone mobilenet_v3_small --weights FILE` end to end on LocalDagRunner (slow).

The weights file is written here (the backbone without its top, every weight shifted off Keras'
initial values), nothing is downloaded; the run trains the cosine head with the backbone frozen,
then fine-tunes its last layers, and pushes a model whose stem is still the file's.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from imgtfx.pipeline.run_summary import read_summary
from imgtfx.sample_data import write_digits_tree
from imgtfx.trainer import backbones, model

pytestmark = pytest.mark.slow


def test_a_backbone_from_a_weights_file_runs_to_a_pushed_model(tmp_path):
    digits = write_digits_tree(str(tmp_path / "digits"), limit=200, with_defects=False)
    network = backbones.build("mobilenet_v3_small", 48)  # saved at another size than trained
    network.set_weights([w + 0.125 for w in network.get_weights()])
    weights = str(tmp_path / "weights" / "mobilenet_v3_small_notop.h5")
    os.makedirs(os.path.dirname(weights))
    network.save_weights(weights)
    root = str(tmp_path / "run")
    done = subprocess.run(
        [
            sys.executable, "-m", "imgtfx.cli", "run",
            "--images", digits["images"], "--labels", digits["labels_csv"], "--root", root,
            "--backbone", "mobilenet_v3_small", "--weights", weights, "--head", "cosine",
            "--image-size", "32", "--train-steps", "10", "--fine-tune-layers", "5",
            "--fine-tune-steps", "5", "--min-accuracy", "0", "--predict-by", "classifier",
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
    # served by the classifier (--predict-by): the cosine head's own probabilities
    np.testing.assert_allclose(out[model.PROBABILITIES].numpy().sum(), 1.0, rtol=1e-5)
