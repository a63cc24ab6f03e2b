"""The split of each planned image: TFX's own hash partition on the image's id or path, then
every class covered in every split where it has images enough.

Works on plan records (plan.LabeledImage) only, before any image is read.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Iterator

from tfx.proto import example_gen_pb2

from components.examples.features import FeatureNames
from components.image_example_gen import example_bytes
from components.image_example_gen.records import LabeledImage, from_tuple


def assign_split(
    record: LabeledImage,
    feature_name: str,
    features: FeatureNames,
    output_config: example_gen_pb2.Output,
    bounds: list[int] | None = None,
) -> LabeledImage:
    """Picks the split with TFX's own partition function (base_example_gen_executor's
    _PartitionFn: sha256 of the partition feature, modulo the total hash buckets), on the same
    feature bytes, and keeps the bucket: the coverage step ranks images by it."""
    split_config = output_config.split_config
    if not split_config.splits:
        return record._replace(split=record.file.split)
    values = {
        features.id: record.id,
        features.path: record.file.path,
        features.label_name: record.label_name,
    }
    if feature_name not in values:
        raise ValueError(
            f"partition_feature_name '{feature_name}' must be one of {sorted(values)}: "
            "the split is chosen before images are read."
        )
    bounds = bounds or bucket_bounds(split_config)
    bucket = int(hashlib.sha256(partition_key(values[feature_name])).hexdigest(), 16) % bounds[-1]
    index = bisect.bisect(bounds, bucket)
    return record._replace(split=split_config.splits[index].name, bucket=bucket)


def partition_key(value: str) -> bytes:
    """What TFX's _GeneratePartitionKey hashes for a bytes feature holding `value`: the
    feature's deterministic serialization (built here without the Example around it)."""
    return example_bytes.feature_bytes(value.encode())


def bucket_bounds(split_config: example_gen_pb2.SplitConfig) -> list[int]:
    """Cumulative hash buckets: split i takes buckets [bounds[i-1], bounds[i])."""
    bounds: list[int] = []
    for split in split_config.splits:
        bounds.append((bounds[-1] if bounds else 0) + split.hash_buckets)
    return bounds


def cover_splits(
    element: tuple[str, Iterable[LabeledImage]], split_config: example_gen_pb2.SplitConfig
) -> Iterator[LabeledImage]:
    """One class's images, each split holding at least one of them where the class has enough.

    The hash split leaves small classes out of a split by chance (a class of two images has no
    eval image 64% of the time at 80/20). For each split in the config's order that lacks the
    class, the image whose hash bucket lies nearest that split's buckets moves there: into the
    first split (train) from any other, so a class of one image is learned; into the others
    from a split holding at least two. Every other image keeps its hash split, so adding images
    moves an existing image only in a class that lacked a split (at most one image per split),
    and only back to where its hash puts it once the class has its own image there.
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
        spare = 1 if index == 0 else 2  # what a donor split must hold to give one
        donors = [r for other in names if len(members[other]) >= spare for r in members[other]]
        if not donors:
            continue
        low, high = (bounds[index - 1] if index else 0), bounds[index]

        def distance(r: LabeledImage, low=low, high=high) -> tuple[int, str]:
            gap = low - r.bucket if r.bucket < low else max(0, r.bucket - high + 1)
            return gap, r.file.path

        chosen = min(donors, key=distance)
        members[chosen.split].remove(chosen)
        members[name].append(chosen._replace(split=name, moved=True))
    for name in names:
        yield from members[name]
