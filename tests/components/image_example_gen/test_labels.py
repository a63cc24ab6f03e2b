"""Labels, from folders or the labels CSV: the join's reasons, every spelling of a name, the
label rules."""

from __future__ import annotations

import json
import os
import unicodedata

import pandas as pd
import pytest
from tfx.proto import example_gen_pb2

from imgtfx.components.examples import layout, reasons
from imgtfx.components.examples.conversion_report import read_report
from imgtfx.components.examples.features import FeatureNames
from imgtfx.components.examples.vocabulary import read_vocabulary
from imgtfx.components.image_example_gen.options import ImageOptions
from tests.helpers.conversions import (
    examples_of,
    rejects_of,
    run_do,
)
from tests.helpers.images import encode, make_tree, write


def test_labels_csv_join_reports_each_mismatch(tmp_path):
    root = tmp_path / "images"
    for name, seed in [("a1", 1), ("a2", 2), ("b1", 3), ("nolabel", 4), ("conflict", 5)]:
        write(root / "train" / "x" / f"{name}.jpg", encode(seed=seed))
    write(root / "train" / "y" / "a1.png", encode("PNG", seed=6))  # same id as train/x/a1.jpg
    nfd_name = unicodedata.normalize("NFD", "경복궁")
    write(root / "train" / "y" / f"{nfd_name}.jpg", encode(seed=7))
    csv = tmp_path / "labels.csv"
    csv.write_text(
        "id,landmark_id\na1,10\na2.jpg,2\nb1,10\nconflict,1\nconflict,2\nghost,3\n경복궁,2\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    options = ImageOptions(labels_csv=str(csv), max_reject_fraction=0.9)
    one_split = example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=1)]
        )
    )
    run_do(root, out, options, output_config=one_split)

    assert read_vocabulary(str(out)) == ["2", "10"]  # numeric order
    rejects = {
        (r["path"], r["reason"])
        for r in map(json.loads, open(out / layout.REJECTS_FILE, encoding="utf-8"))
    }
    assert rejects == {
        ("train/x/nolabel.jpg", reasons.ID_NOT_IN_CSV),
        ("train/x/conflict.jpg", reasons.CONFLICTING_LABELS),
        ("train/y/a1.png", reasons.DUPLICATE_ID),
        ("ghost", reasons.CSV_ID_WITHOUT_IMAGE),
    }
    report = read_report(str(out))
    assert report.csv_ids_without_image == 1
    assert report.files_seen == report.examples + report.rejected + report.skipped == 7
    rows = examples_of(out, "train")
    labels = {r["id"].decode(): (r["label_name"].decode(), r["label"]) for r in rows}
    assert labels == {"a1": ("10", 1), "a2": ("2", 0), "b1": ("10", 1), "경복궁": ("2", 0)}


