"""The report's sections on the data and the training: the dataset and its rejects, sample
images, copies of one picture, TFDV statistics and anomalies, and the training curves."""

from __future__ import annotations

import html

import numpy as np
from matplotlib.ticker import MaxNLocator

from imgtfx.components.examples.conversion_report import ConversionReport
from imgtfx.report.data import (
    LIST_SHOWN,
    MAX_CLASSES_SHOWN,
    Copies,
    CopyGroup,
    Dataset,
    Samples,
    Statistics,
)
from imgtfx.report.parts import (
    breakable_path,
    count,
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

# ---------------------------------------------------------------------------------------------
# Dataset.


def _class_counts_figure(report: ConversionReport, names: dict[str, str]) -> str:
    """Examples per class: stacked bars per split for a few classes, else the distribution."""
    splits = list(report.splits)
    classes = report.classes
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
        return img(png(figure), "examples per class")
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
    return img(png(figure), "examples per class") + f"<p>{html.escape(title)}.</p>"


def _class_tables(report: ConversionReport, names: dict[str, str]) -> str:
    splits = list(report.splits)
    classes = report.classes

    def name(label):
        return shown(label, names.get(label, label))

    def row(label):
        counts = classes[label]
        return [name(label), *[counts.get(s, 0) for s in splits], sum(counts.values())]

    header = ["label", *splits, "total"]
    if len(classes) <= MAX_CLASSES_SHOWN:
        return table(header, [row(label) for label in classes])
    # Stable: among classes of equal size, the vocabulary's order (numeric for int labels).
    fewest = sorted(classes, key=lambda label: sum(classes[label].values()))
    parts = [
        f"<h3>The {LIST_SHOWN} classes with the fewest examples</h3>",
        table(header, [row(label) for label in fewest[:LIST_SHOWN]]),
    ]
    for split, labels in report.classes_without_examples.items():
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
        f"{count(report.files_seen, 'file')} seen: "
        f"<b>{count(report.examples, 'example')}</b> "
        f"({', '.join(f'{html.escape(s)} {n:,}' for s, n in report.splits.items())})",
        f"{report.rejected:,} rejected, {report.skipped:,} skipped",
        count(report.num_classes, "label"),
    ]
    if report.csv_ids_without_image:
        facts.append(f"{count(report.csv_ids_without_image, 'CSV id')} without an image")
    if report.turned_upright:
        turns = ", ".join(
            f"{n} with orientation {o}" for o, n in sorted(report.exif_orientations.items())
        )
        facts.append(f"{count(report.turned_upright, 'photo')} turned upright ({turns})")
    if report.transcoded:
        facts.append(f"{count(report.transcoded, 'image')} transcoded for TensorFlow")
    return section(
        "dataset",
        "Dataset",
        f"<p>{'; '.join(facts)}. "
        f"Image root: <code>{html.escape(str(report.image_root))}</code></p>"
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
        thumbs = "".join(img(thumbnail_uri(p), name, "thumb") for p in pictures)
        rows.append(
            f"<div class='row'><span class='label'>{html.escape(name)}</span>{thumbs}</div>"
        )
    return section("samples", "Sample images per class", "".join(rows))


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
        return section("statistics", "Statistics", "<p>Not computed.</p>")
    parts = [
        f"<h3>{html.escape(split.split)}: {count(split.examples, 'example')}</h3>"
        + table(
            ["feature", "type", "missing", "min", "max", "mean", "notes"],
            [_statistics_row(f) for f in split.features],
        )
        for split in statistics.splits
    ]
    anomalies = (
        table(
            ["split", "feature", "anomaly", "detail"],
            [[a.split, a.feature, a.short, a.detail] for a in statistics.anomalies],
        )
        if statistics.anomalies
        else "<p>No anomalies: every split matches the schema.</p>"
    )
    return section(
        "statistics",
        "Statistics (TFDV)",
        "".join(parts) + "<h3>Anomalies (ExampleValidator)</h3>" + anomalies,
    )


def curves_section(curves: dict[str, dict[str, list[tuple[int, float]]]]) -> str:
    if not curves:
        return section("training", "Training", "<p>No training logs found.</p>")
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
        return section(
            "training",
            "Training",
            "<p>One evaluation round: no curves.</p>" + table(["metric", *runs], rows),
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
    return section("training", "Training curves", img(png(figure), "curves"))


# ---------------------------------------------------------------------------------------------
# Copies.


def _copy_group(group: CopyGroup, names: dict[str, str]) -> str:
    figures = []
    for i, path in enumerate(group.paths[: len(group.thumbnails)]):
        label = shown(group.labels[i], names.get(group.labels[i], group.labels[i]))
        picture = group.thumbnails[i]
        image = img(thumbnail_uri(picture), path, "thumb") if picture is not None else "(none)"
        figures.append(
            f"<figure>{image}<figcaption>{html.escape(label)}<br>{html.escape(group.splits[i])}"
            f", {group.distances[i]} bits<br><code>{breakable_path(path)}</code></figcaption>"
            "</figure>"
        )
    more = len(group.paths) - len(group.thumbnails)
    tail = f"<p>and {more:,} more.</p>"
    head = f"<p>{count(len(group.paths), 'image')}, {html.escape(group.kind)} copies:</p>"
    return head + f"<div class='grid'>{''.join(figures)}</div>" + (tail if more > 0 else "")


def copies_section(copies: Copies | None, report: ConversionReport, names: dict[str, str]) -> str:
    """The groups of copies of one picture: counts, the largest groups and every group under
    two or more labels (up to the page's caps), side by side."""
    if not copies:
        looked = report.options.get("dedupe", "group") != "off"
        text = "No copies of one picture found." if looked else "Copies were not looked for."
        return section("copies", "Copies", f"<p>{text}</p>")
    counts = [
        ["groups of copies", f"{report.duplicate_groups:,}"],
        ["images in them", f"{report.duplicate_images:,}"],
        ["groups of exact copies", f"{report.exact_groups:,}"],
        ["groups under two or more labels", f"{report.cross_label_groups:,}"],
        ["groups in more than one split", f"{report.straddling_groups:,}"],
        ["near: at most, bits from the first", f"{report.duplicate_threshold_bits}"],
    ]
    body = table(["", ""], counts)
    body += "<h3>Largest groups</h3>" + "".join(_copy_group(g, names) for g in copies.largest)
    if copies.cross_label:
        total = report.cross_label_groups
        body += (
            f"<h3>Under two or more labels ({len(copies.cross_label):,} of {total:,})</h3>"
            + "".join(_copy_group(g, names) for g in copies.cross_label)
        )
    return section("copies", "Copies of one picture", body + "<p>All in duplicates.jsonl.</p>")
