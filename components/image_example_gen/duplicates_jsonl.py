"""duplicates.jsonl: one line per group of copies (duplicates.py finds the groups), written in
sorted runs (sorted_runs.py) and merged once; the report and report.json's counts read it.

A line's `splits` holds each member's split, or for a copy kept out of the examples why it was
("skipped: duplicate_image", "rejected: conflicting_labels_duplicate").
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import NamedTuple

from imgtfx.components.examples import reasons


class Member(NamedTuple):
    """One image's part of its group's line."""

    path: str
    label_name: str
    split: str  # its output split, or why it was kept out ("skipped: duplicate_image")
    distance: int  # fingerprint bits from the group's first image
    exact: bool  # the first image's very image data


def member(record) -> tuple[str, tuple]:
    """(group, the member's part of its line) of a grouped plan record (records.LabeledImage),
    as a plain tuple: Beam's shuffle encodes tuples natively but pickles NamedTuples."""
    return record.group, tuple(
        Member(
            record.file.path,
            record.label_name,
            record.kept_out or record.split,
            record.distance,
            record.exact,
        )
    )


def group_line(element: tuple[str, Iterable[tuple]]) -> dict:
    """One line of duplicates.jsonl: a group's members, its first image (the representative)
    first, then by path."""
    representative, members = element
    members = sorted(map(Member._make, members), key=lambda m: (m.path != representative, m.path))
    return {
        "kind": "exact" if all(m.exact for m in members) else "near",
        "paths": [m.path for m in members],
        "labels": [m.label_name for m in members],
        "splits": [m.split for m in members],
        "distances": [m.distance for m in members],
        "max_distance": max(m.distance for m in members),
    }


def line_key(line: dict) -> str:
    return line["paths"][0]


def encode_line(line: dict) -> str:
    return json.dumps(line, ensure_ascii=False) + "\n"


def decode_line(text: str) -> dict:
    return json.loads(text)


def kept_out(split: str) -> bool:
    """Whether a line's split value says its copy was kept out of the examples."""
    status, _, reason = split.partition(": ")
    return status in (reasons.SKIPPED, reasons.REJECTED) and bool(reason)


def is_straddling(line: dict) -> bool:
    """Copies of one picture in two splits (what was kept out is in none)."""
    return len({s for s in line["splits"] if not kept_out(s)}) > 1
