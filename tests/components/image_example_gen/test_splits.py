"""The splits: TFX's hash partition, every class in every split, pre-split trees."""

from __future__ import annotations

import os

import pytest
import tensorflow as tf
from tfx.proto import example_gen_pb2

from imgtfx.components.examples.conversion_report import read_report
from imgtfx.components.examples.vocabulary import read_vocabulary
from imgtfx.components.image_example_gen.options import ImageOptions, split_folders_config
from tests.helpers.conversions import (
    examples_of,
    ids_by_split,
    run_do,
    splits_by_class,
)
from tests.helpers.images import make_tree


def test_two_runs_write_identical_files_and_adding_images_moves_none(tmp_path):
    root = tmp_path / "images"
    make_tree(root, per_class=15)
    run_do(root, tmp_path / "a")
    run_do(root, tmp_path / "b")
    for split in ("train", "eval"):
        a = sorted(os.listdir(tmp_path / "a" / f"Split-{split}"))
        assert a == sorted(os.listdir(tmp_path / "b" / f"Split-{split}"))
        for name in a:
            assert (tmp_path / "a" / f"Split-{split}" / name).read_bytes() == (
                tmp_path / "b" / f"Split-{split}" / name
            ).read_bytes()
    before = ids_by_split(tmp_path / "a")
    make_tree(
        root, classes=("cat", "dog", "bird"), per_class=25, seed=7
    )  # more of each, and a class
    run_do(root, tmp_path / "c")
    after = ids_by_split(tmp_path / "c")
    for split in ("train", "eval"):
        assert set(before[split]) <= set(after[split])
    assert len(after["train"]) + len(after["eval"]) == 75


def test_presplit_tree_keeps_its_splits_and_shares_the_vocabulary(tmp_path):
    root = tmp_path / "images"
    make_tree(root, classes=("cat", "dog"), prefix="train", per_class=4)
    make_tree(root, classes=("dog", "owl"), prefix="eval", per_class=2, seed=50)
    out = tmp_path / "out"
    split_input = example_gen_pb2.Input(
        splits=[
            example_gen_pb2.Input.Split(name="train", pattern="train"),
            example_gen_pb2.Input.Split(name="eval", pattern="eval"),
        ]
    )
    run_do(root, out, input_config=split_input)
    assert read_vocabulary(str(out)) == ["cat", "dog", "owl"]
    by_split = ids_by_split(out)
    assert all(p.startswith("train/") for p in by_split["train"]) and len(by_split["train"]) == 8
    assert all(p.startswith("eval/") for p in by_split["eval"]) and len(by_split["eval"]) == 4
    owl = [r for r in examples_of(out, "eval") if r["label_name"] == b"owl"]
    assert owl and all(r["label"] == 2 for r in owl)


def test_every_class_of_two_or_more_images_is_in_both_splits(tmp_path):
    """Many small classes, as in landmark data: the hash split alone leaves most classes of two
    or three images without an eval image, and puts some classes of one image in eval only;
    covering every split gives each class of two or more one of each, and each lone image to
    train (a class the model never sees cannot be predicted)."""
    root = tmp_path / "images"
    names = [f"명소{i:02d}" for i in range(40)]
    lone = [f"외톨이{i}" for i in range(12)]
    make_tree(root, classes=names[:20], per_class=2)
    make_tree(root, classes=names[20:], per_class=3, seed=5000)
    make_tree(root, classes=lone, per_class=1, seed=9000)

    plain = tmp_path / "plain"
    run_do(root, plain, ImageOptions(cover_every_split=False))
    before = splits_by_class(plain)
    no_eval = [c for c in names if not before[c]["eval"]]
    lone_in_eval = [c for c in lone if before[c]["eval"]]
    assert len(no_eval) >= 10 and lone_in_eval  # what the hash split alone does

    out = tmp_path / "out"
    run_do(root, out)
    classes = splits_by_class(out)
    for name in names:
        assert classes[name]["train"] and classes[name]["eval"], name
    for name in lone:
        assert len(classes[name]["train"]) == 1 and not classes[name]["eval"], name
    report = read_report(str(out))
    assert report.classes_without_examples == {"train": [], "eval": sorted(lone)}
    # Only those classes' images moved, one each; everything else kept its hash split.
    changed = sum(len(classes[c]["eval"] ^ before[c]["eval"]) for c in classes)
    assert changed == report.moved_to_cover_classes == len(no_eval) + len(lone_in_eval)
    assert sum(report.splits.values()) == 20 * 2 + 20 * 3 + 12


def test_adding_images_moves_at_most_the_images_moved_for_coverage(tmp_path):
    root = tmp_path / "images"
    names = [f"c{i:02d}" for i in range(30)]
    make_tree(root, classes=names, per_class=2)
    run_do(root, tmp_path / "a")
    before = splits_by_class(tmp_path / "a")
    make_tree(root, classes=names, per_class=12, seed=777)  # ten more in every class
    run_do(root, tmp_path / "b")
    after = splits_by_class(tmp_path / "b")
    changed = [
        path
        for c in names
        for split, other in (("train", "eval"), ("eval", "train"))
        for path in before[c][split] & after[c][other]
    ]
    report = read_report(str(tmp_path / "a"))
    assert len(changed) <= report.moved_to_cover_classes
    assert all(after[c]["train"] and after[c]["eval"] for c in names)


def test_split_hashes_what_tfx_hashes():
    """The plan builds the partition key without an Example; it is byte for byte TFX's own."""
    from tfx.components.example_gen.base_example_gen_executor import _GeneratePartitionKey

    from imgtfx.components.image_example_gen.splits import partition_key

    config = example_gen_pb2.SplitConfig(partition_feature_name="id")
    for value in ("a1", "경복궁", "x" * 300, ""):
        example = tf.train.Example()
        example.features.feature["id"].bytes_list.value.append(value.encode())
        assert partition_key(value) == _GeneratePartitionKey(example, config)


@pytest.mark.parametrize(
    "folders, names",
    [
        (["train", "eval"], ["train", "eval"]),
        (["eval", "train", "test"], ["eval", "train", "test"]),
        (["training", "validation"], ["train", "eval"]),
        (["학습", "검증", "test"], ["train", "eval", "test"]),
    ],
)
def test_split_folders_of_any_names_become_train_and_eval(tmp_path, folders, names):
    root = tmp_path / "images"
    for i, folder in enumerate(folders):
        make_tree(root, prefix=folder, per_class=2, seed=10 * i)
    input_config = split_folders_config(folders)
    assert [s.name for s in input_config.splits] == names
    out = tmp_path / "out"
    run_do(root, out, input_config=input_config)
    by_split = ids_by_split(out, names)
    for name, folder in zip(names, folders, strict=True):  # each split holds its folder only
        assert len(by_split[name]) == 4 and all(p.startswith(f"{folder}/") for p in by_split[name])


@pytest.mark.parametrize(
    "folders", [["train"], ["train", "validation"], ["a", "a"], ["학습", "검증", "시험"]]
)
def test_split_folders_that_cannot_train_and_evaluate_fail_early(folders):
    with pytest.raises(ValueError, match="split folders must|cannot name a TFX split"):
        split_folders_config(folders)
