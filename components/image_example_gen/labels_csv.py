"""The labels CSV (image id -> label) and the label names CSV (label -> display name), read in
chunks from disk or any tf.io.gfile file system."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator

import tensorflow as tf

from imgtfx.components import file_io
from imgtfx.components.image_example_gen import tree
from imgtfx.components.image_example_gen.options import ImageOptions
from imgtfx.components.image_files import IMAGE_EXTENSIONS


def labels_csv_columns(options: ImageOptions) -> tuple[str, str]:
    """Checks the labels CSV header and returns (id_column, label_column).

    Raises:
      ValueError: the CSV is missing or lacks the named columns; the message lists what it has.
    """
    import pandas as pd

    path = options.labels_csv
    if not tf.io.gfile.exists(path):
        raise ValueError(f"labels CSV {path} does not exist.")
    with file_io.open_text(path) as f:
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
    return tree.nfc(str(text).strip())


def read_labels_csv(path: str, id_column: str, label_column: str) -> Iterator[tuple[str, str]]:
    """(normalised id, label) rows of a labels CSV, read in chunks (any size, local or gs://)."""
    import pandas as pd

    with file_io.open_text(path) as f:
        for chunk in pd.read_csv(f, dtype=str, keep_default_na=False, chunksize=50_000):
            chunk.columns = [nfc_strip(c) for c in chunk.columns]
            for raw_id, label in zip(chunk[id_column], chunk[label_column], strict=True):
                yield csv_id(raw_id), nfc_strip(label)


def check_label_names_csv(path: str) -> None:
    """Fails before the job runs when the names CSV is missing or has fewer than two columns.

    Raises:
      ValueError: the message names the file and what it has.
    """
    import pandas as pd

    if not tf.io.gfile.exists(path):
        raise ValueError(f"label names CSV {path} does not exist.")
    with file_io.open_text(path) as f:
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
    with file_io.open_text(path) as f:
        for chunk in pd.read_csv(f, dtype=str, keep_default_na=False, chunksize=50_000):
            for key, name in zip(chunk.iloc[:, 0], chunk.iloc[:, 1], strict=True):
                label = wanted.get(nfc_strip(key))
                if label is not None and label not in names:
                    names[label] = nfc_strip(name)
    return names


def csv_id(raw: str) -> str:
    """Normalises an id from a labels CSV; ids written with an image extension still match."""
    value = tree.nfc(raw.strip())
    stem, ext = os.path.splitext(value)
    return stem if ext.lower() in IMAGE_EXTENSIONS else value


CSV_CHECK_ROWS = 50_000  # CSV ids held at once by the check (one pandas chunk)
CSV_CHECK_IMAGES = 10_000  # images the check walks at most


def check_csv_matches(images_root: str, options: ImageOptions) -> None:
    """Fails before a run when no row of the labels CSV names one of the tree's images (a
    wrong id column, ids with extensions), holding neither the whole CSV nor the whole tree:
    the tree is walked until an image is in the CSV's first CSV_CHECK_ROWS rows (usually the
    first image), at most CSV_CHECK_IMAGES images, whose ids the rest of the CSV is then
    streamed against. Past CSV_CHECK_IMAGES images without a match nothing is concluded:
    ImageExampleGen counts every id.

    Raises:
      ValueError: the CSV lacks its columns, or the whole tree was seen and no id matched.
    """
    id_column, label_column = labels_csv_columns(options)
    rows = read_labels_csv(options.labels_csv, id_column, label_column)
    first_rows = {csv_id for csv_id, _ in itertools.islice(rows, CSV_CHECK_ROWS)}
    ignore = tree.ignored_files(options.labels_csv)
    walked = (
        tree.image_id(entry.path)
        for top in tree.split_tops(images_root, "*")
        for entry in tree.walk("", images_root, top, ignore, options.follow_external_links)
        if isinstance(entry, tree.FoundFile)
    )
    seen: set[str] = set()
    walked_count = 0
    for image_id in itertools.islice(walked, CSV_CHECK_IMAGES):
        if image_id in first_rows:
            return
        seen.add(image_id)
        walked_count += 1
    del first_rows
    if any(csv_id in seen for csv_id, _ in rows):  # the rest of the CSV, streamed
        return
    if walked_count < CSV_CHECK_IMAGES:  # the whole tree was seen
        raise ValueError(
            f"labels CSV {options.labels_csv} matches no image under {images_root}: its "
            f"'{id_column}' column must hold file names without extension."
        )
