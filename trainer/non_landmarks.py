"""The folder of photos of no landmark (`--non-landmarks`): checked before any step runs, read
by the Trainer with the converter's rules, every file it cannot use recorded with its reason.

Winners of Google's landmark contests kept such a set of distractor photos (GLDv2's test has a
large share of photos of no landmark) and pushed the queries that resemble it to the bottom of
the ranking (../shared/reviews/landmark-recognition-anchors.md, section 2); trainer/retrieval.py
says how its photos join the neighbour search.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import NamedTuple

import tensorflow as tf

from imgtfx.components import file_io, image_files


class NonLandmarks(NamedTuple):
    """The photos that could be used (encoded bytes, upright, in a format TensorFlow decodes)
    and the files that could not, as {"path", "reason"}."""

    images: list[bytes]
    rejects: list[dict]


def files(folder: str) -> list[str]:
    """Every file under `folder` (local or a bucket), sorted, hidden and system files left out."""
    found = []
    for parent, subfolders, names in tf.io.gfile.walk(folder):
        subfolders[:] = [s for s in subfolders if not image_files.is_hidden_or_system(s)]
        found += [os.path.join(parent, n) for n in names if not image_files.is_hidden_or_system(n)]
    return sorted(found)


def resolve(options):
    """`options` (TrainerOptions) with the non-landmarks folder made absolute (a local one)
    and the digest of its files' names and bytes set, so that new photos re-train. For a local
    run: the folder is local or on a file system TensorFlow reads (gs://).

    Raises:
      ValueError: no such folder, or no file in it.
    """
    folder = options.non_landmarks
    if not folder:
        return options
    if "://" not in folder:
        folder = os.path.abspath(folder)
    if not tf.io.gfile.isdir(folder):
        raise ValueError(f"--non-landmarks: no folder at {folder}.")
    paths = files(folder)
    if not paths:
        raise ValueError(f"--non-landmarks: no file in {folder}.")
    digest = hashlib.sha256()
    for path in paths:
        digest.update(os.path.relpath(path, folder).encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(file_io.read_bytes(path)).digest())
    return dataclasses.replace(
        options, non_landmarks=folder, non_landmarks_sha256=digest.hexdigest()
    )


def read(folder: str, max_pixels: int) -> NonLandmarks:
    """The folder's photos, checked as ImageExampleGen checks a tree's (sideways photos turned
    upright, formats TensorFlow misreads transcoded); a file that fails is a reject.

    Raises:
      ValueError: not one usable photo in the folder.
    """
    images, rejects = [], []
    for path in files(folder):
        checked = image_files.read_checked(path, max_pixels)
        if isinstance(checked, str):
            rejects.append({"path": path, "reason": checked})
        else:
            images.append(checked)
    if not images:
        raise ValueError(
            f"--non-landmarks: not one usable photo in {folder} ({len(rejects)} rejected)."
        )
    return NonLandmarks(images, rejects)
