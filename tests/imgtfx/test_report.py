"""The run report at any class count: summaries instead of per-class plots and tables."""

from __future__ import annotations

import warnings

import numpy as np

from imgtfx import report
from tests.components.image_example_gen.test_executor import run_do
from tests.conftest import encode, write


def test_dataset_section_with_hundreds_of_classes_stays_small(tmp_path):
    root = tmp_path / "images"
    for c in range(300):
        for i in range(1 + c % 3):
            write(root / f"landmark_{c:03d}" / f"{c}_{i}.jpg", encode(size=(8, 8), seed=c * 3 + i))
    out = tmp_path / "out"
    run_do(root, out)
    page = report.dataset_section(str(out))
    assert "Examples per class, 300 classes: min 1" in page  # the distribution, not 300 bars
    assert "classes with the fewest examples" in page
    assert "Classes without eval examples" in page
    assert "have no eval example" in page and "--eval-percent" in page  # the warning
    assert page.count("<tr>") < 2 * report.LIST_SHOWN + 10
    assert len(page) < 200_000


def _confusions(n: int, count: int = 3000):
    """(true, predicted) pair counts of a model right 70% of the time; class 7 is always taken
    for class 8. Returns (pairs, per-class accuracy, support)."""
    import collections

    rng = np.random.default_rng(0)
    truth = rng.integers(0, n, count)
    predicted = np.where(rng.random(count) < 0.7, truth, (truth + 1) % n)
    predicted[truth == 7] = 8
    pairs = collections.Counter(zip(truth.tolist(), predicted.tolist(), strict=True))
    support = np.bincount(truth, minlength=n)
    correct = np.bincount(truth[truth == predicted], minlength=n)
    return pairs, correct / np.maximum(support, 1), support


def test_many_classes_show_worst_classes_and_confused_pairs():
    n = 1049
    pairs, per_class, support = _confusions(n)
    vocabulary = [str(i) for i in range(n)]
    html = report._many_classes(pairs, vocabulary, per_class, support)
    worst = html.split("lowest eval accuracy")[1].split("Most confused")[0]
    assert worst.count("<tr>") == report.LIST_SHOWN + 1  # header + rows
    assert "<td>7</td><td>0.00</td>" in worst and "<td>8</td></tr>" in worst
    pairs = html.split("Most confused pairs")[1]
    assert 1 < pairs.count("<tr>") <= report.LIST_SHOWN + 1
    assert len(html) < 100_000


def test_classes_are_listed_in_the_vocabulary_order(tmp_path):
    """Int landmark ids sort numerically in labels.txt; the report follows it, not text order."""
    root = tmp_path / "images"
    for label in (2, 10, 101, 1004):
        for i in range(3):
            write(root / str(label) / f"{label}_{i}.jpg", encode(size=(8, 8), seed=label + i))
    out = tmp_path / "out"
    run_do(root, out)
    page = report.samples_section(str(out), report.ImageOptions())
    names = [part.split("</span>")[0] for part in page.split("<span class='label'>")[1:]]
    assert names == ["2", "10", "101", "1004"]


def test_confusions_at_200000_classes_need_no_square_matrix():
    """Google Landmarks v2 has 203,094 classes: a dense confusion matrix would be 330 GB. The
    summaries come from (true, predicted) counts in memory proportional to the eval images."""
    import tracemalloc

    n = 203_094
    pairs, per_class, support = _confusions(n, count=20_000)
    vocabulary = [f"landmark_{i}" for i in range(n)]
    tracemalloc.start()
    html = report._many_classes(pairs, vocabulary, per_class, support)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 200 * 2**20, peak  # the figure's and tables' own memory, not n x n
    worst = html.split("lowest eval accuracy")[1].split("Most confused")[0]
    assert worst.count("<tr>") == report.LIST_SHOWN + 1
    assert html.startswith('<img class="plot"')  # the accuracy distribution over classes


