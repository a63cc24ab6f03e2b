"""Driver of ImageExampleGen: fingerprints the whole image tree, not just the split folders.

TFX's file-based driver fingerprints what the split pattern globs (the top folders), so an image
added deep in the tree would leave the fingerprint unchanged and the pipeline would reuse stale
examples from its cache. This driver stats every file under the split folders, and the labels CSV.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import tensorflow as tf
from tfx.components.example_gen import driver, utils
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs

from components.image_example_gen import executor


def tree_fingerprint(input_base: str, input_config: example_gen_pb2.Input, labels_csv: str | None):
    """A fingerprint that changes when any file under the split folders is added, removed,
    resized or touched, or when the labels CSV changes."""
    digest = hashlib.sha256()
    count = total = 0
    for split in input_config.splits:
        digest.update(f"split:{split.name}:{split.pattern}".encode())
        for top in executor.split_tops(input_base, split.pattern):
            for path in _files_under(top):
                try:
                    stat = tf.io.gfile.stat(path)
                except tf.errors.OpError:
                    continue  # broken links are the executor's to report
                count += 1
                total += stat.length
                digest.update(f"{path}\0{stat.length}\0{stat.mtime_nsec}\n".encode())
    if labels_csv:
        stat = tf.io.gfile.stat(labels_csv)
        digest.update(f"csv:{labels_csv}\0{stat.length}\0{stat.mtime_nsec}".encode())
    return f"files:{count},total_bytes:{total},sha256:{digest.hexdigest()}"


def _files_under(top: str):
    if not tf.io.gfile.isdir(top):
        yield top
        return
    if "://" in top:
        for folder, _, files in tf.io.gfile.walk(top):
            for name in sorted(files):
                yield f"{folder.rstrip('/')}/{name}"
        return
    # followlinks=False: a symlink loop cannot hang the driver; the executor reports it.
    for folder, subfolders, files in os.walk(top):
        subfolders.sort()
        for name in sorted(files):
            yield os.path.join(folder, name)


class Driver(driver.FileBasedDriver):
    """FileBasedDriver with a whole-tree fingerprint."""

    def resolve_exec_properties(
        self, exec_properties: dict[str, Any], pipeline_info, component_info
    ):
        exec_properties = super().resolve_exec_properties(
            exec_properties, pipeline_info, component_info
        )
        input_config, _, options = executor.read_configs(exec_properties)
        exec_properties[utils.FINGERPRINT_PROPERTY_NAME] = tree_fingerprint(
            exec_properties[standard_component_specs.INPUT_BASE_KEY],
            input_config,
            options.labels_csv,
        )
        return exec_properties
