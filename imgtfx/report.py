"""The run report: one self-contained HTML page (ROOT/report/index.html) that opens from disk.

Everything a person checks after a run, read from the run's artifacts: the dataset and its
rejects, TFDV statistics and anomalies, sample images per class, training curves, TFMA metrics
and the blessing, a confusion matrix, per-class accuracy, and the eval images the model got
most confidently wrong. Plots are matplotlib PNGs embedded as data URIs: no network assets.
"""

from __future__ import annotations

import base64
import collections
import functools
import glob
import html
import io
import json
import os

import matplotlib

matplotlib.use("Agg")
# Labels are text: a '$' in a class name is not the start of a formula (read when each
# text is made, so set for every chart of this module).
matplotlib.rcParams["text.parse_math"] = False
# Class names are Korean in the seed's data: matplotlib ships DejaVu Sans only, which has no
# Hangul. NanumGothic (Hangul, Hanja, Latin; from the koreanize-matplotlib package, no system
# font needed) takes each glyph DejaVu lacks.
_FALLBACK_FONT = ("koreanize_matplotlib", "fonts/NanumGothic.ttf", "NanumGothic")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from components.image_example_gen import reader  # noqa: E402
from components.image_example_gen.options import ImageOptions  # noqa: E402
from components.image_example_gen.outputs import (  # noqa: E402
    REJECTS_FILE,
    read_label_names,
    read_report,
    read_vocabulary,
    split_warnings,
)

SAMPLES_PER_CLASS = 6
MAX_CLASSES_SHOWN = 30  # above this, per-class plots and tables become summaries
LIST_SHOWN = 20  # rows of each "fewest", "worst" and "most confused" table
MAX_EVAL_PREDICTED = 5000
WORST_SHOWN = 12
THUMBNAIL = 96


@functools.lru_cache(maxsize=1)
def _fonts() -> frozenset[int]:
    """Registers the fonts of every chart; returns the code points they can draw."""
    from importlib import resources

    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    package, name, family = _FALLBACK_FONT
    path = str(resources.files(package) / name)
    font_manager.fontManager.addfont(path)
    matplotlib.rcParams["font.family"] = ["DejaVu Sans", family]
    dejavu = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
    return frozenset().union(*(FT2Font(p).get_charmap() for p in (dejavu, path)))


_fonts()  # before any chart: a figure's ticks keep the fonts they were made with


def _drawable(text: str) -> str:
    """`text` for a chart: a character no chart font has (emoji, scripts beyond Korean, Chinese
    and Latin) is drawn as U+FFFD, never an empty box and a warning; the HTML around the
    charts shows every name as it is."""
    drawable = _fonts()
    return "".join(c if ord(c) in drawable or c.isspace() else "\ufffd" for c in text)


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _img(src: str, alt: str, cls: str = "plot") -> str:
    return f'<img class="{cls}" src="{src}" alt="{html.escape(alt)}">'


def _thumbnail(encoded: bytes) -> str:
    """The picture as the trainer sees it: decoded by the trainer's own decoder (RGB, 8 bits,
    upright), so 16-bit, CMYK, palette and grayscale images all show as what was learned."""
    from PIL import Image

    try:
        pixels = reader.decode_image(tf.constant(encoded)).numpy()
    except tf.errors.OpError:  # never for a converted example; a thumbnail must not fail a run
        pixels = np.full((THUMBNAIL, THUMBNAIL, 3), 200, np.uint8)
    image = Image.fromarray(pixels)
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _shown(label: str, name: str) -> str:
    """How a class is named in the page: "name (label)" where it has a name of its own."""
    return label if name == label else f"{name} ({label})"


def _names(examples_uri: str) -> dict[str, str]:
    """{label: display name} of an Examples artifact (the label itself where it has none)."""
    return dict(zip(read_vocabulary(examples_uri), read_label_names(examples_uri), strict=True))


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ---------------------------------------------------------------------------------------------
# Sections.


