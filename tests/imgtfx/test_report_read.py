"""Reading what the report shows from real artifacts: ImageExampleGen's outputs on trees like
users', TFDV statistics and TensorBoard logs as TensorFlow writes them, a real SavedModel.

No HTML here: how the results look is test_report_render.py's.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf

from imgtfx.components.examples.features import FeatureNames
from imgtfx.components.image_example_gen.options import ImageOptions
from imgtfx.report import read
from imgtfx.report.data import THUMBNAIL
from tests.helpers.conversions import run_do
from tests.helpers.images import encode, write


def test_dataset_names_warnings_and_rejects_of_hundreds_of_classes(tmp_path, monkeypatch):
    root = tmp_path / "images"
    for c in range(300):
        for i in range(1 + c % 3):
            write(root / f"landmark_{c:03d}" / f"{c}_{i}.jpg", encode(size=(8, 8), seed=c * 3 + i))
    for i in range(5):
        write(root / "landmark_000" / f"broken_{i}.jpg", b"\xff\xd8 not a photo")
    write(root / "notes.txt", b"not an image")
    out = tmp_path / "out"
    run_do(root, out)
    monkeypatch.setattr(read, "REJECTS_SHOWN", 2)

    dataset = read.read_dataset(str(out))
    assert dataset.report.num_classes == 300 and len(dataset.names) == 300
    assert list(dataset.names)[:2] == ["landmark_000", "landmark_001"]
    assert any("--eval-percent" in w for w in dataset.warnings)
    broken = [g for g in dataset.rejects if any("broken_" in path for path, _ in g.files)]
    assert [g.count for g in broken] == [5] and len(broken[0].files) == 2  # counted, 2 kept
    assert all("broken_" in path for path, _ in broken[0].files)
    assert [(g.count, g.files[0][0]) for g in dataset.rejects if g not in broken] == [
        (1, "notes.txt")
    ]
    assert sum(g.count for g in dataset.rejects) == (
        dataset.report.rejected + dataset.report.skipped
    )


def test_samples_follow_the_vocabulary_order_and_are_capped(tmp_path, monkeypatch):
    """Int landmark ids sort numerically in labels.txt; samples follow it, not text order."""
    root = tmp_path / "images"
    for label in (2, 10, 101, 1004):
        for i in range(9):
            write(root / str(label) / f"{label}_{i}.jpg", encode(size=(8, 8), seed=label + i))
    out = tmp_path / "out"
    run_do(root, out)
    samples = read.read_samples(str(out), FeatureNames())
    assert list(samples.per_class) == ["2", "10", "101", "1004"]
    assert samples.classes_seen == 4
    assert all(len(pictures) == read.SAMPLES_PER_CLASS for pictures in samples.per_class.values())
    monkeypatch.setattr(read, "MAX_CLASSES_SHOWN", 2)
    samples = read.read_samples(str(out), FeatureNames())
    assert list(samples.per_class) == ["2", "10"] and samples.classes_seen == 4


def test_thumbnails_are_what_the_trainer_decodes_for_any_image_mode(tmp_path):
    """16-bit PNGs crashed the thumbnails (PIL resizes no I;16); CMYK, grayscale and palette
    images are shown as the trainer's decoder gives them: RGB, 8 bits, small."""
    from PIL import Image

    root = tmp_path / "images"
    modes = {"deep": ("I;16", "PNG"), "print": ("CMYK", "JPEG"), "gray": ("L", "JPEG")}
    modes["palette"] = ("P", "PNG")
    for label in ("a", "b"):
        for j, (name, (mode, fmt)) in enumerate(modes.items()):
            pixels = np.random.default_rng(j).integers(0, 255, (300, 200, 3), np.uint8)
            if mode == "I;16":
                image = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
            else:
                image = Image.fromarray(pixels).convert(mode)
            buffer = io.BytesIO()
            image.save(buffer, fmt)
            write(root / label / f"{name}.{fmt.lower()}", buffer.getvalue())
    out = tmp_path / "out"
    run_do(root, out)
    samples = read.read_samples(str(out), FeatureNames())
    train = read.read_report(str(out)).splits["train"]
    pictures = [p for ps in samples.per_class.values() for p in ps]
    assert len(pictures) == train > 2
    for picture in pictures:
        assert picture.dtype == np.uint8 and picture.shape == (THUMBNAIL, 64, 3)
    assert read.thumbnail(b"not an image").shape == (THUMBNAIL, THUMBNAIL, 3)  # never fails


