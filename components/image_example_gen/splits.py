"""The split of each checked image: TFX's own hash partition on the partition feature, the id
or path by default (a group of copies on its representative's, so that all of a group lie in
one split), then every class covered in every split where it has images enough, moving whole
groups.

Works on plan records (records.LabeledImage): paths, labels and verdicts, never the images.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
from collections.abc import Iterable, Iterator

from tfx.proto import example_gen_pb2

from imgtfx.components.examples.features import FeatureNames
from imgtfx.components.image_example_gen import example_bytes
from imgtfx.components.image_example_gen.records import LabeledImage, from_tuple


@functools.lru_cache(maxsize=16)  # asked once a record, twice a photo: built once a run
def partitionable(features: FeatureNames) -> dict[str, str]:
    """{feature name: what its value is} of every feature a split can hash: each int and bytes
    feature of the examples but the image (whose bytes are only known once it is written:
    turned upright, transcoded); TFX's partition takes any int or bytes feature."""
    return {
        features.id: "id",
        features.path: "path",
        features.label_name: "label_name",
        features.label: "label",
        features.format: "format",
        features.source_format: "source_format",
        features.height: "height",
        features.width: "width",
        features.channels: "channels",
        features.orientation: "orientation",
        features.image_hash: "image_hash",
    }


def check_partition_feature(feature_name: str, features: FeatureNames) -> None:
    """Raises ValueError, in one line, for a partition feature no split can hash."""
    if feature_name not in partitionable(features):
        what = "the image's bytes" if feature_name == features.image else "not a feature"
        raise ValueError(
            f"partition_feature_name '{feature_name}' is {what}; ImageExampleGen splits on "
            f"one of {', '.join(sorted(partitionable(features)))}."
        )


def whole_classes(feature_name: str, features: FeatureNames) -> bool:
    """Splitting on the label puts each class in one split: no class coverage then."""
    return feature_name in (features.label, features.label_name)


def partition_value(
    record: LabeledImage,
    feature_name: str,
    features: FeatureNames,
    label_indexes: dict[str, int] | None = None,
) -> str | int | bytes:
    """The value of the partition feature of a checked record, as its example will hold it
    (`label_indexes`: the vocabulary's index of each label, for the `label` feature)."""
    source = partitionable(features)[feature_name]
    if source in ("id", "label_name"):
        return getattr(record, source)
    if source == "path":
        return record.file.path
    if source == "label":
        return label_indexes[record.label_name]
    if source == "image_hash":
        return record.checked.fingerprint
    return getattr(record.checked, source)


def assign_split(
    record: LabeledImage,
    feature_name: str,
    features: FeatureNames,
    output_config: example_gen_pb2.Output,
    bounds: list[int] | None = None,
    label_indexes: dict[str, int] | None = None,
) -> LabeledImage:
    """Picks the split with TFX's own partition function (base_example_gen_executor's
    _PartitionFn: sha256 of the partition feature, modulo the total hash buckets), on the same
    feature bytes, and keeps the bucket: the coverage step ranks images by it. A member of a
    group of copies takes its group's: the hash of its representative's feature."""
    split_config = output_config.split_config
    if not split_config.splits:
        return record._replace(split=record.file.split)
    if record.group:
        value = record.group_value
    else:
        value = partition_value(record, feature_name, features, label_indexes)
    bounds = bounds or bucket_bounds(split_config)
    bucket = int(hashlib.sha256(partition_key(value)).hexdigest(), 16) % bounds[-1]
    index = bisect.bisect(bounds, bucket)
    return record._replace(split=split_config.splits[index].name, bucket=bucket)


def partition_key(value: str | int | bytes) -> bytes:
    """What TFX's _GeneratePartitionKey hashes for a feature holding `value`: the Feature's
    deterministic serialization (built here without the Example around it)."""
    if isinstance(value, int):
        return example_bytes.int64_feature_bytes(value)
    return example_bytes.feature_bytes(value.encode() if isinstance(value, str) else value)


def bucket_bounds(split_config: example_gen_pb2.SplitConfig) -> list[int]:
    """Cumulative hash buckets: split i takes buckets [bounds[i-1], bounds[i])."""
    bounds: list[int] = []
    for split in split_config.splits:
        bounds.append((bounds[-1] if bounds else 0) + split.hash_buckets)
    return bounds


def cover_splits(
    element: tuple[str, Iterable[tuple]], split_config: example_gen_pb2.SplitConfig
) -> Iterator[LabeledImage]:
    """One class's images, each split holding at least one of them where the class has enough.

    The hash split leaves small classes out of a split by chance (a class of two images has no
    eval image 64% of the time at 80/20). For each split in the config's order that lacks the
    class, the unit whose hash bucket lies nearest that split's buckets moves there, a unit
    being an image in no group or a whole group of copies of this one label (copies stay in one
    split): into the first split (train) from any other, so a class of one image is learned;
    into the others from a split that keeps one of the class after the move. Every other unit
    keeps its split, so adding images moves an existing one only in a class that lacked a
    split (at most one unit per split), and only back to where its hash puts it once the class
    has its own image there.

    Only where no whole unit can cover a split (the class is one group of copies, or a group
    spanning labels) does a single image move out of its group, as a last resort, so that
    every class of two or more images is still learned and evaluated: that group then
    straddles the split, which duplicates.jsonl and report.json count.
    """
    _, records = element
    bounds = bucket_bounds(split_config)
    names = [split.name for split in split_config.splits]
    members: dict[str, list[LabeledImage]] = {name: [] for name in names}
    for record in map(from_tuple, records):
        members[record.split].append(record)
    for index, name in enumerate(names):
        if members[name]:
            continue
        keep = 0 if index == 0 else 1  # what the donor split must keep of the class
        low, high = (bounds[index - 1] if index else 0), bounds[index]

        def distance(unit: list[LabeledImage], low=low, high=high) -> tuple:
            bucket = unit[0].bucket
            gap = low - bucket if bucket < low else max(0, bucket - high + 1)
            return gap, len(unit), unit[0].file.path

        units = [
            unit
            for other in names
            if other != name
            for unit in _units(members[other])
            if len(members[other]) - len(unit) >= keep
        ]
        if not units:  # the last resort: one image out of its group
            units = [[r] for other in names if len(members[other]) > keep for r in members[other]]
        if not units:
            continue
        for chosen in min(units, key=distance):
            members[chosen.split].remove(chosen)
            members[name].append(chosen._replace(split=name, moved=True))
    for name in names:
        yield from members[name]


def _units(records: list[LabeledImage]) -> list[list[LabeledImage]]:
    """The units coverage moves: an image in no group, or every image of a group of copies of
    one label (a group spanning labels is moved by no label's coverage)."""
    groups: dict[str, list[LabeledImage]] = {}
    units = []
    for record in records:
        if not record.group:
            units.append([record])
        elif record.group_labels == 1:
            groups.setdefault(record.group, []).append(record)
    return units + list(groups.values())
