"""tf.train.Example and Feature wire bytes built by hand, byte-identical to protobuf's
`SerializeToString(deterministic=True)`.

The shard writer makes one example per photo on its decode threads: building a tf.train.Example
and serializing it copied each 110 KB photo twice more, and doing the same in Python code that
walks the message costs more GIL time than the photo's header parse. Here the bytes around each
feature's value depend only on the feature's name, its kind and its value's length, so they are
computed once per length and cached; the photo is copied once, in the final join.

Wire format (tensorflow/core/example/{example,feature}.proto): Example.features (1) ->
Features.feature (1, map<string, Feature>: entry key 1, value 2) -> Feature.bytes_list (1) or
int64_list (3) -> value (1; int64s packed).
"""

from __future__ import annotations

import functools

from imgtfx.components.examples.features import FeatureNames
from imgtfx.components.image_files import ImageInfo

BYTES_LIST, INT64_LIST = b"\x0a", b"\x1a"  # Feature's field tags (length-delimited)
_ONE_BYTE = [bytes((i,)) for i in range(0x80)]


def varint(n: int) -> bytes:
    if 0 <= n < 0x80:  # most lengths and numbers in an example
        return _ONE_BYTE[n]
    n &= (1 << 64) - 1  # int64 as protobuf writes it: negatives in ten bytes
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def feature_bytes(value: bytes) -> bytes:
    """A Feature holding one bytes value (what TFX's partition function hashes)."""
    listed = b"\x0a" + varint(len(value)) + value
    return BYTES_LIST + varint(len(listed)) + listed


def int64_feature_bytes(value: int) -> bytes:
    """A Feature holding one int64 value (packed, as protobuf writes a repeated int64)."""
    packed = varint(value)
    listed = b"\x0a" + varint(len(packed)) + packed
    return INT64_LIST + varint(len(listed)) + listed


@functools.lru_cache(maxsize=8192)
def _entry_head(name: str, kind: bytes, payload: int) -> bytes:
    """One `features.feature` map entry up to its payload: key `name`, value a Feature whose
    `kind` list holds one value (a bytes value, or packed int64s) of `payload` bytes."""
    key = name.encode()
    value = b"\x0a" + varint(payload)
    listed = kind + varint(len(value) + payload)
    entry = b"\x0a" + varint(len(key)) + key + b"\x12" + varint(len(listed) + len(value) + payload)
    entry += listed + value
    return b"\x0a" + varint(len(entry) + payload) + entry


@functools.lru_cache(maxsize=16)
def _layout(features: FeatureNames) -> tuple[tuple[str, bytes, str], ...]:
    """(feature name, kind, where its value comes from) in the wire's order: deterministic
    serialization writes map entries sorted by key bytes."""
    fields = [
        (features.label_name, BYTES_LIST, "label_name"),
        (features.id, BYTES_LIST, "id"),
        (features.path, BYTES_LIST, "path"),
        (features.format, BYTES_LIST, "format"),
        (features.source_format, BYTES_LIST, "source_format"),
        (features.image, BYTES_LIST, "image"),
        (features.label, INT64_LIST, "label"),
        (features.height, INT64_LIST, "height"),
        (features.width, INT64_LIST, "width"),
        (features.channels, INT64_LIST, "channels"),
        (features.orientation, INT64_LIST, "orientation"),
        (features.image_hash, BYTES_LIST, "image_hash"),
    ]
    return tuple(sorted(fields, key=lambda field: field[0].encode()))


def serialize_example(record, info: ImageInfo, label_index: int, features: FeatureNames) -> bytes:
    """The example of one checked image (`record` is the plan's LabeledImage)."""
    values = {
        "label_name": record.label_name.encode(),
        "id": record.id.encode(),
        "path": record.file.path.encode(),
        "format": info.format.encode(),
        "source_format": info.source_format.encode(),
        "image": info.data,
        "label": varint(label_index),
        "height": varint(info.height),
        "width": varint(info.width),
        "channels": varint(info.channels),
        "orientation": varint(info.orientation),
        "image_hash": info.fingerprint,
    }
    pieces = [b"\x0a", b""]
    for name, kind, source in _layout(features):
        payload = values[source]
        pieces.append(_entry_head(name, kind, len(payload)))
        pieces.append(payload)
    pieces[1] = varint(sum(map(len, pieces)) - 1)
    return b"".join(pieces)
