"""End to end on LocalDagRunner: the real pipeline on real digits, few steps (marked slow)."""

from __future__ import annotations

import dataclasses
import json
import os
import re

import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from imgtfx import predict
from imgtfx.components.examples.features import FeatureNames
from imgtfx.components.image_example_gen.options import ImageOptions
from imgtfx.pipeline import configs, local_runner
from imgtfx.pipeline.run_config import RunConfig
from imgtfx.pipeline.run_summary import read_summary
from imgtfx.report import write_run_report
from imgtfx.sample_data import write_digits_tree
from imgtfx.trainer import model
from imgtfx.trainer.options import TrainerOptions

pytestmark = pytest.mark.slow

NODES = {
    "ImageExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "LabelSchema",
    "ExampleValidator",
    "Trainer",
    "Evaluator",
    "Pusher",
}
IN_PROCESS = list(configs.BEAM_PIPELINE_ARGS)
FEATURES = FeatureNames(image="jpeg", label="landmark_id", label_name="landmark")


def _states(root):
    config = metadata.sqlite_metadata_connection_config(local_runner.paths(root)["metadata"])
    with metadata.Metadata(config) as m:
        store = m.store
        states = []
        for e in store.get_executions():
            name = store.get_execution_types_by_id([e.type_id])[0].name
            states.append((name, metadata_store_pb2.Execution.State.Name(e.last_known_state)))
    return states


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_digits_tree(str(tmp_path_factory.mktemp("digits")), limit=400, with_defects=True)


@pytest.fixture(scope="module")
def first_run(digits, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("e2e") / "run")
    config = RunConfig(
        images=digits["images"],
        # Feature names of the user's own: every step after the converter reads them from
        # the Examples artifact (the Trainer, LabelSchema, serving, the report).
        image_options=ImageOptions(labels_csv=digits["labels_csv"], features=FEATURES),
        # The classifier serves: after 30 steps it is not perfect, so the bound of 1.0 below
        # stays unreachable (the neighbours' vote can answer every eval digit right).
        trainer_options=TrainerOptions(image_size=32, batch_size=16, predict_by="classifier"),
        train_steps=30,
        eval_steps=5,
        min_accuracy=0.0,
        beam_args=IN_PROCESS,
    )
    return (config, root), local_runner.run(config, root)


def test_pipeline_runs_caches_and_pushes_a_model_that_answers(digits, first_run):
    (config, root), summary = first_run
    assert set(summary.steps) >= NODES
    assert all(summary.steps[n] == "COMPLETE" for n in NODES)
    completed = [name for name, state in _states(root) if state == "COMPLETE"]
    for node in NODES:  # each component executed exactly once
        assert sum(node in name for name in completed) == 1, (node, completed)
    assert summary.examples["train"] + summary.examples["eval"] == 400
    assert summary.rejected == 3 and summary.blessed is True
    assert 0.0 <= summary.accuracy <= 1.0
    assert read_summary(root) == summary
    # The model holds a neighbour index: the Evaluator scores each prediction method, and the
    # served one is the run's own GAP.
    assert set(summary.gap_by_method) == {"classifier", "neighbours", "blend"}
    assert all(0.0 <= v <= 1.0 for v in summary.gap_by_method.values())
    assert summary.gap_by_method["classifier"] == pytest.approx(summary.gap, abs=1e-6)

    # Nothing changed: data and training come from the cache. The Evaluator runs once more,
    # now against the model it blessed (the resolver's baseline), and after that all is cached.
    report_before = write_run_report(root)  # the report reads the first run; checked below
    assert os.path.exists(report_before)
    again = local_runner.run(config, root)
    data_steps = NODES - {"Evaluator", "Pusher"}
    assert all(again.steps[n] == "CACHED" for n in data_steps), again.steps
    assert again.steps["Evaluator"] == "COMPLETE" and again.blessed is True
    third = local_runner.run(config, root)
    assert all(third.steps[n] == "CACHED" for n in NODES), third.steps
    assert third.pushed_model == again.pushed_model
    assert third.blessing["baseline_model"]  # compared with the model it blessed first

    # An unreachable bound: only the Evaluator runs again, and summary.json says what failed.
    strict = local_runner.run(dataclasses.replace(config, min_accuracy=1.0), root)
    assert strict.steps["Trainer"] == "CACHED" and strict.blessed is False
    blessing = read_summary(root).blessing
    assert blessing["thresholds"]["min_accuracy"] == 1.0 and blessing["blessed"] is False
    assert {
        "metric": "sparse_categorical_accuracy",
        "slice": "overall",
        "bound": ">= 1",
        "against_baseline": False,
    }.items() <= blessing["failed"][0].items()
    assert blessing["failed"][0]["value"] == pytest.approx(strict.accuracy, abs=1e-5)
    back = local_runner.run(config, root)  # the earlier evaluation comes back from the cache
    assert all(back.steps[n] == "CACHED" for n in NODES) and back.blessed is True

    served = tf.saved_model.load(summary.pushed_model)
    jpgs = [
        os.path.join(folder, name)
        for folder, _, names in os.walk(digits["images"])
        for name in names
        if name.endswith(".jpg") and name not in ("empty.jpg", "truncated.jpg")
    ][:4]
    raw = [open(p, "rb").read() for p in jpgs]
    out = served.signatures[model.IMAGES_SIGNATURE](images=tf.constant(raw))
    names = {n.decode() for n in out[model.LABEL_NAME].numpy()[:, 0]}
    assert names <= {str(d) for d in range(10)}
    assert out[model.PROBABILITIES].shape == (4, 10)
    examples_file = tf.io.gfile.glob(os.path.join(summary.examples_uri, "Split-eval", "*"))[0]
    serialized = [r.numpy() for r in tf.data.TFRecordDataset(examples_file, "GZIP").take(2)]
    example = tf.train.Example.FromString(serialized[0])
    assert {FEATURES.image, FEATURES.label, FEATURES.label_name} <= set(example.features.feature)
    assert "image_raw" not in example.features.feature
    out = served.signatures[model.EXAMPLES_SIGNATURE](examples=tf.constant(serialized))
    assert {n.decode() for n in out[model.LABEL_NAME].numpy()[:, 0]} <= {str(d) for d in range(10)}


