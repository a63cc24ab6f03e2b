"""ImageExampleGen as a component: constructor checks, a LocalDagRunner run read from MLMD."""

from __future__ import annotations

import os

import pytest
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import example_gen_pb2

from imgtfx.components.image_example_gen import ImageExampleGen
from imgtfx.components.image_example_gen.driver import tree_fingerprint
from imgtfx.components.image_example_gen.options import ImageOptions
from tests.helpers.images import encode, make_tree, write


def test_constructor_checks_arguments():
    with pytest.raises(ValueError, match="needs input_base"):
        ImageExampleGen(input_base="")
    with pytest.raises(ValueError, match="--max-reject-fraction must be between 0 and 1"):
        ImageOptions(max_reject_fraction=2)
    component = ImageExampleGen(input_base="/data", options=ImageOptions(labels_csv="/l.csv"))
    _, output_config, options = ImageOptions.from_exec_properties(component.exec_properties)
    assert output_config.split_config.partition_feature_name == "id"
    assert [s.hash_buckets for s in output_config.split_config.splits] == [80, 20]
    assert options == ImageOptions(labels_csv="/l.csv")


def test_fingerprint_sees_images_deep_in_the_tree(tmp_path):
    root = tmp_path / "images"
    make_tree(root, per_class=2)
    config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="s", pattern="*")])
    before = tree_fingerprint(str(root), config, None)
    write(root / "train" / "cat" / "deep" / "new.jpg", encode(seed=9))
    assert tree_fingerprint(str(root), config, None) != before


def _run(root, pipeline_root, db):
    example_gen = ImageExampleGen(input_base=str(root))
    pipeline = Pipeline(
        pipeline_name="examplegen-only",
        pipeline_root=str(pipeline_root),
        components=[example_gen],
        enable_cache=True,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(str(db)),
    )
    LocalDagRunner().run(pipeline)


def _executions(db):
    config = metadata.sqlite_metadata_connection_config(str(db))
    with metadata.Metadata(config) as m:
        executions = m.store.get_executions()
        artifacts = m.store.get_artifacts_by_type("Examples")
    return executions, artifacts


def test_runs_in_local_dag_runner_and_records_counts_in_mlmd(tmp_path):
    root = tmp_path / "images"
    make_tree(root, per_class=6)
    write(root / "train" / "cat" / "broken.jpg", encode()[:40])
    db = tmp_path / "metadata.sqlite"
    _run(root, tmp_path / "pipeline", db)
    executions, artifacts = _executions(db)
    assert [e.last_known_state for e in executions] == [metadata_store_pb2.Execution.COMPLETE]
    (examples,) = artifacts
    props = {
        k: v.int_value for k, v in examples.custom_properties.items() if v.HasField("int_value")
    }
    assert props["files_seen"] == 13
    assert props["examples"] == 12 and props["rejected"] == 1
    assert props["examples_train"] + props["examples_eval"] == 12
    assert os.path.exists(os.path.join(examples.uri, "labels.txt"))

    _run(root, tmp_path / "pipeline", db)  # nothing changed: cached
    executions, _ = _executions(db)
    assert [e.last_known_state for e in executions][-1] == metadata_store_pb2.Execution.CACHED

    write(root / "train" / "dog" / "new.jpg", encode(seed=42))  # a new image deep in the tree
    _run(root, tmp_path / "pipeline", db)
    executions, artifacts = _executions(db)
    assert executions[-1].last_known_state == metadata_store_pb2.Execution.COMPLETE
    assert artifacts[-1].custom_properties["examples"].int_value == 13
