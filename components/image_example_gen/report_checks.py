"""The checks of a finished conversion's report.json that fail the step, each with what to do.

Light (no TFX, Beam or TensorFlow), so that the command line can catch ImageExampleGenError
without importing them.
"""

from __future__ import annotations

from imgtfx.components.examples.conversion_report import ConversionReport
from imgtfx.components.examples.layout import REJECTS_FILE
from imgtfx.components.image_example_gen.options import ImageOptions


class ImageExampleGenError(RuntimeError):
    """The data cannot make a usable dataset; the message says what to do."""


def check_report(report: ConversionReport, options: ImageOptions) -> None:
    """Fails with a clear message when the converted data is not usable.

    Raises:
      ImageExampleGenError: nothing usable, too many rejects, an empty split, or unreconciled
        counts.
    """
    summary = (
        f"{report.files_seen} files seen, {report.examples} examples, "
        f"{report.rejected} rejected, {report.skipped} skipped"
    )
    if not report.reconciled:
        raise ImageExampleGenError(f"file counts do not add up ({summary}); please report a bug.")
    if report.examples == 0:
        reasons = report.rejected_by_reason or "no image files found"
        raise ImageExampleGenError(f"no usable images under {report.image_root}: {reasons}.")
    candidates = report.examples + report.rejected
    fraction = report.rejected / candidates
    if fraction > options.max_reject_fraction:
        raise ImageExampleGenError(
            f"{fraction:.0%} of the images were rejected, over max_reject_fraction="
            f"{options.max_reject_fraction} ({summary}; reasons: {report.rejected_by_reason})."
            f" See {REJECTS_FILE} in the output, or raise max_reject_fraction."
        )
    empty = [name for name, n in report.splits.items() if n == 0]
    if empty:
        raise ImageExampleGenError(
            f"split(s) {empty} got no examples ({summary}): add images or change the split sizes."
        )