def test_report_has_every_section_with_decodable_pictures(first_run):
    import base64
    import io

    from PIL import Image

    (_, root), _ = first_run
    path = write_run_report(root)
    page = open(path, encoding="utf-8").read()
    for section in ("dataset", "samples", "statistics", "training", "evaluation", "errors"):
        assert f'<section id="{section}">' in page, section
    assert "http://" not in page and "https://" not in page  # opens from disk, no network
    assert "empty_file" in page and "truncated" in page  # rejects grouped with their paths
    assert "BLESSED" in page
    # id and path are not counted by TFDV (one value each): said so, not "0 unique".
    assert "<td>0 unique" not in page and "one value per example, not counted" in page
    assert f"<td>{FEATURES.label}</td><td>number</td>" in page  # the user's feature names
    pictures = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(pictures) >= 10
    for data in pictures:
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        image.load()
        assert image.width > 1 and image.height > 1
    for section in ("dataset", "errors"):
        body = page.split(f'<section id="{section}">')[1].split("</section>")[0]
        assert 'class="plot"' in body, section
    # 30 steps are one evaluation round: its numbers in a table, not a curve of one dot.
    training = page.split('<section id="training">')[1].split("</section>")[0]
    assert "One evaluation round" in training and "<td>accuracy</td>" in training


def test_predict_on_good_and_bad_files(digits, first_run, tmp_path, capsys):
    from imgtfx import cli

    _, summary = first_run
    serving = os.path.dirname(summary.pushed_model)  # the Pusher's folder of versions
    good = sorted(
        os.path.join(folder, name)
        for folder, _, names in os.walk(digits["images"])
        for name in names
        if name.endswith(".png")
    )[:3]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    lines = list(predict.predict(serving, [*good, str(bad)], top_k=2))
    assert [line["path"] for line in lines] == [*good, str(bad)]
    for line in lines[:3]:
        assert line["label"] in {str(d) for d in range(10)}
        assert len(line["top_k"]) == 2 and line["top_k"][0]["label"] == line["label"]
        assert 0 <= line["probability"] <= 1
    assert lines[3]["error"].startswith("not_an_image")

    # The model holds an index of the train photos: a train photo names itself nearest.
    train = tf.io.gfile.glob(os.path.join(summary.examples_uri, "Split-train", "*"))[0]
    record = next(iter(tf.data.TFRecordDataset(train, "GZIP")))
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    own_id = feature[FEATURES.id].bytes_list.value[0].decode()
    photo = os.path.join(digits["images"], feature[FEATURES.path].bytes_list.value[0].decode())
    (line,) = predict.predict(serving, [photo])
    nearest = line["neighbours"]
    assert nearest[0]["id"] == own_id and nearest[0]["similarity"] >= 0.99
    assert len(nearest) == TrainerOptions().neighbours and nearest[0]["label"] in {
        str(d) for d in range(10)
    }
    similarities = [n["similarity"] for n in nearest]
    assert similarities == sorted(similarities, reverse=True)

    assert cli.main(["predict", "--model", serving, str(bad), good[0]]) == 0
    printed = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert "error" in printed[0] and printed[1]["label"]
    assert cli.main(["predict", "--model", serving, str(bad)]) == 1
    assert "no image could be predicted" in capsys.readouterr().err
    # The run's root stands for its pushed models (the newest, as for the Pusher's folder).
    assert predict.resolve_model_dir(summary.root) == predict.resolve_model_dir(serving)


