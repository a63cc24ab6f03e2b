"""Driver of ImageExampleGen: fingerprints the whole image tree, not just the split folders.

TFX's file-based driver fingerprints what the split pattern globs (the top folders), so an image
added deep in the tree would leave the fingerprint unchanged and the pipeline would reuse stale
examples from its cache. This driver fingerprints every file under the split folders (their
sizes and times), and the labels CSV.
"""

from __future__ import annotations

import bisect
import hashlib
import os
from typing import Any

import tensorflow as tf
from tfx.components.example_gen import driver, utils
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs

from imgtfx.components.image_example_gen import tree
from imgtfx.components.image_example_gen.options import ImageOptions


def tree_fingerprint(
    input_base: str,
    input_config: example_gen_pb2.Input,
    labels_csv: str | None,
    follow_external: bool = True,
    label_names_csv: str | None = None,
):
    """A fingerprint that changes when any file under the split folders is added, removed,
    resized or touched, or when the labels CSV or the label names CSV changes.

    A local tree is listed with the executor's own walk, so it sees exactly the files the
    executor reads: links that leave the root are followed, aliases inside it are not, and a
    skipped or broken entry counts by its name. A bucket is listed once, with the sizes and
    times the listing returns (no request per file): every object under a split's folder.
    """
    digest = hashlib.sha256()
    count = total = 0
    ignore = tree.ignored_files(labels_csv, label_names_csv)
    listing = _bucket_listing(input_base)
    for split in input_config.splits:
        digest.update(f"split:{split.name}:{split.pattern}".encode())
        for top in tree.split_tops(input_base, split.pattern):
            if listing is not None:
                for path, length, mtime in _under(listing, top):
                    count += 1
                    total += length
                    digest.update(f"{path[len(input_base) :]}\0{length}\0{mtime}\n".encode())
                continue
            for entry in tree.walk(split.name, input_base, top, ignore, follow_external):
                if not isinstance(entry, tree.FoundFile):
                    digest.update(f"{entry.path}\0{entry.status}:{entry.reason}\n".encode())
                    continue
                try:
                    length, mtime = _stat(entry.uri)
                except (OSError, tf.errors.OpError):
                    length, mtime = -1, -1  # unreadable: the executor reports it
                count += 1
                total += max(length, 0)
                digest.update(f"{entry.path}\0{length}\0{mtime}\n".encode())
    for kind, csv in (("csv", labels_csv), ("names", label_names_csv)):
        if csv:
            length, mtime = _stat(csv)
            digest.update(f"{kind}:{csv}\0{length}\0{mtime}".encode())
    return f"files:{count},total_bytes:{total},sha256:{digest.hexdigest()}"


def _bucket_listing(root: str) -> list[tuple[str, int, float]] | None:
    """(path, size, time updated) of every object under a remote image root, sorted, from one
    listing by Beam's file system: for gs:// one flat listing of the prefix, a request per
    1,000 objects, with the sizes and times it returns (gcsio.GcsIO.list_files, apache_beam
    2.61), where a walk and a stat a file cost a request per object. None for local trees,
    and for file systems Beam does not know (ram://): those are walked and stat'ed."""
    if "://" not in root:
        return None
    from apache_beam.io.filesystems import FileSystems

    try:
        FileSystems.get_filesystem(root)
    except ValueError:
        return None
    (matched,) = FileSystems.match([f"{root.rstrip('/')}/**"])
    return sorted(
        (m.path, m.size_in_bytes, m.last_updated_in_seconds) for m in matched.metadata_list
    )


def _under(listing: list[tuple[str, int, float]], top: str) -> list[tuple[str, int, float]]:
    """The objects of a sorted listing that are `top` or lie under it: `top` itself, then the
    names from `top/` up to `top0` ('0' is the character after '/')."""
    top = top.rstrip("/")
    exact = [
        entry for entry in listing[bisect.bisect_left(listing, (top,)) :][:1] if entry[0] == top
    ]
    below = slice(
        bisect.bisect_left(listing, (f"{top}/",)), bisect.bisect_left(listing, (f"{top}0",))
    )
    return exact + listing[below]


def _stat(uri: str) -> tuple[int, int]:
    if "://" in uri:
        stat = tf.io.gfile.stat(uri)
        return stat.length, stat.mtime_nsec
    stat = os.stat(uri)
    return stat.st_size, stat.st_mtime_ns


class Driver(driver.FileBasedDriver):
    """FileBasedDriver with a whole-tree fingerprint."""

    def resolve_exec_properties(
        self, exec_properties: dict[str, Any], pipeline_info, component_info
    ):
        exec_properties = super().resolve_exec_properties(
            exec_properties, pipeline_info, component_info
        )
        input_config, _, options = ImageOptions.from_exec_properties(exec_properties)
        exec_properties[utils.FINGERPRINT_PROPERTY_NAME] = tree_fingerprint(
            exec_properties[standard_component_specs.INPUT_BASE_KEY],
            input_config,
            options.labels_csv,
            options.follow_external_links,
            options.label_names_csv,
        )
        return exec_properties