def _class_counts_figure(report: dict, names: dict[str, str] | None = None) -> str:
    """Examples per class: stacked bars per split for a few classes, else the distribution."""
    names = names or {}
    splits = list(report["splits"])
    classes = report["classes"]
    figure, axis = plt.subplots(figsize=(8, 3))
    if len(classes) <= MAX_CLASSES_SHOWN:
        labels = list(classes)
        bottom = np.zeros(len(labels))
        for split in splits:
            values = np.array([classes[label].get(split, 0) for label in labels])
            axis.bar(range(len(labels)), values, bottom=bottom, label=split)
            bottom += values
        ticks = [_drawable(names.get(label, label)) for label in labels]
        axis.set_xticks(range(len(labels)), ticks, rotation=60, fontsize=7)
        axis.set_ylabel("examples")
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
        axis.legend()
        axis.set_title("Examples per class")
        return _img(_png(figure), "examples per class")
    totals = np.array([sum(c.values()) for c in classes.values()])
    bins = np.arange(0, totals.max() + 2) - 0.5 if totals.max() < 60 else 40
    axis.hist(totals, bins=bins)
    axis.set_xlabel("examples in the class")
    axis.set_ylabel("classes")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    title = (
        f"Examples per class, {len(classes):,} classes: min {totals.min():,}, "
        f"median {np.median(totals):g}, max {totals.max():,}"
    )
    axis.set_title(title)
    return _img(_png(figure), "examples per class") + f"<p>{html.escape(title)}.</p>"


def _class_tables(report: dict, names: dict[str, str] | None = None) -> str:
    splits = list(report["splits"])
    classes = report["classes"]
    names = names or {}

    def shown(label):
        return _shown(label, names.get(label, label))

    def row(label):
        counts = classes[label]
        return [shown(label), *[counts.get(s, 0) for s in splits], sum(counts.values())]

    header = ["label", *splits, "total"]
    if len(classes) <= MAX_CLASSES_SHOWN:
        return _table(header, [row(label) for label in classes])
    # Stable: among classes of equal size, the vocabulary's order (numeric for int labels).
    fewest = sorted(classes, key=lambda label: sum(classes[label].values()))
    parts = [
        f"<h3>The {LIST_SHOWN} classes with the fewest examples</h3>",
        _table(header, [row(label) for label in fewest[:LIST_SHOWN]]),
    ]
    for split, labels in report.get("classes_without_examples", {}).items():
        if labels:
            listed = ", ".join(html.escape(shown(label)) for label in labels[:100])
            more = f" ... and {len(labels) - 100} more" if len(labels) > 100 else ""
            parts.append(
                f"<h3>Classes without {html.escape(split)} examples ({len(labels)})</h3>"
                f"<p class='names'>{listed}{more}</p>"
            )
    return "".join(parts)


def _rejects(examples_uri: str) -> str:
    rejects = collections.defaultdict(list)
    path = os.path.join(examples_uri, REJECTS_FILE)
    if tf.io.gfile.exists(path):  # written by every run; older outputs may lack it when empty
        with tf.io.gfile.GFile(path) as f:
            for line in f:
                outcome = json.loads(line)
                rejects[(outcome["status"], outcome["reason"])].append(outcome)
    return (
        "".join(
            f"<details><summary>{html.escape(status)}: {html.escape(reason)} "
            f"({len(items)})</summary>"
            + "<ul>"
            + "".join(
                f"<li><code>{html.escape(o['path'])}</code> {html.escape(o['detail'])}</li>"
                for o in items[:200]
            )
            + (f"<li>... and {len(items) - 200} more</li>" if len(items) > 200 else "")
            + "</ul></details>"
            for (status, reason), items in sorted(rejects.items())
        )
        or "<p>No file was rejected or skipped.</p>"
    )