def test_statistics_and_anomalies_as_tfdv_writes_them(tmp_path):
    from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

    stats = statistics_pb2.DatasetFeatureStatisticsList()
    split = stats.datasets.add(num_examples=1385)
    image = split.features.add(type=statistics_pb2.FeatureNameStatistics.STRING)
    image.path.step.append("image")
    image.string_stats.unique = 1385
    image.string_stats.top_values.add(value="__BYTES_VALUE__", frequency=1)
    label = split.features.add(type=statistics_pb2.FeatureNameStatistics.INT)
    label.path.step.append("label")
    label.num_stats.min, label.num_stats.max, label.num_stats.mean = 0, 9, 4.5
    label.num_stats.common_stats.num_missing = 2
    name = split.features.add(name="label_name")
    name.string_stats.unique = 10
    for value in ("3", "1", "7", "0"):
        name.string_stats.top_values.add(value=value)
    path = split.features.add(name="path")
    path.string_stats.avg_length = 23.4
    (tmp_path / "stats" / "Split-train").mkdir(parents=True)
    (tmp_path / "stats" / "Split-train" / "FeatureStats.pb").write_bytes(stats.SerializeToString())
    anomalies = anomalies_pb2.Anomalies()
    anomalies.anomaly_info["label"].short_description = "Out-of-range values"
    anomalies.anomaly_info["label"].description = "Unexpectedly large value: 12."
    (tmp_path / "anomalies" / "Split-eval").mkdir(parents=True)
    (tmp_path / "anomalies" / "Split-eval" / "SchemaDiff.pb").write_bytes(
        anomalies.SerializeToString()
    )

    result = read.read_statistics(str(tmp_path / "stats"), str(tmp_path / "anomalies"))
    [train] = result.splits
    assert (train.split, train.examples) == ("train", 1385)
    features = {f.name: f for f in train.features}
    assert (features["image"].kind, features["image"].unique) == ("encoded", 1385)
    assert features["label"].kind == "number" and features["label"].missing == 2
    assert (features["label"].minimum, features["label"].maximum) == (0, 9)
    assert features["label_name"].top == ["3", "1", "7"] and features["label_name"].unique == 10
    assert features["path"].unique is None and features["path"].average_length == pytest.approx(
        23.4
    )
    [anomaly] = result.anomalies
    assert (anomaly.split, anomaly.feature, anomaly.short) == (
        "eval",
        "label",
        "Out-of-range values",
    )
    assert read.read_statistics(None, None) is None


def test_curves_from_the_trainers_tensorboard_logs(tmp_path):
    for run, losses in (("train", [2.0, 1.0]), ("validation", [2.5])):
        with tf.summary.create_file_writer(str(tmp_path / run)).as_default():
            for epoch, loss in enumerate(losses):
                tf.summary.scalar("epoch_loss", loss, step=epoch)
                tf.summary.scalar("batch_loss", 9.0, step=epoch)  # not a round: left out
    curves = read.read_curves(str(tmp_path))
    assert curves == {"train": {"loss": [(0, 2.0), (1, 1.0)]}, "validation": {"loss": [(0, 2.5)]}}
    assert read.read_curves(str(tmp_path / "none")) == {}


@pytest.mark.parametrize("classes", [5, 1049])
def test_slices_listed_are_all_by_name_or_the_worst(classes, monkeypatch):
    """Slices are streamed from TFMA's result; only the listed rows are kept."""
    from imgtfx.pipeline import results

    accuracy = "sparse_categorical_accuracy"

    def slice_metrics(uri):
        yield "overall", {accuracy: 0.5}
        for i in reversed(range(classes)):  # TFMA's order is not the page's
            yield f"landmark_id={i}", {accuracy: 0.0 if i % 7 == 3 else 0.5 + i / 1e4}

    monkeypatch.setattr(results, "slice_metrics", slice_metrics)
    slices = read.read_slices("unused")
    assert slices.overall == {accuracy: 0.5} and slices.total == classes
    names = [name for name, _ in slices.rows]
    if classes == 5:
        assert names == [f"landmark_id={i}" for i in range(5)]  # 2 before 10: numbers
    else:
        zeros = [f"landmark_id={i}" for i in range(classes) if i % 7 == 3]
        assert names == zeros[: read.LIST_SHOWN]  # lowest accuracy, ties in number order


def test_predictions_count_pairs_and_keep_the_most_confident_mistakes(tmp_path, monkeypatch):
    from imgtfx.trainer import model, serving
    from imgtfx.trainer.options import TrainerOptions
    from tests.helpers.images import contest_tree

    root, csv = contest_tree(tmp_path)
    out = tmp_path / "out"
    options = ImageOptions(labels_csv=str(csv))
    run_do(root, out, options)  # 80/20: one eval image of each class of two (3, 15, 902)
    small = TrainerOptions(image_size=16, filters=(4, 8))
    vocabulary = ["3", "15", "20", "21", "902"]
    classifier = model.build_model(len(vocabulary), small)
    head = classifier.get_layer(model.PROBABILITIES)
    kernel = head.get_weights()[0]
    head.set_weights([np.zeros_like(kernel), np.eye(len(vocabulary))[4] * 10])  # always 902
    path = str(tmp_path / "model")
    serving.export(classifier, vocabulary, small, path, ["3", "남산타워", "20", "21", "경복궁"])

    predictions = read.read_predictions(path, str(out), options.features)
    assert predictions.labels == vocabulary
    assert predictions.names == ["3", "남산타워", "20", "21", "경복궁"]
    eval_images = read.read_report(str(out)).splits["eval"]
    assert predictions.seen == eval_images == sum(predictions.pairs.values())
    assert all(p == 4 for _, p in predictions.pairs)
    assert sorted((m.true, m.predicted) for m in predictions.mistakes) == [(0, 4), (1, 4)]
    assert all(m.thumbnail.dtype == np.uint8 and m.path for m in predictions.mistakes)
    monkeypatch.setattr(read, "WORST_SHOWN", 1)
    assert len(read.read_predictions(path, str(out), options.features).mistakes) == 1


def test_a_folder_without_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no imgtfx run .* --root of `imgtfx run`"):
        read.read_reportable_summary(str(tmp_path))
    (tmp_path / "summary.json").write_text('{"examples_uri": null}')
    with pytest.raises(ValueError, match="produced no examples"):
        read.read_reportable_summary(str(tmp_path))
