"""The report's sections on the model: TFMA's metrics and the blessing, the confusions (a matrix
at few classes, its summaries at many) and the most confident mistakes, and what each step
cost."""

from __future__ import annotations

import html

import numpy as np

from imgtfx.components.image_evaluator.properties import (
    ACCURACY,
    EXAMPLE_COUNT,
    TOP_K_ACCURACY,
)
from imgtfx.pipeline.run_summary import RunSummary
from imgtfx.report.data import LIST_SHOWN, MAX_CLASSES_SHOWN, Predictions, Slices
from imgtfx.report.parts import (
    breakable_path,
    clock,
    drawable,
    img,
    number,
    plt,
    png,
    section,
    shown,
    table,
    thumbnail_uri,
)

METRICS = [ACCURACY, TOP_K_ACCURACY, EXAMPLE_COUNT]

# ---------------------------------------------------------------------------------------------
# Evaluation.


def _thresholds_text(thresholds: dict) -> str:
    """{"min_accuracy": 0.9, "min_class_accuracy": None, ...} in words."""
    parts = []
    if thresholds.get("min_accuracy") is not None:
        parts.append(f"accuracy >= {thresholds['min_accuracy']:g}")
    if thresholds.get("min_class_accuracy") is not None:
        parts.append(f">= {thresholds['min_class_accuracy']:g} on every class")
    if thresholds.get("min_gap") is not None:
        parts.append(f"GAP >= {thresholds['min_gap']:g}")
    if thresholds.get("max_accuracy_drop") is not None:
        parts.append(f"at most {thresholds['max_accuracy_drop']:g} below the baseline")
    return ", ".join(parts) or "no threshold"


def _slice_row(name: str, values: dict[str, float]) -> list[str]:
    return [name, *[number(values.get(m), m == EXAMPLE_COUNT) for m in METRICS]]


def evaluation_section(summary: RunSummary, slices: Slices | None) -> str:
    rows, note = [], ""
    if (summary.class_slices or "").startswith("overall only"):
        note = f"<p class='warn'>TFMA slices: {html.escape(summary.class_slices)}.</p>"
    if slices is not None:
        if slices.overall is not None:
            rows.append(_slice_row("overall", slices.overall))
        rows += [_slice_row(name, values) for name, values in slices.rows]
        if slices.total > len(slices.rows):
            note += (
                f"<p>Overall and the {len(slices.rows)} class slices with the lowest accuracy, "
                f"of {slices.total:,}; every slice is in the TFMA result "
                f"(<code>{html.escape(str(summary.evaluation_uri))}</code>).</p>"
            )
    blessed = summary.blessed
    verdict = {True: "BLESSED", False: "NOT blessed", None: "not evaluated"}[blessed]
    accuracy = summary.accuracy
    top_k = summary.top_k_accuracy
    top_k_text = "" if top_k is None else f", top-{summary.top_k} accuracy {top_k:.4f}"
    if summary.gap is not None:
        top_k_text += f", GAP {summary.gap:.4f}"
    if summary.gap_by_method:  # a model with a neighbour index: each method side by side
        top_k_text += (
            " (GAP by method: "
            + ", ".join(
                f"{method} {'-' if value is None else f'{value:.4f}'}"
                for method, value in summary.gap_by_method.items()
            )
            + ")"
        )
    blessing = summary.blessing or {}
    thresholds = blessing.get("thresholds") or {}
    failed = blessing.get("failed") or []
    why = ""
    if failed:
        why = "<h3>Why not blessed</h3>" + table(
            ["metric", "slice", "value", "needs", "vs baseline"],
            [
                [f["metric"], f["slice"], f"{f['value']:.4f}", f["bound"], f["against_baseline"]]
                for f in failed[:LIST_SHOWN]
            ],
        )
    pushed = summary.pushed_model
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
    return section(
        "evaluation",
        "Evaluation (TFMA)",
        f"<p class='verdict {'good' if blessed else 'bad'}'>{verdict}: accuracy "
        f"{'n/a' if accuracy is None else f'{accuracy:.4f}'}{top_k_text}; needs "
        f"{html.escape(_thresholds_text(thresholds))}.</p>"
        f"<p>Pushed model: {pushed_text}<br>Baseline: {baseline_text}</p>"
        + why
        + note
        + table(["slice", *METRICS], rows),
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
        img(png(figure), "per-class accuracy distribution")
        + f"<h3>The {LIST_SHOWN} classes with the lowest eval accuracy</h3>"
        + table(["class", "accuracy", "eval images", "mostly predicted as"], worst_rows)
        + "<h3>Most confused pairs</h3>"
        + (
            table(["true", "predicted", "eval images"], pair_rows)
            if pair_rows
            else "<p>No eval image was taken for another class.</p>"
        )
    )


def predictions_section(predictions: Predictions | None) -> str:
    """Confusion matrix (or its summaries at many classes), per-class accuracy and the most
    confidently misclassified eval images."""
    if predictions is None:
        return section("errors", "Errors", "<p>No trained model.</p>")
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
        plots = img(png(figure), "confusion matrix")
        figure, axis = plt.subplots(figsize=(8, 3))
        axis.bar(range(n), per_class)
        axis.set_xticks(range(n), map(drawable, predictions.names), rotation=60, fontsize=7)
        axis.set_ylim(0, 1)
        axis.set_ylabel("accuracy")
        axis.set_title("Per-class accuracy (eval)")
        plots += img(png(figure), "per-class accuracy")
    else:
        plots = many_classes(predictions.pairs, named, per_class, support)
    worst = (
        "".join(
            "<figure>"
            + img(thumbnail_uri(m.thumbnail), m.path, "thumb")
            + f"<figcaption>{html.escape(named[m.predicted])} ({m.confidence:.0%})<br>"
            f"true: {html.escape(named[m.true])}<br><code>{breakable_path(m.path)}</code>"
            "</figcaption></figure>"
            for m in predictions.mistakes
        )
        or "<p>No eval image was misclassified.</p>"
    )
    return section(
        "errors",
        "Errors on eval images",
        plots + "<h3>Most confidently misclassified</h3><div class='grid'>" + worst + "</div>",
    )


# ---------------------------------------------------------------------------------------------
# Steps and the page.


def steps_section(summary: RunSummary) -> str:
    """What each step of the run cost: state, wall time, peak resident memory, throughput."""
    rows = []
    for step, record in (summary.step_times or {}).items():
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
        return section("steps", "Steps", "<p>Not recorded for this run.</p>")
    total = summary.seconds
    return section(
        "steps",
        "Steps",
        table(["step", "state", "wall time", "peak RSS", "throughput"], rows)
        + (f"<p>Pipeline steps together: {clock(total)}.</p>" if total else ""),
    )
