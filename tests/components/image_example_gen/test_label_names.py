"""Display names: with CSV labels a landmark's folder names its id, a names CSV overrides, and
label_names.json lines up with labels.txt."""

from __future__ import annotations

import json
import os

import pytest
from tfx.proto import example_gen_pb2

from imgtfx.components.examples import layout, reasons
from imgtfx.components.examples.conversion_report import read_report
from imgtfx.components.examples.vocabulary import read_label_names, read_vocabulary
from imgtfx.components.image_example_gen.options import ImageOptions
from tests.helpers.conversions import run_do
from tests.helpers.images import CONTEST_TREE, contest_tree, make_tree

ONE_SPLIT = example_gen_pb2.Output(
    split_config=example_gen_pb2.SplitConfig(
        splits=[example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=1)]
    )
)


def names_json(out) -> list:
    with open(os.path.join(out, layout.LABEL_NAMES_FILE), encoding="utf-8") as f:
        return json.load(f)


def test_csv_labels_are_named_after_the_one_folder_holding_them(tmp_path):
    root, csv = contest_tree(tmp_path)
    out = tmp_path / "out"
    run_do(root, out, ImageOptions(labels_csv=str(csv)), output_config=ONE_SPLIT)

    assert read_vocabulary(str(out)) == ["3", "15", "20", "21", "902"]
    assert names_json(out) == ["3", "남산타워", "20", "21", "경복궁"]
    assert read_label_names(str(out)) == names_json(out)


def test_names_csv_overrides_folder_names(tmp_path):
    root, csv = contest_tree(tmp_path)
    # Inside the tree, as a downloaded contest folder has it: skipped, never an image.
    names = root / "category.csv"
    names.write_text(
        "landmark_id,landmark_name\n"
        "902,Gyeongbokgung\n"
        " 3 ,Haeundae & Gwangalli\n"  # the labels CSV's normalisation: stripped
        "15,\n"  # blank: 15 keeps its folder's name
        '21,"two\nlines"\n'  # a line break: 21 keeps its id
        "20,Seomun Market\n"
        "20,another name\n"  # the first row of a label wins
        "999,no such label\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    options = ImageOptions(labels_csv=str(csv), label_names_csv=str(names))
    run_do(root, out, options, output_config=ONE_SPLIT)

    vocabulary = read_vocabulary(str(out))
    assert dict(zip(vocabulary, names_json(out), strict=True)) == {
        "3": "Haeundae & Gwangalli",
        "15": "남산타워",
        "20": "Seomun Market",
        "21": "21",
        "902": "Gyeongbokgung",
    }
    report = read_report(str(out))
    assert report.skipped_by_reason == {reasons.LABELS_CSV_FILE: 1}
    assert report.examples == len(CONTEST_TREE) and report.rejected == 0


def test_folder_labels_name_themselves_and_older_outputs_read_as_labels(tmp_path):
    root = tmp_path / "images"
    make_tree(root, classes=("경복궁", "남산타워"), per_class=3)
    out = tmp_path / "out"
    run_do(root, out, output_config=ONE_SPLIT)
    assert names_json(out) == ["경복궁", "남산타워"]

    os.remove(out / layout.LABEL_NAMES_FILE)  # an artifact made before names were written
    assert read_label_names(str(out)) == ["경복궁", "남산타워"]
    (out / layout.LABEL_NAMES_FILE).write_text('["only one"]', encoding="utf-8")
    with pytest.raises(ValueError, match="one name per line of labels.txt"):
        read_label_names(str(out))


def test_names_csv_that_is_missing_or_has_one_column_is_a_clear_error(tmp_path):
    root, csv = contest_tree(tmp_path)
    missing = ImageOptions(labels_csv=str(csv), label_names_csv=str(tmp_path / "none.csv"))
    with pytest.raises(ValueError, match="label names CSV .*none.csv does not exist"):
        run_do(root, tmp_path / "out", missing)
    one_column = tmp_path / "one.csv"
    one_column.write_text("landmark_id\n902\n", encoding="utf-8")
    with pytest.raises(ValueError, match="needs two, the label and its name"):
        run_do(
            root,
            tmp_path / "out2",
            ImageOptions(labels_csv=str(csv), label_names_csv=str(one_column)),
        )


def test_summary_keeps_at_most_two_folders_a_label_across_merges():
    """Memory follows the labels: a label over many folders keeps two, enough to say it has no
    folder name; workers' partial summaries merge to the same names as one pass."""
    from imgtfx.components.image_example_gen.records import LabeledImage
    from imgtfx.components.image_example_gen.summary import _Summary
    from imgtfx.components.image_example_gen.tree import FoundFile

    def record(path, label):
        return LabeledImage(FoundFile("train", path, path), path, label, split="train")

    records = [record(f"train/city/{folder}/{i}.jpg", "7") for i, folder in enumerate("abcab")]
    records += [record(f"train/city/named/{i}.jpg", "8") for i in range(3)]
    summary = _Summary(folder_names=True)
    parts = [summary.create_accumulator() for _ in range(3)]
    for i, r in enumerate(records):
        parts[i % 3] = summary.add_input(parts[i % 3], r)
    merged = summary.merge_accumulators(parts)
    assert all(len(folders) <= 2 for folders in merged.values())
    out = summary.extract_output(merged)
    assert out["vocabulary"] == ["7", "8"] and out["label_names"] == ["7", "named"]
    plain = _Summary()  # folder labels: the label names itself, no folders kept
    assert plain.extract_output(plain.add_input(plain.create_accumulator(), records[-1]))[
        "label_names"
    ] == ["8"]
