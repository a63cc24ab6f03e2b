"""The report page from hand-made results: no run, no artifact, no TensorFlow.

What is read from a run is tested in test_report_read.py; here, how any results look: at any
class count, with any label text, with every section present or absent.
"""

from __future__ import annotations

import base64
import collections
import io
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

from imgtfx.components.examples.conversion_report import ConversionReport
from imgtfx.pipeline.run_summary import RunSummary
from imgtfx.report import data_sections, model_sections, parts, render
from imgtfx.report.data import (
    LIST_SHOWN,
    Anomaly,
    Dataset,
    FeatureStatistics,
    Mistake,
    Predictions,
    RejectGroup,
    RunResults,
    Samples,
    Slices,
    SplitStatistics,
    Statistics,
)

HOSTILE = ["cost $\\frac$", "<img src=x onerror=alert(1)>", "경복궁 🏯", "a" * 200]


def test_rendering_imports_no_tensorflow():
    """The page is made from plain data: rendering never needs TensorFlow (or a run)."""
    code = "import sys, imgtfx.report.render; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _report(classes: dict[str, dict[str, int]], **extra) -> ConversionReport:
    """A report.json of ImageExampleGen with these per-class counts."""
    splits = collections.Counter()
    for counts in classes.values():
        splits.update(counts)
    examples = sum(splits.values())
    values = {
        "image_root": "/data/train",
        "labels_csv": None,
        "files_seen": examples + extra.get("rejected", 0),
        "examples": examples,
        "rejected": 0,
        "skipped": 0,
        "reconciled": True,
        "splits": dict(splits),
        "num_classes": len(classes),
        "classes": classes,
        **extra,
    }
    return ConversionReport(**values)


def _dataset(labels: list[str], names: dict[str, str] | None = None, **extra) -> Dataset:
    classes = {label: {"train": 3, "eval": 1} for label in labels}
    names = {label: (names or {}).get(label, label) for label in labels}
    return Dataset(_report(classes, **extra), names, [], [])