def dataset_section(examples_uri: str) -> str:
    report = read_report(examples_uri)
    facts = [
        f"{_count(report['files_seen'], 'file')} seen: "
        f"<b>{_count(report['examples'], 'example')}</b> "
        f"({', '.join(f'{s} {n:,}' for s, n in report['splits'].items())})",
        f"{report['rejected']} rejected, {report['skipped']} skipped",
        _count(report["num_classes"], "label"),
    ]
    if report.get("csv_ids_without_image"):
        facts.append(f"{_count(report['csv_ids_without_image'], 'CSV id')} without an image")
    if report.get("turned_upright"):
        turns = ", ".join(
            f"{n} with orientation {o}" for o, n in sorted(report["exif_orientations"].items())
        )
        facts.append(f"{_count(report['turned_upright'], 'photo')} turned upright ({turns})")
    if report.get("transcoded"):
        facts.append(f"{_count(report['transcoded'], 'image')} transcoded for TensorFlow")
    counts = (
        f"<p>{'; '.join(facts)}. "
        f"Image root: <code>{html.escape(str(report['image_root']))}</code></p>"
    )
    warnings = "".join(f"<p class='warn'>{html.escape(w)}</p>" for w in split_warnings(report))
    names = _names(examples_uri)
    return (
        '<section id="dataset"><h2>Dataset</h2>'
        + counts
        + warnings
        + _class_counts_figure(report, names)
        + _class_tables(report, names)
        + "<h3>Rejected and skipped files</h3>"
        + _rejects(examples_uri)
        + "</section>"
    )


def samples_section(examples_uri: str, options: ImageOptions) -> str:
    names = options.features
    per_class: dict[str, list[bytes]] = collections.defaultdict(list)
    dataset = reader.read_examples(reader.split_pattern(examples_uri, "train"), names)
    for example in dataset.take(5000):
        label = example[names.label_name].numpy().decode()
        if len(per_class[label]) < SAMPLES_PER_CLASS:
            per_class[label].append(example[names.image].numpy())
    rows = []
    if len(per_class) > MAX_CLASSES_SHOWN:
        rows.append(f"<p>{MAX_CLASSES_SHOWN} of {len(per_class)} classes shown.</p>")
    display = _names(examples_uri)
    order = {label: i for i, label in enumerate(display)}
    for label in sorted(per_class, key=lambda label: order.get(label, len(order)))[
        :MAX_CLASSES_SHOWN
    ]:
        shown = _shown(label, display.get(label, label))
        thumbs = "".join(_img(_thumbnail(b), shown, "thumb") for b in per_class[label])
        rows.append(
            f"<div class='row'><span class='label'>{html.escape(shown)}</span>{thumbs}</div>"
        )
    return '<section id="samples"><h2>Sample images per class</h2>' + "".join(rows) + "</section>"