def test_tfx_bulk_inferrer_and_evaluator_run_on_the_runs_examples_and_model(first_run, tmp_path):
    """TFX's own BulkInferrer and Evaluator, in a pipeline of the user's over what a run left:
    prediction logs (no output spec), examples with the answers as new columns (with one), and
    accuracy from a plain EvalConfig (serving_default, no prediction key)."""
    import tensorflow_model_analysis as tfma
    from tfx import v1 as tfx
    from tfx.proto import bulk_inferrer_pb2
    from tfx.types import standard_artifacts

    _, summary = first_run
    examples = tfx.dsl.Importer(
        source_uri=summary.examples_uri,
        artifact_type=standard_artifacts.Examples,
        properties={"split_names": '["train", "eval"]'},
    ).with_id("RunExamples")
    trained = tfx.dsl.Importer(
        source_uri=os.path.dirname(summary.model),  # the Model artifact, Format-Serving inside
        artifact_type=standard_artifacts.Model,
    ).with_id("RunModel")
    eval_only = bulk_inferrer_pb2.DataSpec(example_splits=["eval"])
    logs = tfx.components.BulkInferrer(
        examples=examples.outputs["result"], model=trained.outputs["result"], data_spec=eval_only
    ).with_id("Logs")
    columns = bulk_inferrer_pb2.OutputExampleSpec(
        output_columns_spec=[
            bulk_inferrer_pb2.OutputColumnsSpec(
                predict_output=bulk_inferrer_pb2.PredictOutput(
                    output_columns=[
                        bulk_inferrer_pb2.PredictOutputCol(
                            output_key=key, output_column=f"predicted_{key}"
                        )
                        for key in (model.LABEL_NAME, model.CLASS_INDEX, model.ERROR)
                    ]
                )
            )
        ]
    )
    answered = tfx.components.BulkInferrer(
        examples=examples.outputs["result"],
        model=trained.outputs["result"],
        data_spec=eval_only,
        output_example_spec=columns,
    ).with_id("Columns")
    plain = tfx.components.Evaluator(
        examples=examples.outputs["result"],
        model=trained.outputs["result"],
        eval_config=tfma.EvalConfig(
            model_specs=[tfma.ModelSpec(label_key=FEATURES.label)],
            slicing_specs=[tfma.SlicingSpec()],
            metrics_specs=[
                tfma.MetricsSpec(
                    metrics=[tfma.MetricConfig(class_name="SparseCategoricalAccuracy")]
                )
            ],
        ),
    ).with_id("PlainEvaluator")
    root = str(tmp_path)
    tfx.orchestration.LocalDagRunner().run(
        tfx.dsl.Pipeline(
            pipeline_name="users-bulk-inference",
            pipeline_root=os.path.join(root, "pipeline"),
            components=[examples, trained, logs, answered, plain],
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
                os.path.join(root, "metadata.sqlite")
            ),
            beam_pipeline_args=IN_PROCESS,
        )
    )
    digits = {str(d).encode() for d in range(10)}
    from tensorflow_serving.apis import prediction_log_pb2

    files = tf.io.gfile.glob(os.path.join(root, "pipeline", "Logs", "inference_result", "*", "*"))
    names = []
    for record in tf.data.TFRecordDataset(files, "GZIP"):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        outputs = log.predict_log.response.outputs
        names.extend(tf.make_ndarray(outputs[model.LABEL_NAME]).reshape(-1))
        assert tf.make_ndarray(outputs[model.PROBABILITIES]).shape == (1, 10)
    assert len(names) == summary.examples["eval"] and set(names) <= digits

    pattern = os.path.join(root, "pipeline", "Columns", "output_examples", "*", "Split-eval", "*")
    rows = [
        tf.train.Example.FromString(r.numpy()).features.feature
        for r in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), "GZIP")
    ]
    assert len(rows) == summary.examples["eval"]
    for row in rows:
        assert row["predicted_label_name"].bytes_list.value[0] in digits
        assert 0 <= row["predicted_class_index"].int64_list.value[0] < 10
        assert row["predicted_error"].bytes_list.value == [b""]
        assert row[FEATURES.label_name].bytes_list.value  # the example's own features kept

    (evaluation,) = tf.io.gfile.glob(
        os.path.join(root, "pipeline", "PlainEvaluator", "evaluation", "*")
    )
    metrics = tfma.load_metrics(evaluation)
    (overall,) = [m for m in metrics if not m.slice_key.single_slice_keys]
    accuracy = [
        kv.value.double_value.value
        for kv in overall.metric_keys_and_values
        if kv.key.name == "sparse_categorical_accuracy"
    ]
    assert accuracy and accuracy[0] == pytest.approx(summary.accuracy, abs=0.05)
