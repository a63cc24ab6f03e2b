"""What a person sees during a local run: step lines, progress lines, per-step cost."""

from __future__ import annotations

import io
import re
import time

from imgtfx.components import counters
from imgtfx.pipeline import steps


def test_step_lines_progress_lines_and_peak_memory():
    out = io.StringIO()
    watch = steps.StepWatch(out=out, heartbeat_s=0.3)
    with watch:
        watch._started("ImageExampleGen")
        for _ in range(5):
            counters.count("images", 40)
            counters.count("written", 10)
            time.sleep(0.2)
        hog = bytearray(64 * 2**20)  # the step's own peak
        del hog
        watch._ended("ImageExampleGen", "COMPLETE", None, None)
        watch._started("Trainer")
        counters.update("train_steps", 7, total=300)
        time.sleep(0.5)
        counters.count("indexed", 256)  # after training, the neighbour index
        time.sleep(0.5)
        watch._ended("Trainer", "COMPLETE", None, None)
    lines = out.getvalue().splitlines()
    assert all(re.match(r"\[\d\d:\d\d:\d\d\] ", line) for line in lines)
    assert "ImageExampleGen: started" in lines[0]
    beats = [line for line in lines if "images checked" in line]
    assert beats and re.search(r"\d+ images checked \(\d+/s\), \d+ written, RSS", beats[0])
    assert any("step 7/300" in line and "steps/s" in line for line in lines)
    indexing = [line for line in lines if "train photos indexed" in line]
    assert indexing and re.search(r"256 train photos indexed \([\d,]+/s\)", indexing[0])
    assert not any("steps/s" in line for line in indexing)  # no step rate falling meanwhile
    assert re.search(r"ImageExampleGen: done in \d+\.\ds", out.getvalue())
    assert re.search(r"Trainer: done in .*7 steps \(\d+\.\d\d/s\)", out.getvalue())
    record = watch.steps["ImageExampleGen"]
    assert record["state"] == "COMPLETE" and record["seconds"] >= 1.0
    assert record["peak_rss_mib"] >= 64  # at least the buffer it held
    assert watch.steps["Trainer"]["steps"] == 7
    assert not counters.watched()  # the watch is over: steps draw their own bars again


def test_a_quiet_step_still_prints_a_line_every_heartbeat():
    out = io.StringIO()
    watch = steps.StepWatch(out=out, heartbeat_s=0.25)
    with watch:
        watch._started("Evaluator")
        time.sleep(1.2)
        watch._ended("Evaluator", "FAILED", None, None)
    lines = out.getvalue().splitlines()
    assert len([line for line in lines if line.endswith("GiB") and "Evaluator: " in line]) >= 3
    assert "Evaluator: failed in" in lines[-1]


def test_timed_block_records_seconds_and_peak():
    out = io.StringIO()
    with steps.timed("report", out=out) as record:
        time.sleep(0.1)
    assert record["seconds"] >= 0.1 and record["peak_rss_mib"] > 0
    assert "report: started" in out.getvalue() and "report: done in" in out.getvalue()


def test_durations_read_like_a_clock():
    assert steps.duration(4.25) == "4.2s"
    assert steps.duration(185) == "3m05s"
    assert steps.duration(3720) == "1h02m"