def statistics_section(statistics_uri: str | None, anomalies_uri: str | None) -> str:
    from tensorflow_data_validation import load_stats_binary
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    if not statistics_uri:
        return '<section id="statistics"><h2>Statistics</h2><p>Not computed.</p></section>'
    parts = []
    for split_dir in sorted(tf.io.gfile.glob(os.path.join(glob.escape(statistics_uri), "Split-*"))):
        split = os.path.basename(split_dir)[len("Split-") :]
        stats = load_stats_binary(os.path.join(split_dir, "FeatureStats.pb")).datasets[0]
        rows = []
        for feature in stats.features:
            name = feature.path.step[0] if feature.path.step else feature.name
            if feature.HasField("num_stats"):
                s = feature.num_stats
                rows.append(
                    [
                        name,
                        "number",
                        s.common_stats.num_missing,
                        f"{s.min:g}",
                        f"{s.max:g}",
                        f"{s.mean:.3g}",
                        "",
                    ]
                )
            elif feature.HasField("string_stats"):
                s = feature.string_stats
                top = ", ".join(v.value for v in s.top_values[:3])
                kind = "text"
                if s.top_values and s.top_values[0].value == "__BYTES_VALUE__":
                    kind, top = "bytes", "binary values (the encoded images)"
                if s.top_values or s.unique:
                    note = f"{s.unique:,} unique: {top}"
                else:  # id and path: one value per example, so not counted (see the pipeline)
                    note = f"one value per example, not counted; {s.avg_length:.0f} characters"
                rows.append(
                    [
                        name,
                        kind,
                        s.common_stats.num_missing,
                        "",
                        "",
                        "",
                        note,
                    ]
                )
            elif feature.HasField("bytes_stats"):
                s = feature.bytes_stats
                rows.append(
                    [
                        name,
                        "bytes",
                        s.common_stats.num_missing,
                        f"{s.min_num_bytes:g}",
                        f"{s.max_num_bytes:g}",
                        f"{s.avg_num_bytes:.3g}",
                        "bytes per value",
                    ]
                )
        parts.append(
            f"<h3>{html.escape(split)}: {stats.num_examples} examples</h3>"
            + _table(["feature", "type", "missing", "min", "max", "mean", "notes"], rows)
        )
    anomaly_rows = []
    if anomalies_uri:
        for path in sorted(
            tf.io.gfile.glob(os.path.join(glob.escape(anomalies_uri), "Split-*", "SchemaDiff.pb"))
        ):
            split = os.path.basename(os.path.dirname(path))[len("Split-") :]
            with tf.io.gfile.GFile(path, "rb") as f:
                anomalies = anomalies_pb2.Anomalies.FromString(f.read())
            for feature, info in anomalies.anomaly_info.items():
                anomaly_rows.append([split, feature, info.short_description, info.description])
    anomalies_html = (
        _table(["split", "feature", "anomaly", "detail"], anomaly_rows)
        if anomaly_rows
        else "<p>No anomalies: every split matches the schema.</p>"
    )
    return (
        '<section id="statistics"><h2>Statistics (TFDV)</h2>'
        + "".join(parts)
        + "<h3>Anomalies (ExampleValidator)</h3>"
        + anomalies_html
        + "</section>"
    )


def read_curves(model_run_uri: str) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """{'train'|'validation': {metric: [(epoch, value)]}} from the Trainer's TensorBoard logs."""
    curves: dict[str, dict[str, list]] = {}
    for run in ("train", "validation"):
        for path in sorted(
            tf.io.gfile.glob(
                os.path.join(glob.escape(os.path.join(model_run_uri, run)), "events.out.tfevents.*")
            )
        ):
            for record in tf.data.TFRecordDataset(path):
                event = tf.compat.v1.Event.FromString(record.numpy())
                for value in event.summary.value:
                    if not value.tag.startswith("epoch_"):
                        continue
                    number = (
                        float(tf.make_ndarray(value.tensor))
                        if value.HasField("tensor")
                        else value.simple_value
                    )
                    curves.setdefault(run, {}).setdefault(value.tag[len("epoch_") :], []).append(
                        (event.step, number)
                    )
    return curves


def curves_section(model_run_uri: str | None) -> str:
    curves = read_curves(model_run_uri) if model_run_uri else {}
    if not curves:
        return '<section id="training"><h2>Training</h2><p>No training logs found.</p></section>'
    metrics = sorted({m for run in curves.values() for m in run})
    if all(len(values) < 2 for run in curves.values() for values in run.values()):
        # One evaluation round (a short run): a curve would be one dot; the numbers say it.
        rows = [
            [
                metric,
                *[
                    _number(curves[run][metric][-1][1]) if metric in curves[run] else "n/a"
                    for run in sorted(curves)
                ],
            ]
            for metric in metrics
        ]
        return (
            '<section id="training"><h2>Training</h2><p>One evaluation round: no curves.</p>'
            + _table(["metric", *sorted(curves)], rows)
            + "</section>"
        )
    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3))
    for axis, metric in zip(np.atleast_1d(axes), metrics, strict=True):
        for run, values in curves.items():
            if metric in values:
                steps, numbers = zip(*sorted(values[metric]), strict=True)
                axis.plot(np.array(steps) + 1, numbers, marker="o", label=run)
        axis.set_title(metric)
        axis.set_xlabel("round (100 steps)")
        axis.legend()
    return (
        '<section id="training"><h2>Training curves</h2>'
        + _img(_png(figure), "curves")
        + "</section>"
    )


