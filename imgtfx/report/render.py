"""Renders a run's results (data.RunResults) as one self-contained HTML page that opens from
disk: plots are matplotlib PNGs and thumbnails PNGs, embedded as data URIs; no network assets.

Rendering reads no file and imports no TensorFlow: what to show was decided by read.py, how
to show it is decided here. Every text from the data is escaped.
"""

from __future__ import annotations

import base64
import functools
import html
import io

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
from matplotlib.ticker import MaxNLocator  # noqa: E402

from imgtfx.report.data import (  # noqa: E402
    LIST_SHOWN,
    MAX_CLASSES_SHOWN,
    Dataset,
    Predictions,
    RunResults,
    Samples,
    Slices,
    Statistics,
)

METRICS = ["sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy", "example_count"]
SECTIONS = ("dataset", "samples", "statistics", "training", "evaluation", "errors", "steps")


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


def drawable(text: str) -> str:
    """`text` for a chart: a character no chart font has (emoji, scripts beyond Korean, Chinese
    and Latin) is drawn as U+FFFD, never an empty box and a warning; the HTML around the
    charts shows every name as it is."""
    fonts = _fonts()
    return "".join(c if ord(c) in fonts or c.isspace() else "\ufffd" for c in text)


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _thumbnail(pixels: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _img(src: str, alt: str, cls: str = "plot") -> str:
    return f'<img class="{cls}" src="{src}" alt="{html.escape(alt)}">'


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(name: str, title: str, body: str) -> str:
    return f'<section id="{name}"><h2>{html.escape(title)}</h2>{body}</section>'


def shown(label: str, name: str) -> str:
    """How a class is named in the page: "name (label)" where it has a name of its own."""
    return label if name == label else f"{name} ({label})"


def count(n: int, noun: str) -> str:
    """'1 photo', '2 photos', '1,049 labels'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def number(value: float | None, whole: bool = False) -> str:
    """A metric for a table: counts as whole numbers, rates with four decimals."""
    if value is None:
        return "n/a"
    return f"{int(value):,}" if whole else f"{value:.4f}"


def clock(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


def _breakable_path(path: str) -> str:
    """A path that wraps after its slashes, not inside a name."""
    return "/<wbr>".join(html.escape(part) for part in path.split("/"))


# ---------------------------------------------------------------------------------------------
# Dataset.


def _class_counts_figure(report: dict, names: dict[str, str]) -> str:
    """Examples per class: stacked bars per split for a few classes, else the distribution."""
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
        ticks = [drawable(names.get(label, label)) for label in labels]
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


def _class_tables(report: dict, names: dict[str, str]) -> str:
    splits = list(report["splits"])
    classes = report["classes"]

    def name(label):
        return shown(label, names.get(label, label))

    def row(label):
        counts = classes[label]
        return [name(label), *[counts.get(s, 0) for s in splits], sum(counts.values())]

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
            listed = ", ".join(html.escape(name(label)) for label in labels[:100])
            more = f" ... and {len(labels) - 100} more" if len(labels) > 100 else ""
            parts.append(
                f"<h3>Classes without {html.escape(split)} examples ({len(labels)})</h3>"
                f"<p class='names'>{listed}{more}</p>"
            )
    return "".join(parts)


def _rejects(dataset: Dataset) -> str:
    if not dataset.rejects:
        return "<p>No file was rejected or skipped.</p>"
    return "".join(
        f"<details><summary>{html.escape(group.status)}: {html.escape(group.reason)} "
        f"({group.count:,})</summary><ul>"
        + "".join(
            f"<li><code>{html.escape(path)}</code> {html.escape(detail)}</li>"
            for path, detail in group.files
        )
        + (
            f"<li>... and {group.count - len(group.files):,} more</li>"
            if group.count > len(group.files)
            else ""
        )
        + "</ul></details>"
        for group in dataset.rejects
    )


def dataset_section(dataset: Dataset) -> str:
    report = dataset.report
    facts = [
        f"{count(report['files_seen'], 'file')} seen: "
        f"<b>{count(report['examples'], 'example')}</b> "
        f"({', '.join(f'{html.escape(s)} {n:,}' for s, n in report['splits'].items())})",
        f"{report['rejected']:,} rejected, {report['skipped']:,} skipped",
        count(report["num_classes"], "label"),
    ]
    if report.get("csv_ids_without_image"):
        facts.append(f"{count(report['csv_ids_without_image'], 'CSV id')} without an image")
    if report.get("turned_upright"):
        turns = ", ".join(
            f"{n} with orientation {o}" for o, n in sorted(report["exif_orientations"].items())
        )
        facts.append(f"{count(report['turned_upright'], 'photo')} turned upright ({turns})")
    if report.get("transcoded"):
        facts.append(f"{count(report['transcoded'], 'image')} transcoded for TensorFlow")
    return _section(
        "dataset",
        "Dataset",
        f"<p>{'; '.join(facts)}. "
        f"Image root: <code>{html.escape(str(report['image_root']))}</code></p>"
        + "".join(f"<p class='warn'>{html.escape(w)}</p>" for w in dataset.warnings)
        + _class_counts_figure(report, dataset.names)
        + _class_tables(report, dataset.names)
        + "<h3>Rejected and skipped files</h3>"
        + _rejects(dataset),
    )


def samples_section(samples: Samples, names: dict[str, str]) -> str:
    rows = []
    if samples.classes_seen > len(samples.per_class):
        rows.append(f"<p>{len(samples.per_class)} of {samples.classes_seen} classes shown.</p>")
    for label, pictures in samples.per_class.items():
        name = shown(label, names.get(label, label))
        thumbs = "".join(_img(_thumbnail(p), name, "thumb") for p in pictures)
        rows.append(
            f"<div class='row'><span class='label'>{html.escape(name)}</span>{thumbs}</div>"
        )
    return _section("samples", "Sample images per class", "".join(rows))


# ---------------------------------------------------------------------------------------------
# Statistics and training.


def _statistics_row(f) -> list:
    if f.kind == "encoded":
        note = f"{f.unique or 0:,} unique: binary values (the encoded images)"
        return [f.name, "bytes", f.missing, "", "", "", note]
    if f.kind == "text":
        if f.unique is None:  # id and path: one value per example, so not counted
            note = f"one value per example, not counted; {f.average_length or 0:.0f} characters"
        else:
            note = f"{f.unique:,} unique: {', '.join(f.top)}"
        return [f.name, "text", f.missing, "", "", "", note]
    note = "bytes per value" if f.kind == "bytes" else ""
    return [f.name, f.kind, f.missing, f"{f.minimum:g}", f"{f.maximum:g}", f"{f.mean:.3g}", note]


def statistics_section(statistics: Statistics | None) -> str:
    if statistics is None:
        return _section("statistics", "Statistics", "<p>Not computed.</p>")
    parts = [
        f"<h3>{html.escape(split.split)}: {count(split.examples, 'example')}</h3>"
        + _table(
            ["feature", "type", "missing", "min", "max", "mean", "notes"],
            [_statistics_row(f) for f in split.features],
        )
        for split in statistics.splits
    ]
    anomalies = (
        _table(
            ["split", "feature", "anomaly", "detail"],
            [[a.split, a.feature, a.short, a.detail] for a in statistics.anomalies],
        )
        if statistics.anomalies
        else "<p>No anomalies: every split matches the schema.</p>"
    )
    return _section(
        "statistics",
        "Statistics (TFDV)",
        "".join(parts) + "<h3>Anomalies (ExampleValidator)</h3>" + anomalies,
    )


def curves_section(curves: dict[str, dict[str, list[tuple[int, float]]]]) -> str:
    if not curves:
        return _section("training", "Training", "<p>No training logs found.</p>")
    metrics = sorted({m for run in curves.values() for m in run})
    runs = sorted(curves)
    if all(len(values) < 2 for run in curves.values() for values in run.values()):
        # One evaluation round (a short run): a curve would be one dot; the numbers say it.
        rows = [
            [
                metric,
                *[
                    number(curves[run][metric][-1][1]) if metric in curves[run] else "n/a"
                    for run in runs
                ],
            ]
            for metric in metrics
        ]
        return _section(
            "training",
            "Training",
            "<p>One evaluation round: no curves.</p>" + _table(["metric", *runs], rows),
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
    return _section("training", "Training curves", _img(_png(figure), "curves"))


# ---------------------------------------------------------------------------------------------
# Evaluation.


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


def _slice_row(name: str, values: dict[str, float]) -> list[str]:
    return [name, *[number(values.get(m), m == "example_count") for m in METRICS]]


def evaluation_section(summary: dict, slices: Slices | None) -> str:
    rows, note = [], ""
    if (summary.get("class_slices") or "").startswith("overall only"):
        note = f"<p class='warn'>TFMA slices: {html.escape(summary['class_slices'])}.</p>"
    if slices is not None:
        if slices.overall is not None:
            rows.append(_slice_row("overall", slices.overall))
        rows += [_slice_row(name, values) for name, values in slices.rows]
        if slices.total > len(slices.rows):
            note += (
                f"<p>Overall and the {len(slices.rows)} class slices with the lowest accuracy, "
                f"of {slices.total:,}; every slice is in the TFMA result "
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
    return _section(
        "evaluation",
        "Evaluation (TFMA)",
        f"<p class='verdict {'good' if blessed else 'bad'}'>{verdict}: accuracy "
        f"{'n/a' if accuracy is None else f'{accuracy:.4f}'}{top_k_text}; needs "
        f"{html.escape(_thresholds_text(thresholds))}.</p>"
        f"<p>Pushed model: {pushed_text}<br>Baseline: {baseline_text}</p>"
        + why
        + note
        + _table(["slice", *METRICS], rows),
    )


def confusion_figure(matrix: np.ndarray, names: list[str], images: int):
    n = len(names)
    figure, axis = plt.subplots(figsize=(1 + 0.35 * n, 1 + 0.35 * n))
    axis.imshow(matrix, cmap="Blues")
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                color = "white" if matrix[i, j] > matrix.max() / 2 else "black"
                axis.text(j, i, matrix[i, j], ha="center", va="center", fontsize=7, color=color)
    axis.set_xticks(range(n), map(drawable, names), rotation=60, fontsize=7)
    axis.set_yticks(range(n), map(drawable, names), fontsize=7)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(f"Confusion matrix ({images} eval images)")
    return figure


def many_classes(pairs, names: list[str], per_class: np.ndarray, support: np.ndarray) -> str:
    """What a confusion matrix says, at any class count: the accuracy distribution over
    classes, the worst classes and the most confused pairs (from (true, predicted) counts).
    `names[i]` is class i as the page names it."""
    evaluated = support > 0
    figure, axis = plt.subplots(figsize=(8, 3))
    axis.hist(per_class[evaluated], bins=np.linspace(0, 1, 21))
    axis.set_xlabel("eval accuracy of the class")
    axis.set_ylabel("classes")
    axis.set_title(
        f"Per-class accuracy, {int(evaluated.sum())} of {len(names)} classes with eval images"
    )
    confusions = {pair: n for pair, n in pairs.items() if pair[0] != pair[1]}
    taken_for: dict[int, tuple[int, int]] = {}  # true class -> (count, predicted class)
    for (t, p), n in sorted(confusions.items()):
        if n > taken_for.get(t, (0, 0))[0]:
            taken_for[t] = (n, p)
    worst = sorted(np.flatnonzero(evaluated), key=lambda i: (per_class[i], -support[i], i))
    worst_rows = []
    for i in worst[:LIST_SHOWN]:
        instead = names[taken_for[i][1]] if i in taken_for else ""
        worst_rows.append([names[i], f"{per_class[i]:.2f}", int(support[i]), instead])
    top = sorted(confusions.items(), key=lambda item: (-item[1], item[0]))[:LIST_SHOWN]
    pair_rows = [[names[t], names[p], n] for (t, p), n in top]
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


def predictions_section(predictions: Predictions | None) -> str:
    """Confusion matrix (or its summaries at many classes), per-class accuracy and the most
    confidently misclassified eval images."""
    if predictions is None:
        return _section("errors", "Errors", "<p>No trained model.</p>")
    named = [
        shown(label, name)
        for label, name in zip(predictions.labels, predictions.names, strict=True)
    ]
    n = len(named)
    support = np.zeros(n, dtype=int)
    correct = np.zeros(n, dtype=int)
    for (t, p), images in predictions.pairs.items():
        support[t] += images
        correct[t] += images if t == p else 0
    per_class = correct / np.maximum(support, 1)
    if n <= MAX_CLASSES_SHOWN:
        matrix = np.zeros((n, n), dtype=int)
        for (t, p), images in predictions.pairs.items():
            matrix[t, p] = images
        figure = confusion_figure(matrix, predictions.names, predictions.seen)
        plots = _img(_png(figure), "confusion matrix")
        figure, axis = plt.subplots(figsize=(8, 3))
        axis.bar(range(n), per_class)
        axis.set_xticks(range(n), map(drawable, predictions.names), rotation=60, fontsize=7)
        axis.set_ylim(0, 1)
        axis.set_ylabel("accuracy")
        axis.set_title("Per-class accuracy (eval)")
        plots += _img(_png(figure), "per-class accuracy")
    else:
        plots = many_classes(predictions.pairs, named, per_class, support)
    worst = (
        "".join(
            "<figure>"
            + _img(_thumbnail(m.thumbnail), m.path, "thumb")
            + f"<figcaption>{html.escape(named[m.predicted])} ({m.confidence:.0%})<br>"
            f"true: {html.escape(named[m.true])}<br><code>{_breakable_path(m.path)}</code>"
            "</figcaption></figure>"
            for m in predictions.mistakes
        )
        or "<p>No eval image was misclassified.</p>"
    )
    return _section(
        "errors",
        "Errors on eval images",
        plots + "<h3>Most confidently misclassified</h3><div class='grid'>" + worst + "</div>",
    )


# ---------------------------------------------------------------------------------------------
# Steps and the page.


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
                clock(record.get("seconds", 0)),
                "" if peak is None else f"{peak / 1024:.2f} GiB",
                rate,
            ]
        )
    if not rows:
        return _section("steps", "Steps", "<p>Not recorded for this run.</p>")
    total = summary.get("seconds")
    return _section(
        "steps",
        "Steps",
        _table(["step", "state", "wall time", "peak RSS", "throughput"], rows)
        + (f"<p>Pipeline steps together: {clock(total)}.</p>" if total else ""),
    )


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


def render(results: RunResults) -> str:
    """The report page of a run."""
    summary = results.summary
    sections = [
        dataset_section(results.dataset),
        samples_section(results.samples, results.dataset.names),
        statistics_section(results.statistics),
        curves_section(results.curves),
        evaluation_section(summary, results.slices),
        predictions_section(results.predictions),
        steps_section(summary),
    ]
    nav = " · ".join(f'<a href="#{s}">{s}</a>' for s in SECTIONS)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>imgtfx run report</title>"
        f"<style>{STYLE}</style></head><body><h1>imgtfx run report</h1>"
        f"<p><code>{html.escape(str(summary.get('root')))}</code><br>{nav}</p>"
        + "".join(sections)
        + "</body></html>"
    )
