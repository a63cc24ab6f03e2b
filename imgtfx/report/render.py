"""Renders a run's results (data.RunResults) as one self-contained HTML page that opens from
disk: plots are matplotlib PNGs and thumbnails PNGs, embedded as data URIs; no network assets.

Rendering reads no file and imports no TensorFlow: what to show was decided by read.py, how
to show it is decided here (parts.py: the building blocks; data_sections.py and
model_sections.py: the sections). Every text from the data is escaped.
"""

from __future__ import annotations

import html

from imgtfx.report.data import RunResults
from imgtfx.report.data_sections import (
    copies_section,
    curves_section,
    dataset_section,
    samples_section,
    statistics_section,
)
from imgtfx.report.model_sections import evaluation_section, predictions_section, steps_section

SECTIONS = (
    "dataset",
    "samples",
    "copies",
    "statistics",
    "training",
    "evaluation",
    "errors",
    "steps",
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
        copies_section(results.copies, results.dataset.report, results.dataset.names),
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
        f"<p><code>{html.escape(str(summary.root))}</code><br>{nav}</p>"
        + "".join(sections)
        + "</body></html>"
    )