def evaluation_section(summary: dict) -> str:
    rows, note = [], ""
    if (summary.get("class_slices") or "").startswith("overall only"):
        note = f"<p class='warn'>TFMA slices: {html.escape(summary['class_slices'])}.</p>"
    if summary.get("evaluation_uri"):
        rows, total = _slice_rows(summary["evaluation_uri"])
        if total > len(rows) - 1:
            note += (
                f"<p>Overall and the {LIST_SHOWN} class slices with the lowest accuracy, of "
                f"{total}; every slice is in the TFMA result "
                f"(<code>{html.escape(str(summary.get('evaluation_uri')))}</code>).</p>"
            )
    blessed = summary.get("blessed")
    verdict = {True: "BLESSED", False: "NOT blessed", None: "not evaluated"}[blessed]
    accuracy = summary.get("accuracy")
    top_k = summary.get("top_k_accuracy")
    top_k_text = "" if top_k is None else f", top-{summary.get('top_k', 3)} accuracy {top_k:.4f}"
    blessing = summary.get("blessing") or {}
    thresholds = blessing.get("thresholds") or {"min_accuracy": summary.get("min_accuracy")}
    failed = blessing.get("failed") or []
    why = ""
    if failed:
        why = "<h3>Why not blessed</h3>" + _table(
            ["metric", "slice", "value", "needs", "vs baseline"],
            [
                [f["metric"], f["slice"], f"{f['value']:.4f}", f["bound"], f["against_baseline"]]
                for f in failed[:LIST_SHOWN]
            ],
        )
    pushed = summary.get("pushed_model")
    pushed_text = (
        f"<code>{html.escape(pushed)}</code>"
        if pushed
        else "none" + ("" if blessed else " (not blessed)")
    )
    baseline = blessing.get("baseline_model")
    if blessing.get("baseline_note"):  # a baseline was found but not compared
        baseline_text = html.escape(blessing["baseline_note"])
    elif baseline:
        baseline_text = f"<code>{html.escape(str(baseline))}</code>"
    else:
        baseline_text = "none (first blessed model)"
    return (
        '<section id="evaluation"><h2>Evaluation (TFMA)</h2>'
        f"<p class='verdict {'good' if blessed else 'bad'}'>{verdict}: accuracy "
        f"{'n/a' if accuracy is None else f'{accuracy:.4f}'}{top_k_text}; needs "
        f"{html.escape(_thresholds_text(thresholds))}.</p>"
        f"<p>Pushed model: {pushed_text}<br>Baseline: {baseline_text}</p>"
        + why
        + note
        + _table(["slice", *_METRICS], rows)
        + "</section>"
    )


def _thresholds_text(thresholds: dict) -> str:
    """{"min_accuracy": 0.9, "min_class_accuracy": None, ...} in words."""
    parts = []
    if thresholds.get("min_accuracy") is not None:
        parts.append(f"accuracy >= {thresholds['min_accuracy']:g}")
    if thresholds.get("min_class_accuracy") is not None:
        parts.append(f">= {thresholds['min_class_accuracy']:g} on every class")
    if thresholds.get("max_accuracy_drop") is not None:
        parts.append(f"at most {thresholds['max_accuracy_drop']:g} below the baseline")
    return ", ".join(parts) or "no threshold"


