"""duplicates.jsonl: one line per group of copies (duplicates.py finds the groups), written in
sorted runs (sorted_runs.py) and merged once; the report and report.json's counts read it."""

from __future__ import annotations

import json
from collections.abc import Iterable


def group_line(element: tuple[str, Iterable[tuple]]) -> dict:
    """One line of duplicates.jsonl: a group's members, its first image (the representative)
    first, then by path."""
    representative, members = element
    members = sorted(members, key=lambda m: (m[0] != representative, m[0]))
    return {
        "kind": "exact" if all(m[4] for m in members) else "near",
        "paths": [m[0] for m in members],
        "labels": [m[1] for m in members],
        "splits": [m[2] for m in members],
        "distances": [m[3] for m in members],
        "max_distance": max(m[3] for m in members),
    }


def member(record) -> tuple[str, tuple]:
    """(group, the member's part of its line) of a grouped record."""
    return record.group, (
        record.file.path,
        record.label_name,
        record.split,
        record.distance,
        record.exact,
    )


def line_key(line: dict) -> str:
    return line["paths"][0]


def encode_line(line: dict) -> str:
    return json.dumps(line, ensure_ascii=False) + "\n"


def decode_line(text: str) -> dict:
    return json.loads(text)


def is_straddling(line: dict) -> bool:
    """Copies of one picture in two splits (what was kept out is in none)."""
    return len({s for s in line["splits"] if ":" not in s}) > 1
