"""Reading, checking and writing images: one gzipped TFRecord file per shard of a split.

Each shard's images are read and checked on a thread pool while the shard is written, so memory
holds a few images at a time whatever the tree's size.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import math
import os
import sys
import threading

import apache_beam as beam
import tensorflow as tf

from components import counters, image_files
from components.examples import layout
from components.examples.reasons import REJECTED, UNREADABLE, Outcome
from components.image_example_gen import progress_bar
from components.image_example_gen.example_bytes import serialize_example
from components.image_example_gen.options import ImageOptions
from components.image_example_gen.plan import Plan
from components.image_example_gen.records import LabeledImage, as_tuple, from_tuple
from components.image_example_gen.tfrecord import GzipRecordWriter, frame
from components.image_files import ImageInfo


def _path_hash(path: str) -> int:
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big")


def _shard_key(record: LabeledImage, counts: dict[str, int], per_shard: int):
    num_shards = max(1, math.ceil(counts[record.split] / per_shard))
    return (record.split, _path_hash(record.file.path) % num_shards, num_shards), as_tuple(record)


def usable_cores(cgroup: str = "/sys/fs/cgroup") -> int:
    """The cores this process may use: its CPU affinity, capped by a container's CPU limit
    (cgroup v2 cpu.max, or v1 cfs quota). os.cpu_count() is the node's: 64 on a big Kubeflow
    node for a pod limited to 2 CPUs."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    limits = (
        (os.path.join(cgroup, "cpu.max"), None),
        (
            os.path.join(cgroup, "cpu", "cpu.cfs_quota_us"),
            os.path.join(cgroup, "cpu", "cpu.cfs_period_us"),
        ),
    )
    for quota_file, period_file in limits:
        try:
            with open(quota_file) as f:
                fields = f.read().split()
            if period_file:
                with open(period_file) as f:
                    fields = [fields[0], f.read().strip()]
            quota, period = fields[0], int(fields[1])
        except (OSError, ValueError, IndexError):
            continue
        if quota not in ("max", "-1") and int(quota) > 0 and period > 0:
            return max(1, min(cores, math.ceil(int(quota) / period)))
        return cores
    return cores


def convert_image(
    record: LabeledImage, label_index: dict[str, int], options: ImageOptions
) -> tuple[bytes, ImageInfo] | Outcome:
    """Reads and checks one image; its serialized example, or the reason it cannot be one."""
    try:
        data = image_files.read_bytes(record.file.uri)
    except (OSError, tf.errors.OpError) as e:  # remote file systems raise TensorFlow's errors
        return Outcome(record.file.path, REJECTED, UNREADABLE, image_files.read_error(e))
    checked = image_files.check_image(data, options.max_pixels, options.transcode_unsupported)
    if isinstance(checked, Outcome):
        return checked._replace(path=record.file.path)
    label = label_index[record.label_name]
    return serialize_example(record, checked, label, options.features), checked


def _convert_framed(record: LabeledImage, label_index: dict[str, int], options: ImageOptions):
    """convert_image, with the example framed as a TFRecord (on the decode thread)."""
    result = convert_image(record, label_index, options)
    if isinstance(result, Outcome):
        return result
    serialized, info = result
    return frame(serialized), info


_POOLS: dict[int, concurrent.futures.ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _decode_pool(threads: int) -> concurrent.futures.ThreadPoolExecutor:
    """The process's decode threads, shared by every bundle it runs: a runner that runs several
    bundles at once in one worker process (Dataflow, Flink) still decodes `threads` images at a
    time, so at most `threads` x max_pixels x 3 bytes of pixels are in flight per process,
    whatever the number of cores or bundles."""
    with _POOLS_LOCK:
        if threads not in _POOLS:
            _POOLS[threads] = concurrent.futures.ThreadPoolExecutor(
                threads, thread_name_prefix="imgcheck"
            )
        return _POOLS[threads]


def _convert_all(records: list[LabeledImage], index: dict[str, int], options: ImageOptions):
    """(record, _convert_framed(record)) in order. Images are read and checked on the process's
    decode threads: decoding and file reads release the GIL, so one worker uses every core,
    whatever the runner's own parallelism. At most 4 results per thread wait in memory per
    bundle; they are encoded examples, not pixels."""
    # One thread per core. Opening an image (PIL parses headers in Python) holds the GIL, so
    # more threads only wait for it: on contest photos (960x540, 110 KB) the write phase ran
    # at 896 img/s with 2 threads on 2 cores and 616 img/s with 4.
    threads = options.decode_threads or usable_cores()
    if threads == 1:
        for record in records:
            yield record, _convert_framed(record, index, options)
        return
    pool = _decode_pool(threads)
    window: collections.deque = collections.deque()
    try:
        for record in records:
            window.append((record, pool.submit(_convert_framed, record, index, options)))
            if len(window) >= 4 * threads:
                done, future = window.popleft()
                yield done, future.result()
        while window:
            done, future = window.popleft()
            yield done, future.result()
    finally:  # a bundle that stops early (an error downstream) leaves no work queued
        for _, future in window:
            future.cancel()


class WriteShard(beam.DoFn):
    """Reads, checks and writes one shard of a split; yields its statistics and rejects."""

    def __init__(self, split_uris: dict[str, str], options: ImageOptions, show_bar: bool = False):
        self._split_uris = split_uris
        self._options = options
        self._show_bar = show_bar
        self._index = None

    def setup(self):
        # Decided where the bundles run: a worker's stderr is a log, never a terminal.
        self._show_bar = self._show_bar and sys.stderr.isatty()

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
            for record, result in _convert_all(ordered, self._index, self._options):
                counters.count("images")
                if self._show_bar:
                    progress_bar.bar().update(1)
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
    planned: Plan, split_uris: dict[str, str], options: ImageOptions, show_bar: bool = False
) -> beam.pvalue.DoOutputsTuple:
    """Groups the planned paths into shards (ceil(n / images_per_shard) per split, by a hash of
    the path) and writes each into its split's folder (`split_uris`, TFX's). Outputs: 'stats'
    (a dict per shard) and 'outcomes' (rejects)."""
    return (
        planned.records
        | "ShardKey"
        >> beam.Map(
            _shard_key, beam.pvalue.AsSingleton(planned.split_counts), options.images_per_shard
        )
        | "GroupShards" >> beam.GroupByKey()
        | "WriteShards"
        >> beam.ParDo(
            WriteShard(split_uris, options, show_bar=show_bar),
            beam.pvalue.AsSingleton(planned.vocabulary),
        ).with_outputs("outcomes", main="stats")
    )
