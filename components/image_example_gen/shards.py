"""Writing checked images: one gzipped TFRecord file per shard of a split.

Each shard's images are read again on the decode threads while the shard is written, their bytes
held to the verdict the check gave them (length and CRC32C), so memory holds a few images at a
time whatever the tree's size and what is written is what was checked.
"""

from __future__ import annotations

import collections
import hashlib
import math
import os

import apache_beam as beam
import google_crc32c
import tensorflow as tf

from imgtfx.components import counters, image_files
from imgtfx.components.examples import layout
from imgtfx.components.examples.reasons import Outcome
from imgtfx.components.image_example_gen import checking
from imgtfx.components.image_example_gen.example_bytes import serialize_example
from imgtfx.components.image_example_gen.options import ImageOptions
from imgtfx.components.image_example_gen.plan import Plan
from imgtfx.components.image_example_gen.records import LabeledImage, as_tuple, from_tuple
from imgtfx.components.image_example_gen.tfrecord import GzipRecordWriter, frame
from imgtfx.components.image_files import ImageInfo


def _path_hash(path: str) -> int:
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big")


def _shard_key(record: LabeledImage, counts: dict[str, int], per_shard: int):
    num_shards = max(1, math.ceil(counts[record.split] / per_shard))
    return (record.split, _path_hash(record.file.path) % num_shards, num_shards), as_tuple(record)


def example_of(
    record: LabeledImage, label_index: dict[str, int], options: ImageOptions
) -> tuple[bytes, ImageInfo] | Outcome:
    """One checked image's example, framed as a TFRecord, or why it cannot be one. The file's
    bytes are read again and used as they are when they are the bytes checked; a file that
    changed since is checked again, and so is one whose example holds rewritten bytes (turned
    upright, transcoded: 1% of phone photos), which the check did not keep."""
    data = checking.read(record)
    if isinstance(data, Outcome):
        return data
    verdict = record.checked
    if verdict.rewritten or len(data) != verdict.length or google_crc32c.value(data) != verdict.crc:
        info = image_files.check_image(data, options.max_pixels, options.transcode_unsupported)
        if isinstance(info, Outcome):
            return info._replace(path=record.file.path)
    else:
        info = ImageInfo(data, *verdict[:7], verdict.fingerprint, verdict.digest)
    label = label_index[record.label_name]
    return frame(serialize_example(record, info, label, options.features)), info


class WriteShard(beam.DoFn):
    """Reads and writes one shard of a split; yields its statistics and rejects."""

    def __init__(self, split_uris: dict[str, str], options: ImageOptions):
        self._split_uris = split_uris
        self._options = options
        self._index = None

    def process(self, element, vocabulary: list[str]):
        (split, shard, num_shards), records = element
        if self._index is None:
            self._index = {label: i for i, label in enumerate(vocabulary)}
        folder = self._split_uris[split]
        tf.io.gfile.makedirs(folder)
        name = layout.shard_name(shard, num_shards)
        final = os.path.join(folder, name)
        temporary = os.path.join(folder, f".tmp-{name}")
        stats = collections.Counter()
        classes = collections.Counter()
        formats = collections.Counter()
        orientations = collections.Counter()
        with GzipRecordWriter(temporary, self._options.gzip_level) as writer:
            # Hash order: a deterministic shuffle, so no shard holds one class in a run.
            ordered = sorted(map(from_tuple, records), key=lambda r: _path_hash(r.file.path))
            threads = checking.threads_for(self._options)
            write = lambda r: example_of(r, self._index, self._options)  # noqa: E731
            for record, result in checking.in_order(ordered, write, threads):
                counters.count("written")
                if isinstance(result, Outcome):
                    yield beam.pvalue.TaggedOutput("outcomes", result)
                    continue
                framed, info = result
                writer.write_frame(framed)
                stats["examples"] += 1
                classes[record.label_name] += 1
                formats[info.source_format] += 1
                stats["transcoded"] += info.transcoded
                if info.orientation != 1:
                    orientations[str(info.orientation)] += 1
        if stats["examples"]:
            tf.io.gfile.rename(temporary, final, overwrite=True)
        else:
            tf.io.gfile.remove(temporary)
        yield {
            "split": split,
            "examples": stats["examples"],
            "transcoded": stats["transcoded"],
            "orientations": dict(orientations),
            "classes": dict(classes),
            "formats": dict(formats),
        }


def write_shards(
    planned: Plan, split_uris: dict[str, str], options: ImageOptions
) -> beam.pvalue.DoOutputsTuple:
    """Groups the planned, checked images into shards (ceil(n / images_per_shard) per split, by
    a hash of the path) and writes each into its split's folder (`split_uris`, TFX's).
    Outputs: 'stats' (a dict per shard) and 'outcomes' (rejects)."""
    return (
        planned.records
        | "ShardKey"
        >> beam.Map(
            _shard_key, beam.pvalue.AsSingleton(planned.split_counts), options.images_per_shard
        )
        | "GroupShards" >> beam.GroupByKey()
        | "WriteShards"
        >> beam.ParDo(
            WriteShard(split_uris, options), beam.pvalue.AsSingleton(planned.vocabulary)
        ).with_outputs("outcomes", main="stats")
    )
