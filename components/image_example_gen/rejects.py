"""rejects.jsonl without gathering the rejects on one worker: they are written where they arise,
in sorted runs of at most RUN_RECORDS, and one step merges the runs line by line.

A 4-million-row labels CSV over a subset of the images makes millions of `csv_id_without_image`
rows; collected into one list (as a side input), sorted and joined, they took memory in
proportion on one worker. Here a worker holds one run at most, and the merge one line per run.
"""

from __future__ import annotations

import heapq
import json
import uuid
from collections.abc import Iterator

import apache_beam as beam
import tensorflow as tf
from apache_beam.transforms import window

from components.examples.reasons import Outcome

RUN_RECORDS = 50_000  # the most rejects a worker sorts in memory at once (about 15 MB)


def sort_key(outcome: Outcome) -> tuple:
    """rejects.jsonl's order: by status, then path; the whole record breaks ties, so that every
    runner writes the same bytes."""
    return outcome.status, outcome.path, outcome.reason, outcome.detail


def _line(outcome: Outcome) -> str:
    return json.dumps(outcome._asdict(), ensure_ascii=False) + "\n"


def write_run(folder: str, outcomes: list[Outcome]) -> str:
    """Writes `outcomes` sorted to a new run file in `folder`; returns its path."""
    tf.io.gfile.makedirs(folder)
    path = f"{folder}/run-{uuid.uuid4().hex}.jsonl"
    outcomes.sort(key=sort_key)
    with tf.io.gfile.GFile(path, "w") as f:
        for outcome in outcomes:
            f.write(_line(outcome))
    return path


def merge_runs(runs: list[str], path: str) -> Iterator[Outcome]:
    """Merges sorted run files into one sorted file at `path`, a line at a time, and yields each
    outcome as it is written. The file is written even when there is nothing to write: GFile
    creates a file only on its first write, and every output the README lists must exist."""
    sources = [tf.io.gfile.GFile(run, "r") for run in sorted(runs)]
    try:
        merged = heapq.merge(
            *((Outcome(**json.loads(line)) for line in source) for source in sources),
            key=sort_key,
        )
        with tf.io.gfile.GFile(path, "w") as out:
            out.write("")
            for outcome in merged:
                out.write(_line(outcome))
                yield outcome
    finally:
        for source in sources:
            source.close()


class WriteRuns(beam.DoFn):
    """Outcomes -> the paths of sorted run files of at most `run_records` outcomes each. Only
    the paths of committed bundles reach the merge: a retried bundle's files are left in the
    folder, which the merge step deletes whole."""

    def __init__(self, folder: str, run_records: int = RUN_RECORDS):
        self._folder = folder
        self._run_records = run_records
        self._buffer: list[Outcome] = []

    def start_bundle(self):
        self._buffer = []

    def process(self, outcome):
        self._buffer.append(Outcome(*outcome))
        if len(self._buffer) >= self._run_records:
            yield write_run(self._folder, self._buffer)
            self._buffer = []

    def finish_bundle(self):
        if self._buffer:
            yield window.GlobalWindows.windowed_value(write_run(self._folder, self._buffer))
            self._buffer = []