def _slice_rows(evaluation_uri: str) -> tuple[list[list], int]:
    """Table rows of the TFMA slices: overall first, then every class slice when there are at
    most MAX_CLASSES_SHOWN, else the LIST_SHOWN with the lowest accuracy. Slices are streamed
    and only those rows are kept, whatever the number of classes. Returns (rows, class slices).
    """
    import heapq

    from pipeline.results import ACCURACY, OVERALL, slice_metrics

    overall, first, worst, total = None, [], [], 0
    for name, values in slice_metrics(evaluation_uri):
        row = [name, *[_number(values.get(m), m == "example_count") for m in _METRICS]]
        if name == OVERALL:
            overall = row
            continue
        total += 1
        if len(first) <= MAX_CLASSES_SHOWN:
            first.append(row)
        key = (-values.get(ACCURACY, float("inf")), _natural(name))
        item = (key, total, row)  # total: a unique tie-breaker, rows are never compared
        if len(worst) < LIST_SHOWN:
            heapq.heappush(worst, item)
        else:
            heapq.heappushpop(worst, item)
    if total <= MAX_CLASSES_SHOWN:
        shown = sorted(first, key=lambda r: _natural(r[0]))
    else:
        shown = [row for _, _, row in sorted(worst, key=lambda item: (-item[0][0], item[0][1]))]
    return ([overall] if overall else []) + shown, total


def _natural(text: str) -> tuple:
    """Sort key that orders numbers inside names as numbers ('id=2' before 'id=10')."""
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def _number(value: float | None, count: bool = False) -> str:
    """A metric for a table: counts as whole numbers, rates with four decimals."""
    if value is None:
        return "n/a"
    return f"{int(value):,}" if count else f"{value:.4f}"


def _breakable_path(path: str) -> str:
    """A path that wraps after its slashes, not inside a name."""
    return "/<wbr>".join(html.escape(part) for part in path.split("/"))


