"""examples/own_pipeline: ImageExampleGen in a user's own TFX pipeline, every standard component
after it, module files for Transform and Trainer, on LocalDagRunner (marked slow)."""

from __future__ import annotations

import importlib.util
import io
import os

import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2
from PIL import Image
from tfx.orchestration import metadata

from imgtfx.sample_data import write_digits_tree
from tests.helpers.images import photo, with_orientation

pytestmark = pytest.mark.slow

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "own_pipeline")
STEPS = {
    "ImageExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "LabelSchema",
    "ExampleValidator",
    "Transform",
    "Trainer",
    "Evaluator",
    "BulkInferrer",
    "Pusher",
}


def _example_module():
    spec = importlib.util.spec_from_file_location(
        "own_pipeline", os.path.join(EXAMPLE, "pipeline.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _add_every_kept_format(folder: str) -> None:
    """A BMP, an animated GIF and a sideways phone photo: what cifar10's decode_png and
    decode_jpeg fail on, and what a frozen default schema flags."""
    os.makedirs(folder, exist_ok=True)
    for i in range(3):
        picture = photo(size=(32, 32), seed=i)
        picture.save(os.path.join(folder, f"bmp-{i}.bmp"))
        frames = [picture, picture.transpose(Image.FLIP_LEFT_RIGHT)]
        frames[0].save(
            os.path.join(folder, f"gif-{i}.gif"), save_all=True, append_images=frames[1:]
        )
        jpeg = io.BytesIO()
        photo(size=(40, 32), seed=10 + i).save(jpeg, "JPEG")
        with open(os.path.join(folder, f"sideways-{i}.jpg"), "wb") as f:
            f.write(with_orientation(jpeg.getvalue(), 6))


def test_a_users_own_pipeline_runs_every_standard_component(tmp_path):
    digits = write_digits_tree(str(tmp_path / "digits"), limit=200, with_defects=False)
    images = digits["images"]
    _add_every_kept_format(os.path.join(images, "train", "부산", "칠"))  # sevens, in Korean
    root = str(tmp_path / "run")
    own = _example_module()
    from tfx import v1 as tfx

    tfx.orchestration.LocalDagRunner().run(
        own.create_pipeline(images, root, train_steps=20, min_accuracy=0.0)
    )

    config = metadata.sqlite_metadata_connection_config(os.path.join(root, "metadata.sqlite"))
    with metadata.Metadata(config) as m:
        states = {}
        for execution in m.store.get_executions():
            name = m.store.get_execution_types_by_id([execution.type_id])[0].name
            states[name.rsplit(".", 1)[-1]] = execution.last_known_state
        examples = m.store.get_artifacts_by_type("Examples")
    complete = metadata_store_pb2.Execution.COMPLETE
    assert {step for step, state in states.items() if state == complete} >= STEPS, states

    (converted,) = [a for a in examples if "ImageExampleGen" in a.uri]
    eval_count = converted.custom_properties["examples_eval"].int_value
    formats = set()
    for split in ("train", "eval"):
        pattern = os.path.join(converted.uri, f"Split-{split}", "*.gz")
        for record in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), "GZIP"):
            example = tf.train.Example.FromString(record.numpy())
            formats.add(example.features.feature["format"].bytes_list.value[0])
    assert formats == {b"bmp", b"gif", b"jpeg", b"png"}  # Transform decoded every one

    from tensorflow_serving.apis import prediction_log_pb2

    logs = tf.io.gfile.glob(
        os.path.join(root, "pipeline", "BulkInferrer", "inference_result", "*", "*")
    )
    answers = [
        prediction_log_pb2.PredictionLog.FromString(r.numpy())
        for r in tf.data.TFRecordDataset(logs, "GZIP")
    ]
    assert len(answers) == eval_count
    probabilities = tf.make_ndarray(answers[0].predict_log.response.outputs["probabilities"])
    assert probabilities.shape == (1, 10)
    assert os.listdir(os.path.join(root, "serving"))  # pushed
