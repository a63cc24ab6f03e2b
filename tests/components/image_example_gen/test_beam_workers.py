"""Beam workers in other processes, as on Dataflow, Flink or Spark (slow).

The DirectRunner's multi_processing mode runs every bundle in `python -m
apache_beam.runners.worker.sdk_worker_main` subprocesses (apache_beam 2.61.0,
runners/portability/fn_api_runner/fn_runner.py, `running_mode == 'multi_processing'`): each
DoFn is pickled on the launcher and unpickled in a fresh interpreter, so a DoFn that leans on
the launcher's state (a module global, an open file, a terminal) fails or differs there. Both
data steps must write the very bytes they write in one process.
"""

from __future__ import annotations

import os

import pytest
from tfx.components.statistics_gen import executor as statistics_executor
from tfx.dsl.components.base import base_beam_executor
from tfx.types import standard_artifacts, standard_component_specs

from imgtfx.pipeline import staging
from tests.helpers.conversions import run_do
from tests.helpers.images import encode, make_tree, write

pytestmark = pytest.mark.slow

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
WORKERS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def _files(folder: str) -> dict[str, bytes]:
    """Every output file under `folder` by relative path (Beam's temporary folders aside)."""
    found = {}
    for parent, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(("beam-temp", ".temp", "tmp"))]
        for name in names:
            path = os.path.join(parent, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = f.read()
    return found


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """ImageExampleGen on one tree, in one process and on two worker processes."""
    root = tmp_path_factory.mktemp("tree") / "images"
    make_tree(root, classes=("경복궁", "남산타워", "cat"), per_class=12, prefix="train")
    write(root / "train" / "cat" / "broken.jpg", b"\xff\xd8 cut short")
    write(root / "train" / "cat" / "sideways.jpg", encode(size=(40, 30), seed=7))
    out = tmp_path_factory.mktemp("out")
    return {
        mode: run_do(root, out / mode, beam_args=args)
        for mode, args in (("in_memory", IN_MEMORY), ("workers", WORKERS))
    }


def test_image_example_gen_writes_the_same_bytes_on_worker_processes(examples):
    one, many = (_files(examples[m].uri) for m in ("in_memory", "workers"))
    assert any(name.startswith("Split-train") for name in one)
    assert set(one) == set(many)
    for name in one:
        assert one[name] == many[name], name  # shards, labels, report, rejects alike
    assert b"broken.jpg" in one["rejects.jsonl"]


def _statistics(examples_artifact, out: str, beam_args: list[str]) -> dict[str, bytes]:
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = out
    statistics.split_names = '["train", "eval"]'
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=staging.worker_args(beam_args)
    )
    statistics_executor.Executor(context).Do(
        {standard_component_specs.EXAMPLES_KEY: [examples_artifact]},
        {standard_component_specs.STATISTICS_KEY: [statistics]},
        {},
    )
    return _files(out)


def test_statistics_gen_computes_the_same_statistics_on_worker_processes(examples, tmp_path):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import statistics_pb2

    def by_feature(data: bytes) -> dict:
        stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(data).datasets[0]
        assert stats.num_examples > 0
        # TFDV lists features in any order; sums merged in another order may differ in the
        # last bits, so numbers are compared to 9 significant digits.
        return {
            tuple(f.path.step): text_format.MessageToString(f, float_format=".9g")
            for f in stats.features
        }

    one = _statistics(examples["in_memory"], str(tmp_path / "one"), IN_MEMORY)
    many = _statistics(examples["in_memory"], str(tmp_path / "many"), WORKERS)
    assert set(one) == set(many) and one
    for name in one:
        assert by_feature(one[name]) == by_feature(many[name]), name
