"""FileBasedExampleGen's arguments on ImageExampleGen, as a TFX user passes them: output formats,
any int or bytes partition feature (held to TFX's own partition function), spans with a
range_config, and the component's own code version in a pipeline that is not the project's."""

from __future__ import annotations

import inspect

import pytest
import tensorflow as tf
from tfx.components.example_gen import component as tfx_example_gen
from tfx.components.example_gen.base_example_gen_executor import (
    _GeneratePartitionKey,
    _PartitionFn,
)
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs

from imgtfx.components import code_version
from imgtfx.components.examples import layout
from imgtfx.components.image_example_gen import ImageExampleGen
from imgtfx.components.image_example_gen.options import ImageOptions
from imgtfx.components.image_example_gen.splits import partition_key
from tests.helpers.conversions import run_do
from tests.helpers.images import encode, write


def _splits(train_buckets: int = 2) -> example_gen_pb2.SplitConfig:
    return example_gen_pb2.SplitConfig(
        splits=[
            example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=train_buckets),
            example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=3 - train_buckets),
        ]
    )


def test_every_file_based_example_gen_argument_is_taken_but_custom_config():
    """custom_config is ImageOptions (`options=`); every other argument has its TFX name."""
    theirs = set(inspect.signature(tfx_example_gen.FileBasedExampleGen.__init__).parameters)
    ours = set(inspect.signature(ImageExampleGen.__init__).parameters)
    assert theirs - ours == {"custom_config", "custom_executor_spec"}


def test_output_formats_other_than_gzipped_tf_examples_are_refused_in_one_line(tmp_path):
    component = ImageExampleGen(
        input_base="/data",
        output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
        output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    )
    props = component.exec_properties
    assert props[standard_component_specs.OUTPUT_FILE_FORMAT_KEY] == (
        example_gen_pb2.FORMAT_TFRECORDS_GZIP
    )
    with pytest.raises(ValueError, match=r"^ImageExampleGen writes .* got output_data_format="):
        ImageExampleGen(input_base="/data", output_data_format=example_gen_pb2.FORMAT_PARQUET)
    with pytest.raises(ValueError, match="got output_file_format=FILE_FORMAT_PARQUET"):
        ImageExampleGen(input_base="/data", output_file_format=example_gen_pb2.FILE_FORMAT_PARQUET)
    # Forced into the execution properties (as a compiled pipeline could carry them), the
    # executor refuses too, before it reads anything: never a silent gzipped-TFRecord output.
    parquet = {standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_PARQUET}
    forced = dict(props, **parquet)
    with pytest.raises(ValueError, match="output_data_format=FORMAT_PARQUET"):
        ImageOptions.from_exec_properties(forced)


def test_partition_features_the_split_cannot_hash_fail_at_construction():
    for name, message in (("image_raw", "is the image's bytes"), ("colour", "is not a feature")):
        config = example_gen_pb2.Output(split_config=_splits())
        config.split_config.partition_feature_name = name
        with pytest.raises(ValueError, match=f"'{name}' {message}; ImageExampleGen splits on"):
            ImageExampleGen(input_base="/data", output_config=config)


def test_an_int_feature_hashes_as_tfx_hashes_it():
    config = example_gen_pb2.SplitConfig(partition_feature_name="height")
    for value in (0, 1, 127, 128, 540, 2**40):
        example = tf.train.Example()
        example.features.feature["height"].int64_list.value.append(value)
        assert partition_key(value) == _GeneratePartitionKey(example, config)
    config = example_gen_pb2.SplitConfig(partition_feature_name="image_hash")
    example = tf.train.Example()
    example.features.feature["image_hash"].bytes_list.value.append(b"\x00\xff" * 15)
    assert partition_key(b"\x00\xff" * 15) == _GeneratePartitionKey(example, config)


@pytest.mark.parametrize(
    "feature, train_buckets",  # buckets that give both splits examples of these few values
    [("label", 2), ("height", 2), ("format", 1), ("image_hash", 2), ("label_name", 2)],
)
def test_any_int_or_bytes_feature_splits_as_tfx_partition_function_does(
    tmp_path, feature, train_buckets
):
    """Each written example lies in the split TFX's own _PartitionFn gives it, on a tree of
    several sizes, formats and classes; splitting on the label keeps each class whole."""
    root = tmp_path / "images"
    for i in range(24):
        size = (20 + 4 * (i % 5), 16 + 3 * (i % 4))
        fmt, ext = (("PNG", "png"), ("JPEG", "jpg"))[i % 2]
        write(root / f"c{i % 6}" / f"{i}.{ext}", encode(fmt, size=size, seed=i))
    config = example_gen_pb2.Output(split_config=_splits(train_buckets))
    config.split_config.partition_feature_name = feature
    out = tmp_path / "out"
    run_do(root, out, ImageOptions(cover_every_split=False), output_config=config)
    by_class: dict[bytes, set] = {}
    seen = 0
    for index, split in enumerate(("train", "eval")):
        files = layout.split_files(str(out), split)
        for record in tf.data.TFRecordDataset(tf.io.gfile.glob(files), "GZIP"):
            example = tf.train.Example.FromString(record.numpy())
            assert _PartitionFn(example, 2, [train_buckets, 3], config.split_config) == index
            label = example.features.feature["label_name"].bytes_list.value[0]
            by_class.setdefault(label, set()).add(split)
            seen += 1
    assert seen == 24 and len(by_class) == 6
    if feature.startswith("label"):  # whole classes: no class in two splits
        assert all(len(splits) == 1 for splits in by_class.values())


