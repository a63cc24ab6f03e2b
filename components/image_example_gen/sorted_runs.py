"""JSON-lines outputs (rejects.jsonl, duplicates.jsonl) written without gathering their lines
on one worker: lines are written where they arise, in sorted runs of at most RUN_RECORDS, and
one step merges the runs line by line into the sorted file.

A 4-million-row labels CSV over a subset of the images makes millions of `csv_id_without_image`
rows; collected into one list (as a side input), sorted and joined, they took memory in
proportion on one worker. Here a worker holds one run at most, and the merge one line per run.
Each output names its order (`key`) and its lines (`encode`, `decode`).
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Callable, Iterable, Iterator

import apache_beam as beam
import tensorflow as tf
from apache_beam.transforms import window

RUN_RECORDS = 50_000  # the most lines a worker sorts in memory at once (about 15 MB)


def write_run(folder: str, items: list, key: Callable, encode: Callable) -> str:
    """Writes `items` sorted by `key` to a new run file in `folder`; returns its path."""
    tf.io.gfile.makedirs(folder)
    path = f"{folder}/run-{uuid.uuid4().hex}.jsonl"
    items.sort(key=key)
    with tf.io.gfile.GFile(path, "w") as f:
        for item in items:
            f.write(encode(item))
    return path


def merge_runs(
    runs: Iterable[str], path: str, key: Callable, encode: Callable, decode: Callable
) -> Iterator:
    """Merges sorted run files into one sorted file at `path`, a line at a time, and yields each
    item as it is written. The file is written even when there is nothing to write: GFile
    creates a file only on its first write, and every output the README lists must exist."""
    sources = [tf.io.gfile.GFile(run, "r") for run in sorted(runs)]
    try:
        merged = heapq.merge(*((decode(line) for line in source) for source in sources), key=key)
        with tf.io.gfile.GFile(path, "w") as out:
            out.write("")
            for item in merged:
                out.write(encode(item))
                yield item
    finally:
        for source in sources:
            source.close()


class WriteRuns(beam.DoFn):
    """Items -> the paths of sorted run files of at most `run_records` items each. Only the
    paths of committed bundles reach the merge: a retried bundle's files are left in the
    folder, which the merge step deletes whole."""

    def __init__(
        self,
        folder: str,
        key: Callable,
        encode: Callable,
        run_records: int = RUN_RECORDS,
        parse: Callable | None = None,
    ):
        self._folder = folder
        self._key = key
        self._encode = encode
        self._run_records = run_records
        self._parse = parse  # an element -> the item to write (tuples back to NamedTuples)
        self._buffer: list = []

    def start_bundle(self):
        self._buffer = []

    def process(self, element):
        self._buffer.append(self._parse(element) if self._parse else element)
        if len(self._buffer) >= self._run_records:
            yield write_run(self._folder, self._buffer, self._key, self._encode)
            self._buffer = []

    def finish_bundle(self):
        if self._buffer:
            path = write_run(self._folder, self._buffer, self._key, self._encode)
            yield window.GlobalWindows.windowed_value(path)
            self._buffer = []
