"""What a person is told of a conversion beside its counts: the copies of one picture it found
(copy_warnings) and the classes a split has no example of (split_warnings). `imgtfx convert`
prints them, ImageExampleGen logs them, the HTML report shows them."""

from __future__ import annotations

from imgtfx.components.examples.conversion_report import ConversionReport


def copy_warnings(report: ConversionReport) -> list[str]:
    """One line when there are copies, and a warning each for groups under two or more labels
    and for groups on both sides of a split."""
    groups = report.duplicate_groups
    if not groups:
        return []
    lines = [
        f"copies: {groups:,} group{'' if groups == 1 else 's'} of copies of one picture "
        f"({report.duplicate_images:,} images; {report.exact_groups:,} of exact copies), each "
        "in one split where the split is chosen here; see duplicates.jsonl."
    ]
    for count, examples, what in (
        (
            report.cross_label_groups,
            report.cross_label_examples,
            "lie under two or more labels: one picture teaches several classes "
            "(--reject-conflicting-duplicates rejects them)",
        ),
        (
            report.straddling_groups,
            report.straddling_examples,
            "lie in more than one split: the eval split holds copies of training "
            "images, and its accuracy counts them",
        ),
    ):
        if count:
            shown = "; ".join(" and ".join(paths) for paths in examples)
            lines.append(
                f"warning: {count:,} group{'' if count == 1 else 's'} of copies {what} ({shown})."
            )
    return lines


def split_warnings(report: ConversionReport, shown: int = 5) -> list[str]:
    """One line per split that some classes have no example in, with what to do about it."""
    lines = []
    for split, labels in report.classes_without_examples.items():
        if not labels:
            continue
        names = ", ".join(labels[:shown]) + (", ..." if len(labels) > shown else "")
        hint = (
            "the model cannot learn them; lower --eval-percent or add images"
            if split == "train"
            else "they are not evaluated; raise --eval-percent or add images"
        )
        lines.append(
            f"warning: {len(labels):,} of {report.num_classes:,} classes have no {split} "
            f"example ({names}): {hint}."
        )
    return lines
