"""The hand-built tf.train.Example bytes (example_bytes.py) against protobuf's own serializer."""

from __future__ import annotations

import pytest
import tensorflow as tf

from imgtfx.components.examples.features import FeatureNames
from imgtfx.components.image_example_gen import example_bytes
from imgtfx.components.image_example_gen.records import LabeledImage
from imgtfx.components.image_example_gen.tree import FoundFile
from imgtfx.components.image_files import ImageInfo
from tests.helpers.images import encode


def _protobuf_bytes(record, info, label, features) -> bytes:
    """The example as protobuf builds it, field by field, serialized deterministically."""
    example = tf.train.Example()
    feature = example.features.feature
    for name, value in (
        (features.image, info.data),
        (features.label_name, record.label_name.encode()),
        (features.id, record.id.encode()),
        (features.path, record.file.path.encode()),
        (features.format, info.format.encode()),
        (features.source_format, info.source_format.encode()),
        (features.image_hash, info.fingerprint),
    ):
        feature[name].bytes_list.value.append(value)
    for name, value in (
        (features.label, label),
        (features.height, info.height),
        (features.width, info.width),
        (features.channels, info.channels),
        (features.orientation, info.orientation),
    ):
        feature[name].int64_list.value.append(value)
    return example.SerializeToString(deterministic=True)


@pytest.mark.parametrize(
    "path, label, number, data, features",
    [
        ("서울/경복궁/1.jpg", "경복궁", 0, encode(size=(960, 540)), FeatureNames()),
        ("a/b.png", "", 1048, b"", FeatureNames()),  # empty strings and bytes
        ("x" * 300, "y" * 200, 2**40, b"\x00" * 70000, FeatureNames()),  # multi-byte varints
        ("e/f.jpg", "f", -3, b"x", FeatureNames()),  # a negative int64: ten bytes
        ("c/d.jpg", "d", 7, b"jpeg", FeatureNames(image="pixels", label="z_label", id="aa")),
    ],
)
def test_hand_built_bytes_are_protobufs_deterministic_bytes(path, label, number, data, features):
    record = LabeledImage(FoundFile("train", path, "/x/" + path), path.split("/")[-1], label)
    info = ImageInfo(data, "jpeg", "mpo", 540, 960, 3, 6, fingerprint=bytes(range(29)))
    expected = _protobuf_bytes(record, info, number, features)
    assert example_bytes.serialize_example(record, info, number, features) == expected
    # again: the second call is served from the cached entry heads
    assert example_bytes.serialize_example(record, info, number, features) == expected
    parsed = tf.train.Example.FromString(
        example_bytes.serialize_example(record, info, number, features)
    )
    assert parsed.features.feature[features.image].bytes_list.value[0] == data
    assert parsed.features.feature[features.label].int64_list.value[0] == number
