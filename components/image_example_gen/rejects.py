"""rejects.jsonl's lines: every file (or CSV row) that did not become an example, sorted by
status, then path, as sorted runs merged into one file (sorted_runs.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from imgtfx.components.examples.reasons import Outcome
from imgtfx.components.image_example_gen import sorted_runs

RUN_RECORDS = sorted_runs.RUN_RECORDS


def sort_key(outcome: Outcome) -> tuple:
    """rejects.jsonl's order: by status, then path; the whole record breaks ties, so that every
    runner writes the same bytes."""
    return outcome.status, outcome.path, outcome.reason, outcome.detail


def encode(outcome: Outcome) -> str:
    return json.dumps(outcome._asdict(), ensure_ascii=False) + "\n"


def decode(line: str) -> Outcome:
    return Outcome(**json.loads(line))


def write_run(folder: str, outcomes: list[Outcome]) -> str:
    return sorted_runs.write_run(folder, outcomes, sort_key, encode)


def merge_runs(runs: list[str], path: str) -> Iterator[Outcome]:
    return sorted_runs.merge_runs(runs, path, sort_key, encode, decode)


def WriteRuns(folder: str, run_records: int = RUN_RECORDS) -> sorted_runs.WriteRuns:  # noqa: N802
    """Outcomes (or their tuples) -> sorted run files of rejects.jsonl."""
    return sorted_runs.WriteRuns(folder, sort_key, encode, run_records, parse=_outcome)


def _outcome(element) -> Outcome:
    return Outcome(*element)
