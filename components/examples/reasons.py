"""Why a file did not become an example: the records of rejects.jsonl and their reason codes.

The codes are stable strings: users grep and count them, report.json counts them, and the
serving signatures answer `too_many_pixels` for the same refusal as the converter.
"""

from __future__ import annotations

from typing import NamedTuple

# Statuses: a file rejected (a problem of the data), a file skipped (not the dataset's: a hidden
# file, the labels CSV, an alias), or a labels CSV row that matched no file.
REJECTED, SKIPPED, CSV_ROW = "rejected", "skipped", "csv_row"

# Rejected.
EMPTY_FILE = "empty_file"
NOT_AN_IMAGE = "not_an_image"
TRUNCATED_OR_CORRUPT = "truncated_or_corrupt"
TOO_MANY_PIXELS = "too_many_pixels"
UNSUPPORTED_FORMAT = "unsupported_format"
BROKEN_SYMLINK = "broken_symlink"
SYMLINK_LOOP = "symlink_loop"
UNREADABLE = "unreadable"
NO_LABEL_FOLDER = "no_label_folder"
ID_NOT_IN_CSV = "id_not_in_csv"
CONFLICTING_LABELS = "conflicting_labels"
DUPLICATE_ID = "duplicate_id"
DUPLICATE_PATH = "duplicate_path"
BLANK_LABEL = "blank_label"
UNPRINTABLE_LABEL = "unprintable_label"
# A copy of a picture that another label's images hold too (with reject_conflicting_duplicates).
CONFLICTING_LABELS_DUPLICATE = "conflicting_labels_duplicate"
# Skipped.
HIDDEN_OR_SYSTEM = "hidden_or_system"
LABELS_CSV_FILE = "labels_file"  # the labels CSV (or label names CSV) lying inside the tree
ALREADY_WALKED = "already_walked"
LINK_INTO_TREE = "link_into_tree"
LINK_OUTSIDE_TREE = "link_outside_tree"
DUPLICATE_IMAGE = "duplicate_image"  # the same image data as a kept image (dedupe keep-one)
# A row of the labels CSV that matched no image.
CSV_ID_WITHOUT_IMAGE = "csv_id_without_image"

# Images with more pixels are refused before decoding (decompression bombs): rejected by the
# converter, answered with an error by serving. PIL's own default limit.
MAX_PIXELS = 89_478_485


class Outcome(NamedTuple):
    """A file (or CSV row) that did not become an example, and why: a line of rejects.jsonl."""

    path: str
    status: str  # REJECTED, SKIPPED or CSV_ROW
    reason: str
    detail: str = ""