def _pixels(seed: int, shape=(40, 60, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, shape, np.uint8)


def _pictures(page: str) -> list[bytes]:
    return [base64.b64decode(s) for s in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_hundreds_of_classes_give_summaries_not_one_bar_and_row_per_class():
    classes = {f"landmark_{c:03d}": {"train": 1 + c % 3} for c in range(300)}
    report = _report(classes, classes_without_examples={"eval": sorted(classes)})
    warning = "300 classes have no eval example: raise --eval-percent"
    rejects = [RejectGroup("rejected", "undecodable", 450, [("a/b.jpg", "truncated")] * 200)]
    page = data_sections.dataset_section(
        Dataset(report, {c: c for c in classes}, [warning], rejects)
    )
    assert "Examples per class, 300 classes: min 1" in page  # the distribution, not 300 bars
    assert "classes with the fewest examples" in page
    assert "Classes without eval examples (300)" in page and "... and 200 more" in page
    assert "--eval-percent" in page
    assert page.count("<tr>") < 2 * LIST_SHOWN + 10
    assert "rejected: undecodable (450)" in page and "... and 250 more" in page
    assert len(page) < 200_000


def test_a_few_classes_get_a_table_row_each_with_name_and_label():
    """CSV ids are shown with their landmark's name, escaped; a label without a name of its own
    is shown as itself."""
    names = {"902": "경복궁", "15": "남산타워", "20": "<b>Seomun</b>"}
    page = data_sections.dataset_section(_dataset(["3", "15", "20", "902"], names))
    assert "<td>경복궁 (902)</td><td>3</td><td>1</td><td>4</td>" in page
    assert "<td>3</td><td>3</td>" in page  # no name: the label alone
    assert "<td>&lt;b&gt;Seomun&lt;/b&gt; (20)</td>" in page and "<b>Seomun" not in page
    samples = Samples({label: [_pixels(i)] for i, label in enumerate(["3", "902"])}, 2)
    shown = data_sections.samples_section(samples, names)
    labels = [part.split("</span>")[0] for part in shown.split("<span class='label'>")[1:]]
    assert labels == ["3", "경복궁 (902)"]


def test_zero_counts_are_not_news_and_one_is_singular():
    page = data_sections.dataset_section(_dataset(["only"]))
    assert "CSV id" not in page and "turned upright" not in page and "{}" not in page
    assert "1 label" in page and "No file was rejected or skipped." in page
    turned = _dataset(
        ["a"], turned_upright=1, exif_orientations={"6": 1}, csv_ids_without_image=1049
    )
    page = data_sections.dataset_section(turned)
    assert "1 photo turned upright (1 with orientation 6)" in page
    assert "1,049 CSV ids without an image" in page
    assert (parts.count(1, "photo"), parts.count(1049, "label")) == ("1 photo", "1,049 labels")


def test_any_label_text_renders_escaped_and_drawn():
    """A '$' in a label crashed the charts (matplotlib read it as a formula); Hangul was empty
    boxes (DejaVu Sans has none); HTML in a label must stay text."""
    names = {label: label for label in HOSTILE}
    samples = Samples({label: [_pixels(i), _pixels(i + 9)] for i, label in enumerate(HOSTILE)}, 4)
    predictions = Predictions(
        HOSTILE,
        HOSTILE,
        collections.Counter({(0, 1): 2, (2, 2): 3, (3, 0): 1}),
        6,
        [Mistake(0.9, 0, 1, _pixels(1, (96, 64, 3)), "경복궁/<x>.jpg")],
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        page = data_sections.dataset_section(_dataset(HOSTILE))
        page += data_sections.samples_section(samples, names)
        page += model_sections.predictions_section(predictions)
        pairs = collections.Counter({(0, 1): 2, (2, 2): 3})
        page += model_sections.many_classes(pairs, HOSTILE, np.array([0.5] * 4), np.array([2] * 4))
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert not missing  # Hangul drawn with NanumGothic; the emoji as U+FFFD
    assert parts.drawable("경복궁 🏯") == "경복궁 \ufffd"
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<x>" not in page and "&lt;x&gt;.jpg" in page
    assert page.count('class="thumb"') == 8 + 1


def _confusions(n: int, count: int = 3000):
    """(true, predicted) pair counts of a model right 70% of the time; class 7 is always taken
    for class 8. Returns (pairs, per-class accuracy, support)."""
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
    pairs, _, _ = _confusions(n)
    labels = [str(i) for i in range(n)]
    html = model_sections.predictions_section(Predictions(labels, labels, pairs, 3000, []))
    worst = html.split("lowest eval accuracy")[1].split("Most confused")[0]
    assert worst.count("<tr>") == LIST_SHOWN + 1  # header + rows
    assert "<td>7</td><td>0.00</td>" in worst and "<td>8</td></tr>" in worst
    pairs_table = html.split("Most confused pairs")[1]
    assert 1 < pairs_table.count("<tr>") <= LIST_SHOWN + 1
    assert "No eval image was misclassified." in html
    assert len(html) < 100_000


def test_confusions_at_200000_classes_need_no_square_matrix():
    """Google Landmarks v2 has 203,094 classes: a dense confusion matrix would be 330 GB. The
    summaries come from (true, predicted) counts in memory proportional to the eval images."""
    import tracemalloc

    n = 203_094
    pairs, per_class, support = _confusions(n, count=20_000)
    names = [f"landmark_{i}" for i in range(n)]
    tracemalloc.start()
    html = model_sections.many_classes(pairs, names, per_class, support)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 200 * 2**20, peak  # the figure's and tables' own memory, not n x n
    worst = html.split("lowest eval accuracy")[1].split("Most confused")[0]
    assert worst.count("<tr>") == LIST_SHOWN + 1
    assert html.startswith('<img class="plot"')  # the accuracy distribution over classes


def test_mistakes_name_both_classes_worst_first():
    labels = ["3", "15", "902"]
    names = ["3", "남산타워", "경복궁"]
    mistakes = [
        Mistake(1.0, 1, 2, _pixels(1), "seoul/남산타워/a.jpg"),
        Mistake(0.51, 0, 2, _pixels(2), "x/3/b.jpg"),
    ]
    pairs = collections.Counter({(0, 2): 1, (1, 2): 1, (2, 2): 2})
    page = model_sections.predictions_section(Predictions(labels, names, pairs, 4, mistakes))
    captions = [c.split("<br><code>")[0] for c in page.split("<figcaption>")[1:]]
    assert captions == [
        "경복궁 (902) (100%)<br>true: 남산타워 (15)",
        "경복궁 (902) (51%)<br>true: 3",
    ]
    assert "seoul/<wbr>남산타워/<wbr>a.jpg" in page  # wraps between names, not inside one
    assert 'alt="confusion matrix"' in page


def test_verdict_is_words_and_says_why_the_baseline_was_skipped():
    summary = RunSummary(
        blessed=False,
        accuracy=0.93,
        top_k_accuracy=0.99,
        pushed_model=None,
        blessing={
            "thresholds": {
                "min_accuracy": 0.9,
                "max_accuracy_drop": 0.01,
                "min_class_accuracy": None,
            },
            "baseline_model": "/runs/x/Trainer/model/7",
            "baseline_note": "baseline skipped: vocabulary changed (10 classes in the baseline, "
            "11 now: 1 added, 0 removed)",
        },
    )
    page = model_sections.evaluation_section(summary, None)
    assert "needs accuracy &gt;= 0.9, at most 0.01 below the baseline." in page
    assert "Baseline: baseline skipped: vocabulary changed" in page
    assert "Pushed model: none (not blessed)" in page
    assert "None" not in page and "{" not in page and "null" not in page


def test_slices_show_counts_whole_and_say_when_only_the_worst_are_listed():
    overall = {"sparse_categorical_accuracy": 0.5, "example_count": 12345.0}
    rows = [(f"landmark_id={i}", {"sparse_categorical_accuracy": 0.0}) for i in range(20)]
    summary = RunSummary(blessed=True, accuracy=0.5, evaluation_uri="/runs/x/Evaluator")
    page = model_sections.evaluation_section(summary, Slices(overall, rows, 1049))
    cells = page.split("<tbody>")[1]
    assert cells.startswith("<tr><td>overall</td><td>0.5000</td><td>n/a</td><td>12,345</td>")
    assert cells.count("<tr>") == 21
    assert "the 20 class slices with the lowest accuracy, of 1,049" in page
    assert "BLESSED: accuracy 0.5000" in page
    page = model_sections.evaluation_section(summary, Slices(overall, rows[:3], 3))
    assert "lowest accuracy" not in page


def _statistics() -> Statistics:
    return Statistics(
        [
            SplitStatistics(
                "train",
                1385,
                [
                    FeatureStatistics("image", "encoded", 0, unique=1385),
                    FeatureStatistics("label", "number", 0, 0, 9, 4.5),
                    FeatureStatistics("label_name", "text", 0, unique=10, top=["3", "1", "7"]),
                    FeatureStatistics("path", "text", 0, average_length=23.4),
                    FeatureStatistics("raw", "bytes", 2, 10, 20, 15.0),
                ],
            )
        ],
        [Anomaly("eval", "label", "Out-of-range values", "Unexpectedly large value: 12.")],
    )


def test_statistics_say_what_each_feature_is():
    page = data_sections.statistics_section(_statistics())
    assert "train: 1,385 examples" in page
    assert "<td>image</td><td>bytes</td><td>0</td><td></td><td></td><td></td><td>1,385" in page
    assert "<td>label</td><td>number</td><td>0</td><td>0</td><td>9</td><td>4.5</td>" in page
    assert "10 unique: 3, 1, 7" in page
    assert "one value per example, not counted; 23 characters" in page
    assert "<td>raw</td><td>bytes</td><td>2</td><td>10</td><td>20</td><td>15</td>" in page
    assert "<td>eval</td><td>label</td><td>Out-of-range values</td>" in page
    assert "Not computed" in data_sections.statistics_section(None)
    assert "No anomalies" in data_sections.statistics_section(Statistics([], []))


def test_one_training_round_is_a_table_and_more_are_curves():
    one = {"train": {"loss": [(0, 2.0)]}, "validation": {"loss": [(0, 2.5)]}}
    page = data_sections.curves_section(one)
    assert "One evaluation round" in page and "<td>loss</td><td>2.0000</td><td>2.5000</td>" in page
    two = {"train": {"loss": [(1, 1.0), (0, 2.0)], "accuracy": [(0, 0.1), (1, 0.3)]}}
    page = data_sections.curves_section(two)
    assert "Training curves" in page and len(_pictures(page)) == 1
    assert "No training logs found" in data_sections.curves_section({})


@pytest.mark.parametrize("trained", [True, False])
def test_whole_page_has_every_section_and_only_real_pictures(trained):
    from PIL import Image

    labels = ["0", "1", "2"]
    summary = RunSummary(
        root="/runs/<a>",
        blessed=True if trained else None,
        accuracy=0.8 if trained else None,
        pushed_model="/runs/a/serving/1" if trained else None,
        step_times={
            "ImageExampleGen": {
                "state": "complete",
                "seconds": 75.2,
                "examples": 1712,
                "examples_per_s": 22.8,
                "peak_rss_mib": 812.0,
            },
            "Trainer": {"state": "cached", "seconds": 1.0, "steps": 300, "steps_per_s": 2.5},
        },
        seconds=130.0,
    )
    results = RunResults(
        summary=summary,
        dataset=_dataset(labels),
        samples=Samples({label: [_pixels(int(label))] for label in labels}, 3),
        statistics=_statistics() if trained else None,
        curves={"train": {"loss": [(0, 2.0), (1, 1.0)]}} if trained else {},
        slices=(
            Slices({"sparse_categorical_accuracy": 0.8}, [(f"label={c}", {}) for c in labels], 3)
            if trained
            else None
        ),
        predictions=(
            Predictions(labels, labels, collections.Counter({(0, 0): 3, (1, 2): 1}), 4, [])
            if trained
            else None
        ),
    )
    page = render.render(results)
    for section in render.SECTIONS:
        assert f'<section id="{section}">' in page and f'href="#{section}"' in page
    assert "<code>/runs/&lt;a&gt;</code>" in page
    assert "1 min 15 s" in page and "0.79 GiB" in page and "1,712 examples, 23/s" in page
    assert "Pipeline steps together: 2 min 10 s" in page
    assert ("No trained model" in page) != trained
    pictures = _pictures(page)
    # samples and examples per class; trained: curves, confusion matrix, per-class accuracy
    assert len(pictures) == 3 + 1 + (3 if trained else 0)
    for picture in pictures:
        Image.open(io.BytesIO(picture)).verify()
    text = re.sub(r"data:image/png;base64,[^\"]+", "", page)  # base64 can spell anything
    assert "None" not in text and "nan" not in text