def _count(n: int, noun: str) -> str:
    """'1 photo', '2 photos', '1,049 labels'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


_METRICS = ["sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy", "example_count"]


def predictions_section(summary: dict, options: ImageOptions) -> str:
    """Confusion matrix, per-class accuracy and the worst mistakes, from the trained model run
    over (up to MAX_EVAL_PREDICTED) eval examples.

    Streamed: only the labels, the predictions and the WORST_SHOWN most confident mistakes'
    images are kept, and confusions are counted as (true, predicted) pairs, so neither the
    eval split's images nor an n x n matrix of n classes is ever held.
    """
    import heapq

    from components.image_example_gen.outputs import read_vocabulary
    from trainer import model as trainer_model

    if not summary.get("model") or not tf.io.gfile.exists(summary["model"]):
        return '<section id="errors"><h2>Errors</h2><p>No trained model.</p></section>'
    names = options.features
    served = tf.saved_model.load(summary["model"])
    predict = served.signatures[trainer_model.IMAGES_SIGNATURE]
    vocabulary = read_vocabulary(summary["examples_uri"])
    display = read_label_names(summary["examples_uri"])
    shown = [_shown(label, name) for label, name in zip(vocabulary, display, strict=True)]
    pairs: collections.Counter = collections.Counter()  # (true, predicted) -> eval images
    mistakes: list = []  # min-heap of the most confident mistakes
    seen = 0
    dataset = reader.read_examples(
        reader.split_pattern(summary["examples_uri"], "eval"),
        names,
        keys=[names.image, names.label, names.path],
    )
    for batch in dataset.take(MAX_EVAL_PREDICTED).batch(64):
        out = predict(images=batch[names.image])
        probabilities = out[trainer_model.PROBABILITIES].numpy()
        truth = batch[names.label].numpy()
        predicted = probabilities.argmax(axis=1)
        confidence = probabilities.max(axis=1)
        for i in range(len(truth)):
            t, p = int(truth[i]), int(predicted[i])
            pairs[t, p] += 1
            if t != p:
                item = (float(confidence[i]), seen, t, p, i)
                if len(mistakes) < WORST_SHOWN or item > mistakes[0]:
                    keep = (*item[:4], batch[names.image][i].numpy(), batch[names.path][i].numpy())
                    (heapq.heappush if len(mistakes) < WORST_SHOWN else heapq.heapreplace)(
                        mistakes, keep
                    )
            seen += 1
    n = len(vocabulary)
    support = np.zeros(n, dtype=int)
    correct = np.zeros(n, dtype=int)
    for (t, p), count in pairs.items():
        support[t] += count
        correct[t] += count if t == p else 0
    per_class = correct / np.maximum(support, 1)
    if n <= MAX_CLASSES_SHOWN:
        matrix = np.zeros((n, n), dtype=int)
        for (t, p), count in pairs.items():
            matrix[t, p] = count
        plots = _img(_png(_confusion_figure(matrix, display, seen)), "confusion matrix")
        figure2, axis2 = plt.subplots(figsize=(8, 3))
        axis2.bar(range(n), per_class)
        axis2.set_xticks(range(n), map(_drawable, display), rotation=60, fontsize=7)
        axis2.set_ylim(0, 1)
        axis2.set_ylabel("accuracy")
        axis2.set_title("Per-class accuracy (eval)")
        plots += _img(_png(figure2), "per-class accuracy")
    else:
        plots = _many_classes(pairs, shown, per_class, support)
    worst = (
        "".join(
            "<figure>"
            + _img(_thumbnail(image), path.decode(), "thumb")
            + f"<figcaption>{html.escape(shown[p])} ({confidence:.0%})<br>"
            f"true: {html.escape(shown[t])}<br><code>{_breakable_path(path.decode())}</code>"
            "</figcaption></figure>"
            for confidence, _, t, p, image, path in sorted(mistakes, reverse=True)
        )
        or "<p>No eval image was misclassified.</p>"
    )
    return (
        '<section id="errors"><h2>Errors on eval images</h2>'
        + plots
        + "<h3>Most confidently misclassified</h3><div class='grid'>"
        + worst
        + "</div></section>"
    )


def _confusion_figure(matrix: np.ndarray, vocabulary: list[str], count: int):
    n = len(vocabulary)
    figure, axis = plt.subplots(figsize=(1 + 0.35 * n, 1 + 0.35 * n))
    axis.imshow(matrix, cmap="Blues")
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                color = "white" if matrix[i, j] > matrix.max() / 2 else "black"
                axis.text(j, i, matrix[i, j], ha="center", va="center", fontsize=7, color=color)
    axis.set_xticks(range(n), map(_drawable, vocabulary), rotation=60, fontsize=7)
    axis.set_yticks(range(n), map(_drawable, vocabulary), fontsize=7)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(f"Confusion matrix ({count} eval images)")
    return figure


def _many_classes(
    pairs: collections.Counter, vocabulary: list[str], per_class: np.ndarray, support: np.ndarray
) -> str:
    """What a confusion matrix says, at any class count: the accuracy distribution over
    classes, the worst classes and the most confused pairs (from (true, predicted) counts).
    `vocabulary[i]` is class i as the page names it."""
    evaluated = support > 0
    figure, axis = plt.subplots(figsize=(8, 3))
    axis.hist(per_class[evaluated], bins=np.linspace(0, 1, 21))
    axis.set_xlabel("eval accuracy of the class")
    axis.set_ylabel("classes")
    axis.set_title(
        f"Per-class accuracy, {int(evaluated.sum())} of {len(vocabulary)} classes with eval images"
    )
    confusions = {pair: count for pair, count in pairs.items() if pair[0] != pair[1]}
    taken_for: dict[int, tuple[int, int]] = {}  # true class -> (count, predicted class)
    for (t, p), count in sorted(confusions.items()):
        if count > taken_for.get(t, (0, 0))[0]:
            taken_for[t] = (count, p)
    worst = sorted(np.flatnonzero(evaluated), key=lambda i: (per_class[i], -support[i], i))
    worst_rows = []
    for i in worst[:LIST_SHOWN]:
        instead = vocabulary[taken_for[i][1]] if i in taken_for else ""
        worst_rows.append([vocabulary[i], f"{per_class[i]:.2f}", int(support[i]), instead])
    top = sorted(confusions.items(), key=lambda item: (-item[1], item[0]))[:LIST_SHOWN]
    pair_rows = [[vocabulary[t], vocabulary[p], count] for (t, p), count in top]
    return (
        _img(_png(figure), "per-class accuracy distribution")
        + f"<h3>The {LIST_SHOWN} classes with the lowest eval accuracy</h3>"
        + _table(["class", "accuracy", "eval images", "mostly predicted as"], worst_rows)
        + "<h3>Most confused pairs</h3>"
        + (
            _table(["true", "predicted", "eval images"], pair_rows)
            if pair_rows
            else "<p>No eval image was taken for another class.</p>"
        )
    )


def steps_section(summary: dict) -> str:
    """What each step of the run cost: state, wall time, peak resident memory, throughput."""
    rows = []
    for step, record in (summary.get("step_times") or {}).items():
        rate = ""
        if "examples_per_s" in record:
            rate = f"{record['examples']:,} examples, {record['examples_per_s']:,.0f}/s"
        elif "steps_per_s" in record:
            rate = f"{record['steps']:,} steps, {record['steps_per_s']:.2f}/s"
        peak = record.get("peak_rss_mib")
        rows.append(
            [
                step,
                record.get("state", ""),
                _clock(record.get("seconds", 0)),
                "" if peak is None else f"{peak / 1024:.2f} GiB",
                rate,
            ]
        )
    if not rows:
        return '<section id="steps"><h2>Steps</h2><p>Not recorded for this run.</p></section>'
    total = summary.get("seconds")
    return (
        '<section id="steps"><h2>Steps</h2>'
        + _table(["step", "state", "wall time", "peak RSS", "throughput"], rows)
        + (f"<p>Pipeline steps together: {_clock(total)}.</p>" if total else "")
        + "</section>"
    )


def _clock(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{margin-bottom:0}section{margin:2em 0;border-top:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
img.plot{max-width:100%;display:block;margin:.5em 0}
img.thumb{width:64px;height:64px;object-fit:contain;margin:2px;border:1px solid #eee}
.row{display:flex;align-items:center}.label{width:9em;font-weight:bold}
.grid{display:flex;flex-wrap:wrap}figure{width:150px;font-size:11px;margin:4px}
figure code,.label{overflow-wrap:break-word}
.verdict{font-size:1.2em;font-weight:bold}.good{color:#176417}.bad{color:#a11}
.warn{background:#fff4d6;padding:4px 8px;border-left:4px solid #e0a000}
.names{font-size:12px;max-height:8em;overflow:auto}
"""