def test_csv_without_the_named_column_is_a_clear_error(tree, tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("image,landmark_id,city\n1,2,3\n")
    with pytest.raises(ValueError, match="no id column 'id'.*'image', 'landmark_id', 'city'"):
        run_do(tree, tmp_path / "out", ImageOptions(labels_csv=str(csv)))
    with pytest.raises(ValueError, match="name the label column"):
        run_do(tree, tmp_path / "out2", ImageOptions(labels_csv=str(csv), id_column="image"))


def test_nfc_and_nfd_spellings_of_one_name_are_one_image(tmp_path):
    root = tmp_path / "images"
    make_tree(root, per_class=5)
    label = "남산타워"
    write(root / "train" / unicodedata.normalize("NFC", label) / "1.jpg", encode(seed=1))
    write(root / "train" / unicodedata.normalize("NFD", label) / "1.jpg", encode(seed=2))
    out = tmp_path / "out"
    run_do(root, out)
    assert read_vocabulary(str(out)) == sorted(["cat", "dog", label])
    report = read_report(str(out))
    assert report.rejected_by_reason == {reasons.DUPLICATE_PATH: 1}
    (reject,) = [json.loads(x) for x in open(out / layout.REJECTS_FILE, encoding="utf-8")]
    assert reject["path"] == f"train/{label}/1.jpg"  # NFC, relative like every other path
    assert "after Unicode NFC" in reject["detail"]
    assert report.examples == 11 and report.reconciled


def test_label_level_and_custom_feature_names(tmp_path):
    root = tmp_path / "images"
    make_tree(root, classes=("palace", "tower"), prefix="train/seoul", per_class=3)
    make_tree(root, classes=("beach",), prefix="train/busan", per_class=3, seed=9)
    features = FeatureNames(label="landmark_id", image="image")
    out = tmp_path / "out"
    options = ImageOptions(label_level=1, features=features)
    run_do(root, out, options)
    assert read_vocabulary(str(out)) == ["busan", "seoul"]
    rows = examples_of(out, "train", features) + examples_of(out, "eval", features)
    assert {r["label_name"] for r in rows} == {b"busan", b"seoul"}
    assert all("landmark_id" in r and "image" in r for r in rows)


def test_csv_join_also_drops_nfd_spellings_of_one_path(tmp_path):
    """With a labels CSV the one join by id also finds same-path duplicates (both spellings have
    the id), reported as duplicate_path like with folder labels, not as duplicate_id."""
    root = tmp_path / "images"
    make_tree(root, per_class=5)
    label = "남산타워"
    write(root / "train" / unicodedata.normalize("NFC", label) / "x1.jpg", encode(seed=1))
    write(root / "train" / unicodedata.normalize("NFD", label) / "x1.jpg", encode(seed=2))
    write(root / "train" / "cat" / "x1.png", encode("PNG", seed=3))  # same id, other path
    csv = tmp_path / "labels.csv"
    rows = [f"{os.path.splitext(os.path.basename(p))[0]},1" for p in make_tree(tmp_path / "t")]
    csv.write_text("id,label\n" + "\n".join(rows) + "\nx1,2\n", encoding="utf-8")
    out = tmp_path / "out"
    run_do(root, out, ImageOptions(labels_csv=str(csv)))
    report = read_report(str(out))
    assert report.rejected_by_reason == {reasons.DUPLICATE_PATH: 1, reasons.DUPLICATE_ID: 1}
    assert (report.files_seen, report.examples, report.reconciled) == (13, 11, True)


def test_blank_and_multiline_labels_are_rejects_and_labels_txt_round_trips(tmp_path):
    """A blank or multi-line label would add a line to labels.txt and shift every later index."""
    root = tmp_path / "images"
    awkward = [" leading space", "trailing space ", "a,b", '"quoted"', "#hash", "경복궁 정문"]
    for i in range(len(awkward)):
        write(root / f"k{i}.jpg", encode(seed=i))
    for name in ("blank", "spaces", "newline", "crlf", "tab", "notes.txt"):
        write(root / (name if name.endswith(".txt") else f"{name}.jpg"), encode(seed=9))
    rows = [(f"k{i}", label) for i, label in enumerate(awkward)]
    rows += [("blank", ""), ("spaces", "   "), ("newline", "two\nlines")]
    rows += [("crlf", "two\r\nlines"), ("tab", "a\tb")]
    csv = tmp_path / "labels.csv"
    pd.DataFrame(rows, columns=["id", "label"]).to_csv(csv, index=False)
    out = tmp_path / "out"
    one_split = example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=1)]
        )
    )
    options = ImageOptions(labels_csv=str(csv), max_reject_fraction=0.9)
    run_do(root, out, options, output_config=one_split)

    vocabulary = read_vocabulary(str(out))
    assert vocabulary == sorted(label.strip() for label in awkward)  # CSV cells are trimmed
    rejects = rejects_of(out)
    assert rejects == {
        "blank.jpg": reasons.BLANK_LABEL,
        "spaces.jpg": reasons.BLANK_LABEL,
        "newline.jpg": reasons.UNPRINTABLE_LABEL,
        "crlf.jpg": reasons.UNPRINTABLE_LABEL,
        "tab.jpg": reasons.UNPRINTABLE_LABEL,
        "notes.txt": reasons.NOT_AN_IMAGE,  # not "id_not_in_csv": it is no image at all
    }
    for row in examples_of(out, "train"):  # every index names the example's own label
        assert vocabulary[row["label"]] == row["label_name"].decode()
