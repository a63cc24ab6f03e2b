"""Every planned image read and checked once, before the split, on the process's decode threads:
the verdict (or the reason it cannot be an example) and the picture's fingerprint, which the
grouping of copies needs before any image is assigned a split.

The verdict travels with the plan's record (records.Checked, about 100 bytes), never the
image's bytes: the shard writer reads them again (from the page cache, on a local tree) and
checks their length and CRC32C against the verdict's before it writes them, so what is written
is what was checked.
"""

from __future__ import annotations

import collections
import concurrent.futures
import math
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator

import apache_beam as beam
import google_crc32c
import tensorflow as tf
from apache_beam.transforms import window

from imgtfx.components import counters, file_io, image_files
from imgtfx.components.examples.reasons import REJECTED, UNREADABLE, Outcome
from imgtfx.components.image_example_gen import progress_bar
from imgtfx.components.image_example_gen.options import ImageOptions
from imgtfx.components.image_example_gen.records import Checked, LabeledImage


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


_POOLS: dict[int, concurrent.futures.ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def decode_pool(threads: int) -> concurrent.futures.ThreadPoolExecutor:
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


def threads_for(options: ImageOptions) -> int:
    # One thread per core. Opening an image (PIL parses headers in Python) holds the GIL, so
    # more threads only wait for it: on contest photos (960x540, 110 KB) the write phase ran
    # at 896 img/s with 2 threads on 2 cores and 616 img/s with 4.
    return options.decode_threads or usable_cores()


def in_order(items: Iterable, work: Callable, threads: int) -> Iterator[tuple]:
    """(item, work(item)) in the order of `items`, computed on the decode threads: decoding and
    file reads release the GIL, so one worker uses every core, whatever the runner's own
    parallelism. At most 4 results per thread wait in memory."""
    if threads == 1:
        for item in items:
            yield item, work(item)
        return
    pool = decode_pool(threads)
    pending: collections.deque = collections.deque()
    try:
        for item in items:
            pending.append((item, pool.submit(work, item)))
            if len(pending) >= 4 * threads:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:  # a bundle that stops early (an error downstream) leaves no work queued
        for _, future in pending:
            future.cancel()


def read(record: LabeledImage) -> bytes | Outcome:
    """The bytes of a planned image, or why they cannot be read."""
    try:
        return file_io.read_bytes(record.file.uri)
    except (OSError, tf.errors.OpError) as e:  # remote file systems raise TensorFlow's errors
        return Outcome(record.file.path, REJECTED, UNREADABLE, file_io.read_error(e))


def check(record: LabeledImage, options: ImageOptions) -> LabeledImage | Outcome:
    """Reads and checks one image: the record with its verdict, or the reason it cannot be an
    example."""
    data = read(record)
    if isinstance(data, Outcome):
        return data
    info = image_files.check_image(data, options.max_pixels, options.transcode_unsupported)
    if isinstance(info, Outcome):
        return info._replace(path=record.file.path)
    checked = Checked(
        *info[1:8],
        info.fingerprint,
        info.digest,
        len(data),
        google_crc32c.value(data),
        info.centre,
    )
    return record._replace(checked=checked)


class CheckImages(beam.DoFn):
    """Plan records -> checked records (main) or Outcomes ('outcomes'), checked on the decode
    threads, at most 4 per thread in flight."""

    def __init__(self, options: ImageOptions, show_bar: bool = False):
        self._options = options
        self._show_bar = show_bar
        self._pending: collections.deque = collections.deque()

    def setup(self):
        # Decided where the bundles run: a worker's stderr is a log, never a terminal.
        self._show_bar = self._show_bar and sys.stderr.isatty()
        self._threads = threads_for(self._options)

    def start_bundle(self):
        self._pending = collections.deque()

    def process(self, record):
        if self._threads == 1:
            yield from self._outputs(check(record, self._options))
            return
        self._pending.append(decode_pool(self._threads).submit(check, record, self._options))
        while len(self._pending) > 4 * self._threads:
            yield from self._outputs(self._pending.popleft().result())

    def finish_bundle(self):
        while self._pending:
            for output in self._outputs(self._pending.popleft().result()):
                if isinstance(output, beam.pvalue.TaggedOutput):
                    yield beam.pvalue.TaggedOutput(
                        output.tag, window.GlobalWindows.windowed_value(output.value)
                    )
                else:
                    yield window.GlobalWindows.windowed_value(output)

    def _outputs(self, result):
        counters.count("images")
        if self._show_bar:
            progress_bar.bar().update(1)
        if isinstance(result, Outcome):
            yield beam.pvalue.TaggedOutput("outcomes", result)
        else:
            yield result