def render(summary: dict) -> str:
    """The report page of a run, from its summary (see pipeline.results.summarize)."""
    options = ImageOptions.from_dict(read_report(summary["examples_uri"])["options"])
    sections = [
        dataset_section(summary["examples_uri"]),
        samples_section(summary["examples_uri"], options),
        statistics_section(summary.get("statistics_uri"), summary.get("anomalies_uri")),
        curves_section(summary.get("model_run_uri")),
        evaluation_section(summary),
        predictions_section(summary, options),
        steps_section(summary),
    ]
    nav = " · ".join(
        f'<a href="#{s}">{s}</a>'
        for s in ("dataset", "samples", "statistics", "training", "evaluation", "errors", "steps")
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>imgtfx run report</title>"
        f"<style>{STYLE}</style></head><body><h1>imgtfx run report</h1>"
        f"<p><code>{html.escape(str(summary.get('root')))}</code><br>{nav}</p>"
        + "".join(sections)
        + "</body></html>"
    )


def write_report(root: str) -> str:
    """Writes ROOT/report/index.html from ROOT/summary.json; returns its path. The page is
    rendered before the file is opened, so a failure never leaves an empty report behind."""
    try:
        with open(os.path.join(root, "summary.json"), encoding="utf-8") as f:
            summary = json.load(f)
    except FileNotFoundError:
        raise ValueError(
            f"{root} holds no imgtfx run (no summary.json): give the --root of `imgtfx run`."
        ) from None
    if not summary.get("examples_uri"):
        raise ValueError(f"the run in {root} produced no examples: nothing to report.")
    page = render(summary)
    path = os.path.join(root, "report", "index.html")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(path + ".tmp", path)
    return path
