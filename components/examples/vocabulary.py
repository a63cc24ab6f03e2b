"""labels.txt and label_names.json, in an Examples artifact or an exported model's folder, and
what a label may be.

labels.txt: label i on line i, UTF-8, each line ended by '\\n'. label_names.json: a JSON list,
name i for label i (same length, same order).
"""

from __future__ import annotations

import functools
import json
import os
import unicodedata

import tensorflow as tf

from imgtfx.components.examples import reasons
from imgtfx.components.examples.layout import LABEL_NAMES_FILE, LABELS_FILE


@functools.lru_cache(maxsize=1 << 16)  # called per image; labels repeat
def label_problem(label: str) -> str | None:
    """Why `label` cannot name a class (a reject reason), or None when it can.

    A blank label would be an empty line of labels.txt and a line break would split one label
    in two: either shifts every later label's index. Other control characters (tabs included)
    print as nothing or break the report's tables, so they are refused too.
    """
    if not label.strip():
        return reasons.BLANK_LABEL
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in label):
        return reasons.UNPRINTABLE_LABEL
    return None


def read_vocabulary(examples_uri: str) -> list[str]:
    """The label vocabulary of an Examples artifact: label index i names vocabulary[i]."""
    return read_labels_file(os.path.join(examples_uri, LABELS_FILE))


def read_label_names(examples_uri: str) -> list[str]:
    """Display names aligned with the vocabulary (name i is label i's), of an Examples artifact
    or an exported model's folder: the labels themselves where label_names.json is absent
    (made before names were written).

    Raises:
      ValueError: label_names.json is not a list of one text per label.
    """
    vocabulary = read_vocabulary(examples_uri)
    path = os.path.join(examples_uri, LABEL_NAMES_FILE)
    if not tf.io.gfile.exists(path):
        return vocabulary
    with tf.io.gfile.GFile(path, "rb") as f:
        names = json.loads(f.read().decode("utf-8"))
    if (
        not isinstance(names, list)
        or len(names) != len(vocabulary)
        or not all(isinstance(n, str) for n in names)
    ):
        raise ValueError(
            f"{path} must list one name per line of {LABELS_FILE} ({len(vocabulary)}); it is "
            "written with it: rerun the conversion."
        )
    return names


def write_label_names_file(path: str, vocabulary: list[str], names: list[str]) -> None:
    """label_names.json: a JSON list, name i for label i of labels.txt (same length, order)."""
    if len(names) != len(vocabulary):
        raise ValueError(f"{len(names)} label names for {len(vocabulary)} labels in {path}.")
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(list(names), ensure_ascii=False))


def write_labels_file(path: str, vocabulary: list[str]) -> None:
    """labels.txt: label i on line i, UTF-8, each line ended by '\\n'. The converter rejects
    blank labels and labels holding line breaks, so every label is one non-empty line."""
    for label in vocabulary:
        if label_problem(label):
            raise ValueError(f"label {label!r} cannot be written to {path}: {label_problem(label)}")
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("".join(f"{label}\n" for label in vocabulary))


def read_labels_file(path: str) -> list[str]:
    """The one reader of labels.txt (the Examples' and the exported model's): line i is label i.

    Split on '\\n' only, as it was written; a blank line is an error, never skipped, since
    skipping one would shift every later label's index.
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        text = f.read().decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        if label_problem(line):
            raise ValueError(
                f"{path} line {number}: {label_problem(line)}; labels.txt is "
                "written by ImageExampleGen, one label per line: rerun the conversion."
            )
    return lines
