"""labels.txt and label_names.json: the one reader and writer of the vocabulary."""

from __future__ import annotations

import pytest

from imgtfx.components.examples.vocabulary import read_labels_file, write_labels_file


def test_labels_file_reader_never_skips_a_line(tmp_path):
    path = str(tmp_path / "labels.txt")
    labels = ["b ", " a", "가", "1,2"]
    write_labels_file(path, labels)
    assert read_labels_file(path) == labels
    with open(path, "a", encoding="utf-8") as f:
        f.write("\nafter a blank line\n")
    with pytest.raises(ValueError, match="line 5: blank_label"):
        read_labels_file(path)
    with pytest.raises(ValueError, match="unprintable_label"):
        write_labels_file(path, ["a\nb"])
