"""rejects.jsonl from sorted runs: no worker holds every reject, the file is one sorted whole."""

from __future__ import annotations

import json
import os
import random

import apache_beam as beam
from apache_beam.testing.util import assert_that

from imgtfx.components.examples import reasons
from imgtfx.components.examples.reasons import Outcome
from imgtfx.components.image_example_gen import rejects


def _outcomes(n: int) -> list[Outcome]:
    """CSV rows without an image and rejected files, in no order, some paths twice."""
    made = [
        Outcome(f"id-{i % (n // 2)}", reasons.CSV_ROW, reasons.CSV_ID_WITHOUT_IMAGE)
        for i in range(n)
    ]
    made += [
        Outcome(f"train/상점/{i}.jpg", reasons.REJECTED, reasons.UNREADABLE, f"detail {i % 3}")
        for i in range(n // 4)
    ]
    random.Random(0).shuffle(made)
    return made


def test_each_run_is_sorted_and_bounded_and_the_merge_is_the_sorted_whole(tmp_path):
    outcomes = _outcomes(1_000)
    folder = str(tmp_path / "runs")

    def check_runs(paths):
        lines = []
        for path in paths:
            with open(path, encoding="utf-8") as f:
                run = [Outcome(**json.loads(line)) for line in f]
            assert 0 < len(run) <= 64
            assert run == sorted(run, key=rejects.sort_key)
            lines += run
        assert sorted(lines) == sorted(outcomes)  # every outcome in exactly one run

    with beam.Pipeline() as pipeline:
        runs = (
            pipeline
            | beam.Create(outcomes, reshuffle=False)
            | beam.ParDo(rejects.WriteRuns(folder, run_records=64))
        )
        assert_that(runs, check_runs)

    paths = [os.path.join(folder, name) for name in os.listdir(folder)]
    assert len(paths) >= len(outcomes) // 64
    target = str(tmp_path / "rejects.jsonl")
    merged = list(rejects.merge_runs(paths, target))
    assert merged == sorted(outcomes, key=rejects.sort_key)
    with open(target, encoding="utf-8") as f:
        assert [Outcome(**json.loads(line)) for line in f] == merged


def test_no_runs_still_writes_an_empty_file(tmp_path):
    target = tmp_path / "rejects.jsonl"
    assert list(rejects.merge_runs([], str(target))) == []
    assert target.read_text() == ""