def test_the_component_stamps_its_own_code_version():
    """Anyone's pipeline, not only the project's, reruns it after an upgrade (TFX's cache key
    holds execution properties, not import-path code)."""
    stamp = ImageExampleGen(input_base="/data").exec_properties[code_version.CODE_VERSION]
    assert stamp.startswith("imgtfx ") and "sha256:" in stamp


def _run(root, components):
    from tfx import v1 as tfx

    tfx.orchestration.LocalDagRunner().run(
        tfx.dsl.Pipeline(
            pipeline_name="users-own-pipeline",
            pipeline_root=str(root / "pipeline"),
            components=components,
            enable_cache=True,
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
                str(root / "metadata.sqlite")
            ),
        )
    )
    from tfx.orchestration import metadata

    config = metadata.sqlite_metadata_connection_config(str(root / "metadata.sqlite"))
    with metadata.Metadata(config) as m:
        return m.store.get_executions(), m.store


def _span_tree(images, span: int) -> None:
    for label in ("cat", "dog"):
        for i in range(4):
            write(images / f"span-{span}" / label / f"{label}_{i}.jpg", encode(seed=10 * span + i))


def _spans(store, ids) -> list[int]:
    return sorted(a.custom_properties["span"].int_value for a in store.get_artifacts_by_id(ids))


def test_spans_a_range_config_and_the_last_n_spans(tmp_path):
    """A month of photos added as a new span: the latest span by default, the spans a
    range_config names, and a Resolver's rolling range of the last two spans to train on."""
    from ml_metadata.proto import metadata_store_pb2
    from tfx import v1 as tfx
    from tfx.proto import range_config_pb2
    from tfx.types import standard_artifacts

    images = tmp_path / "images"
    _span_tree(images, 1)
    monthly = example_gen_pb2.Input(
        splits=[example_gen_pb2.Input.Split(name="photos", pattern="span-{SPAN}/*")]
    )

    def pipeline(range_config=None):
        gen = ImageExampleGen(str(images), input_config=monthly, range_config=range_config)
        last_two = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.SpanRangeStrategy,
            config={
                "range_config": range_config_pb2.RangeConfig(
                    rolling_range=range_config_pb2.RollingRange(num_spans=2)
                )
            },
            examples=tfx.dsl.Channel(
                type=standard_artifacts.Examples, producer_component_id=gen.id
            ),
        ).with_id("LastTwoSpans")
        return [gen, last_two]

    def latest_outputs(store, execution_type: str) -> list[int]:
        (execution,) = [
            e
            for e in store.get_executions()
            if execution_type in store.get_execution_types_by_id([e.type_id])[0].name
        ][-1:]
        events = store.get_events_by_execution_ids([execution.id])
        outputs = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.INTERNAL_OUTPUT)
        return [e.artifact_id for e in events if e.type in outputs]  # a Resolver's: internal

    _, store = _run(tmp_path, pipeline())
    assert _spans(store, latest_outputs(store, "ImageExampleGen")) == [1]
    _span_tree(images, 2)
    _, store = _run(tmp_path, pipeline())
    assert _spans(store, latest_outputs(store, "ImageExampleGen")) == [2]
    # The Resolver hands on both spans' examples, as a Trainer would get them.
    assert _spans(store, latest_outputs(store, "Resolver")) == [1, 2]
    first = range_config_pb2.RangeConfig(
        static_range=range_config_pb2.StaticRange(start_span_number=1, end_span_number=1)
    )
    _, store = _run(tmp_path, pipeline(first))
    (examples,) = store.get_artifacts_by_id(latest_outputs(store, "ImageExampleGen"))
    assert examples.custom_properties["span"].int_value == 1
    paths = {
        tf.train.Example.FromString(r.numpy()).features.feature["path"].bytes_list.value[0]
        for r in tf.data.TFRecordDataset(tf.io.gfile.glob(f"{examples.uri}/Split-*/*.gz"), "GZIP")
    }
    assert len(paths) == 8 and all(p.startswith(b"span-1/") for p in paths)


def test_a_users_pipeline_reruns_the_component_after_an_upgrade(tmp_path, monkeypatch):
    from ml_metadata.proto import metadata_store_pb2

    images = tmp_path / "images"
    _span_tree(images, 1)
    executions, _ = _run(tmp_path, [ImageExampleGen(str(images))])
    assert executions[-1].last_known_state == metadata_store_pb2.Execution.COMPLETE
    executions, _ = _run(tmp_path, [ImageExampleGen(str(images))])
    assert executions[-1].last_known_state == metadata_store_pb2.Execution.CACHED
    monkeypatch.setattr(code_version, "package_version", lambda: "99.0")  # pip install -U
    executions, _ = _run(tmp_path, [ImageExampleGen(str(images))])
    assert executions[-1].last_known_state == metadata_store_pb2.Execution.COMPLETE