def test_any_image_mode_and_any_label_text_render(tmp_path):
    """16-bit PNGs crashed the thumbnails (PIL resizes no I;16) and a '$' in a label crashed
    the charts (matplotlib read it as a formula), failing runs after the model was pushed."""
    import io

    from PIL import Image

    root = tmp_path / "images"
    modes = {
        "deep": ("I;16", "PNG"),
        "print": ("CMYK", "JPEG"),
        "gray": ("L", "JPEG"),
        "palette": ("P", "PNG"),
    }
    labels = ["cost $\\frac$", "<img src=x onerror=alert(1)>", "경복궁 🏯", "a" * 200]
    for i, label in enumerate(labels):
        for j, (name, (mode, fmt)) in enumerate(modes.items()):
            pixels = np.random.default_rng(i * 10 + j).integers(0, 255, (20, 24, 3), np.uint8)
            image = Image.fromarray(pixels)
            if mode == "I;16":
                image = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
            else:
                image = image.convert(mode)
            buffer = io.BytesIO()
            image.save(buffer, fmt)
            write(root / label / f"{name}.{fmt.lower()}", buffer.getvalue())
    out = tmp_path / "out"
    run_do(root, out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        page = report.dataset_section(str(out)) + report.samples_section(
            str(out), report.ImageOptions()
        )
        pairs = {(0, 1): 2, (2, 2): 3}
        page += report._many_classes(pairs, labels, np.array([0.5] * 4), np.array([2] * 4))
        report._png(report._confusion_figure(np.eye(4, dtype=int), labels, 4))
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert not missing  # Hangul drawn with NanumGothic; the emoji as U+FFFD
    assert report._drawable("경복궁 🏯") == "경복궁 \ufffd"
    # Zero counts are not news, and a count of one is singular.
    assert "CSV id" not in page and "turned upright" not in page and "{}" not in page
    assert "16 files seen" in page and "4 labels" in page
    assert (report._count(1, "photo"), report._count(1049, "label")) == ("1 photo", "1,049 labels")
    train = report.read_report(str(out))["splits"]["train"]  # samples show train examples
    assert page.count('class="thumb"') == train > len(labels)
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_verdict_is_words_and_says_why_the_baseline_was_skipped():
    summary = {
        "blessed": False,
        "accuracy": 0.93,
        "top_k_accuracy": 0.99,
        "pushed_model": None,
        "blessing": {
            "thresholds": {
                "min_accuracy": 0.9,
                "max_accuracy_drop": 0.01,
                "min_class_accuracy": None,
            },
            "baseline_model": "/runs/x/Trainer/model/7",
            "baseline_note": "baseline skipped: vocabulary changed (10 classes in the baseline, "
            "11 now: 1 added, 0 removed)",
        },
    }
    page = report.evaluation_section(summary)
    assert "needs accuracy &gt;= 0.9, at most 0.01 below the baseline." in page
    assert "Baseline: baseline skipped: vocabulary changed" in page
    assert "Pushed model: none (not blessed)" in page
    assert "None" not in page and "{" not in page and "null" not in page


def test_classes_with_names_show_name_and_label(tmp_path):
    """CSV ids are shown with their landmark's name, escaped; a label without a name of its own
    (one id over two folders) is shown as itself."""
    from components.image_example_gen.options import ImageOptions
    from tests.components.image_example_gen.test_label_names import ONE_SPLIT, contest_tree

    root, csv = contest_tree(tmp_path)
    names = tmp_path / "category.csv"
    names.write_text("landmark_id,landmark_name\n20,<b>Seomun</b>\n", encoding="utf-8")
    out = tmp_path / "out"
    options = ImageOptions(labels_csv=str(csv), label_names_csv=str(names))
    run_do(root, out, options, output_config=ONE_SPLIT)

    page = report.dataset_section(str(out))
    assert "<td>경복궁 (902)</td><td>2</td>" in page and "<td>남산타워 (15)</td>" in page
    assert "<td>3</td><td>2</td>" in page and "<td>21</td>" in page
    assert "<td>&lt;b&gt;Seomun&lt;/b&gt; (20)</td>" in page and "<b>Seomun" not in page
    samples = report.samples_section(str(out), options)
    shown = [part.split("</span>")[0] for part in samples.split("<span class='label'>")[1:]]
    assert shown == ["3", "남산타워 (15)", "&lt;b&gt;Seomun&lt;/b&gt; (20)", "21", "경복궁 (902)"]


def test_mistakes_name_the_classes(tmp_path):
    """The most confidently misclassified images say both classes as "name (label)"."""
    from components.image_example_gen.options import ImageOptions
    from tests.components.image_example_gen.test_label_names import contest_tree
    from trainer import model
    from trainer.options import TrainerOptions

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
    model.export(classifier, vocabulary, small, path, ["3", "남산타워", "20", "21", "경복궁"])

    page = report.predictions_section({"model": path, "examples_uri": str(out)}, options)
    captions = sorted(c.split("<br><code>")[0] for c in page.split("<figcaption>")[1:])
    assert captions == [
        "경복궁 (902) (100%)<br>true: 3",
        "경복궁 (902) (100%)<br>true: 남산타워 (15)",
    ]
