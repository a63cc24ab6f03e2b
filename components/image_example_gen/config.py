"""Configuration read back from exec_properties, and the labels and label names CSVs: what the
plan works from."""

from __future__ import annotations

import functools
import glob
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any

import tensorflow as tf
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.image_example_gen import images
from components.image_example_gen.options import ImageOptions

_NUMBER = re.compile(r"-?\d+")


def read_configs(exec_properties: dict[str, Any]):
    """Returns (input_config, output_config, options) from an executor's exec_properties."""
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config
    )
    output_config = example_gen_pb2.Output()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config
    )
    custom = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    custom_config = None
    if custom:
        custom_config = example_gen_pb2.CustomConfig()
        proto_utils.json_to_proto(custom, custom_config)
    return input_config, output_config, ImageOptions.from_custom_config(custom_config)


def split_tops(input_base: str, pattern: str) -> list[str]:
    """The files and folders a split pattern names under the image root, sorted. The pattern is
    a glob; the root is taken literally (a folder named `photos [2024]` is not a pattern)."""
    full = os.path.join(glob.escape(input_base), pattern)
    if "://" in full:
        return sorted(tf.io.gfile.glob(full))
    return sorted(glob.glob(full))


def labels_csv_columns(options: ImageOptions) -> tuple[str, str]:
    """Checks the labels CSV header and returns (id_column, label_column).

    Raises:
      ValueError: the CSV is missing or lacks the named columns; the message lists what it has.
    """
    import pandas as pd

    path = options.labels_csv
    if not tf.io.gfile.exists(path):
        raise ValueError(f"labels CSV {path} does not exist.")
    with tf.io.gfile.GFile(path, "r") as f:
        columns = [nfc_strip(c) for c in pd.read_csv(f, nrows=0, dtype=str).columns]
    if options.id_column not in columns:
        raise ValueError(
            f"labels CSV {path} has no id column '{options.id_column}' (columns: {columns}); "
            "name it with id_column (--id-column)."
        )
    label_column = options.label_column
    if label_column is None:
        others = [c for c in columns if c != options.id_column]
        if len(others) != 1:
            raise ValueError(
                f"labels CSV {path} has columns {columns}: name the label column with "
                "label_column (--label-column)."
            )
        label_column = others[0]
    elif label_column not in columns:
        raise ValueError(
            f"labels CSV {path} has no label column '{label_column}' (columns: {columns})."
        )
    return options.id_column, label_column


def nfc_strip(text: str) -> str:
    return images.nfc(str(text).strip())


def read_labels_csv(path: str, id_column: str, label_column: str) -> Iterator[tuple[str, str]]:
    """(normalised id, label) rows of a labels CSV, read in chunks (any size, local or gs://)."""
    import pandas as pd

    with tf.io.gfile.GFile(path, "r") as f:
        for chunk in pd.read_csv(f, dtype=str, keep_default_na=False, chunksize=50_000):
            chunk.columns = [nfc_strip(c) for c in chunk.columns]
            for raw_id, label in zip(chunk[id_column], chunk[label_column], strict=True):
                yield images.csv_id(raw_id), nfc_strip(label)


def check_label_names_csv(path: str) -> None:
    """Fails before the job runs when the names CSV is missing or has fewer than two columns.

    Raises:
      ValueError: the message names the file and what it has.
    """
    import pandas as pd

    if not tf.io.gfile.exists(path):
        raise ValueError(f"label names CSV {path} does not exist.")
    with tf.io.gfile.GFile(path, "r") as f:
        columns = list(pd.read_csv(f, nrows=0, dtype=str).columns)
    if len(columns) < 2:
        raise ValueError(
            f"label names CSV {path} has columns {columns}: it needs two, the label and its "
            "name (like landmark_id,landmark_name)."
        )


def read_label_names_csv(path: str, labels: Iterable[str]) -> dict[str, str]:
    """{label: name} from a names CSV (first column the label, second its name), for `labels`
    only, so that memory follows the vocabulary, not the file. Labels are compared after the
    labels CSV's own normalisation (NFC, stripped), so `902` matches `902` written either way;
    the first row of a label wins."""
    import pandas as pd

    wanted = {nfc_strip(label): label for label in labels}
    names: dict[str, str] = {}
    with tf.io.gfile.GFile(path, "r") as f:
        for chunk in pd.read_csv(f, dtype=str, keep_default_na=False, chunksize=50_000):
            for key, name in zip(chunk.iloc[:, 0], chunk.iloc[:, 1], strict=True):
                label = wanted.get(nfc_strip(key))
                if label is not None and label not in names:
                    names[label] = nfc_strip(name)
    return names


@functools.lru_cache(maxsize=1 << 16)  # called per image; labels repeat
def label_problem(label: str) -> str | None:
    """Why `label` cannot name a class (a reject reason of images.py), or None when it can.

    A blank label would be an empty line of labels.txt and a line break would split one label
    in two: either shifts every later label's index. Other control characters (tabs included)
    print as nothing or break the report's tables, so they are refused too.
    """
    if not label.strip():
        return images.BLANK_LABEL
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in label):
        return images.UNPRINTABLE_LABEL
    return None


def sort_labels(labels: Iterable[str]) -> list[str]:
    """Sorted label vocabulary: numerically when every label is an integer, else by text."""
    labels = sorted(set(labels))
    if labels and all(_NUMBER.fullmatch(label) for label in labels):
        return sorted(labels, key=int)
    return labels


def partition_feature(options: ImageOptions, output_config: example_gen_pb2.Output) -> str:
    """The feature whose hash picks an image's split: the CSV id, else the relative path."""
    name = output_config.split_config.partition_feature_name
    if name:
        return name
    return options.features.id if options.labels_csv else options.features.path
