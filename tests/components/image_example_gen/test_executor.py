"""The executor: the PTransform inside a Beam pipeline, and Do() on temporary folders."""

from __future__ import annotations

import json
import os
import unicodedata

import apache_beam as beam
import pandas as pd
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.image_example_gen import driver, executor, images, outputs, reader, shards
from components.image_example_gen.component import ImageExampleGen
from components.image_example_gen.convert import serialized_exec_properties
from components.image_example_gen.options import FeatureNames, ImageOptions, split_folders_config
from tests.conftest import encode, make_tree, write


def exec_properties(root, options=None, input_config=None, output_config=None):
    component = ImageExampleGen(
        input_base=str(root),
        options=options,
        input_config=input_config,
        output_config=output_config,
    )
    return serialized_exec_properties(component)


def run_do(root, out, options=None, input_config=None, output_config=None, beam_args=()):
    artifact = standard_artifacts.Examples()
    artifact.uri = str(out)
    props = exec_properties(root, options, input_config, output_config)
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=list(beam_args), tmp_dir=str(out)
    )
    executor.Executor(context).Do({}, {standard_component_specs.EXAMPLES_KEY: [artifact]}, props)
    return artifact


def examples_of(out, split, features=FeatureNames()):
    rows = []
    for ex in reader.read_examples(reader.split_pattern(str(out), split), features):
        rows.append({k: v.numpy() for k, v in ex.items()})
    return rows


def rejects_of(out) -> dict[str, str]:
    """{path: reason} of rejects.jsonl."""
    with open(os.path.join(out, outputs.REJECTS_FILE), encoding="utf-8") as f:
        return {r["path"]: r["reason"] for r in map(json.loads, f)}


def ids_by_split(out, splits=("train", "eval")):
    return {s: sorted(r["path"].decode() for r in examples_of(out, s)) for s in splits}


def test_ptransform_yields_examples_inside_pipeline(tree, caplog):
    props = exec_properties(
        tree,
        input_config=example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name="train", pattern="train")]
        ),
    )
    props[standard_component_specs.OUTPUT_CONFIG_KEY] = proto_utils.proto_to_json(
        example_gen_pb2.Output()
    )
    write(os.path.join(tree, "train", "cat", "broken.jpg"), b"")
    expected = sorted(
        (f"train/{c}/{c}_{i}.jpg", c, idx) for idx, c in enumerate(["cat", "dog"]) for i in range(6)
    )

    def summary(example):
        f = example.features.feature
        return (
            f["path"].bytes_list.value[0].decode(),
            f["label_name"].bytes_list.value[0].decode(),
            f["label"].int64_list.value[0],
        )

    with beam.Pipeline() as p:
        examples = p | executor.ImageTreeToExample(props, "train")  # pylint: disable=no-value-for-parameter
        assert_that(examples | beam.Map(summary), equal_to(expected))
    # No silent loss: the broken file is named with its reason (TFX's path has no report).
    assert "rejected train/cat/broken.jpg: empty_file" in caplog.text


def test_do_writes_splits_vocabulary_report_and_rejects(tree, tmp_path):
    write(os.path.join(tree, "train", "dog", "empty.jpg"), b"")
    write(os.path.join(tree, "train", "dog", ".DS_Store"), b"x")
    out = tmp_path / "out"
    artifact = run_do(tree, out)

    assert outputs.read_vocabulary(str(out)) == ["cat", "dog"]
    report = outputs.read_report(str(out))
    assert report["files_seen"] == 14
    assert (report["examples"], report["rejected"], report["skipped"]) == (12, 1, 1)
    assert report["reconciled"] is True
    by_split = ids_by_split(out)
    assert len(by_split["train"]) + len(by_split["eval"]) == 12
    assert report["splits"] == {s: len(v) for s, v in by_split.items()}
    rejects = [json.loads(line) for line in open(out / outputs.REJECTS_FILE, encoding="utf-8")]
    assert {(r["path"], r["reason"]) for r in rejects} == {
        ("train/dog/empty.jpg", images.EMPTY_FILE),
        ("train/dog/.DS_Store", images.HIDDEN_OR_SYSTEM),
    }
    assert artifact.get_int_custom_property("examples") == 12
    assert artifact.get_int_custom_property("rejected") == 1
    assert artifact.split_names == '["train", "eval"]'

    example = examples_of(out, "train")[0]
    label = example["label_name"].decode()
    assert example["label"] == ["cat", "dog"].index(label)
    image = tf.io.decode_image(example["image_raw"])
    assert image.shape == (example["height"], example["width"], 3)
    assert example["format"] == b"jpeg" and example["channels"] == 3
    assert example["id"].decode() == os.path.splitext(os.path.basename(example["path"].decode()))[0]


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

    assert outputs.read_vocabulary(str(out)) == ["2", "10"]  # numeric order
    rejects = {
        (r["path"], r["reason"])
        for r in map(json.loads, open(out / outputs.REJECTS_FILE, encoding="utf-8"))
    }
    assert rejects == {
        ("train/x/nolabel.jpg", images.ID_NOT_IN_CSV),
        ("train/x/conflict.jpg", images.CONFLICTING_LABELS),
        ("train/y/a1.png", images.DUPLICATE_ID),
        ("ghost", images.CSV_ID_WITHOUT_IMAGE),
    }
    report = outputs.read_report(str(out))
    assert report["csv_ids_without_image"] == 1
    assert report["files_seen"] == report["examples"] + report["rejected"] + report["skipped"] == 7
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
    assert outputs.read_vocabulary(str(out)) == sorted(["cat", "dog", label])
    report = outputs.read_report(str(out))
    assert report["rejected_by_reason"] == {images.DUPLICATE_PATH: 1}
    (reject,) = [json.loads(x) for x in open(out / outputs.REJECTS_FILE, encoding="utf-8")]
    assert reject["path"] == f"train/{label}/1.jpg"  # NFC, relative like every other path
    assert "after Unicode NFC" in reject["detail"]
    assert report["examples"] == 11 and report["reconciled"]


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
    assert outputs.read_vocabulary(str(out)) == ["cat", "dog", "owl"]
    by_split = ids_by_split(out)
    assert all(p.startswith("train/") for p in by_split["train"]) and len(by_split["train"]) == 8
    assert all(p.startswith("eval/") for p in by_split["eval"]) and len(by_split["eval"]) == 4
    owl = [r for r in examples_of(out, "eval") if r["label_name"] == b"owl"]
    assert owl and all(r["label"] == 2 for r in owl)


def test_label_level_and_custom_feature_names(tmp_path):
    root = tmp_path / "images"
    make_tree(root, classes=("palace", "tower"), prefix="train/seoul", per_class=3)
    make_tree(root, classes=("beach",), prefix="train/busan", per_class=3, seed=9)
    features = FeatureNames(label="landmark_id", image="image")
    out = tmp_path / "out"
    options = ImageOptions(label_level=1, features=features)
    run_do(root, out, options)
    assert outputs.read_vocabulary(str(out)) == ["busan", "seoul"]
    rows = examples_of(out, "train", features) + examples_of(out, "eval", features)
    assert {r["label_name"] for r in rows} == {b"busan", b"seoul"}
    assert all("landmark_id" in r and "image" in r for r in rows)


def test_too_many_rejects_fails_after_writing_the_report(tree, tmp_path):
    for i in range(4):
        write(os.path.join(tree, "train", "cat", f"bad{i}.jpg"), b"not a jpeg")
    out = tmp_path / "out"
    with pytest.raises(outputs.ImageExampleGenError, match="25% of the images were rejected"):
        run_do(tree, out, ImageOptions(max_reject_fraction=0.2))
    assert outputs.read_report(str(out))["rejected_by_reason"] == {images.NOT_AN_IMAGE: 4}


def test_nothing_usable_fails_with_reasons(tmp_path):
    root = tmp_path / "images"
    write(root / "a" / "x.jpg", b"")
    with pytest.raises(outputs.ImageExampleGenError, match="no usable images.*empty_file"):
        run_do(root, tmp_path / "out")


def test_split_pattern_matching_nothing_is_a_clear_error(tree, tmp_path):
    config = example_gen_pb2.Input(
        splits=[
            example_gen_pb2.Input.Split(name="train", pattern="train"),
            example_gen_pb2.Input.Split(name="eval", pattern="validation"),
        ]
    )
    with pytest.raises(ValueError, match="'eval' pattern 'validation' matches nothing"):
        run_do(tree, tmp_path / "out", input_config=config)


def test_images_per_shard_sets_the_number_of_shard_files(tmp_path):
    root = tmp_path / "images"
    make_tree(root, per_class=10)
    out = tmp_path / "out"
    run_do(root, out, ImageOptions(images_per_shard=3))
    report = outputs.read_report(str(out))
    n = report["splits"]["train"]
    files = sorted(os.listdir(out / "Split-train"))
    shards = -(-n // 3)
    assert files and all(f.endswith(f"-of-{shards:05d}.gz") for f in files)
    assert len(files) > 1
    assert len(examples_of(out, "train")) == n


def test_clean_tree_writes_every_output_and_the_report_renders(tree, tmp_path):
    """No broken file: rejects.jsonl still exists (empty) and the report page reads it."""
    from imgtfx.report import read, render

    out = tmp_path / "out"
    run_do(tree, out)
    for name in (
        outputs.LABELS_FILE,
        outputs.LABEL_NAMES_FILE,
        outputs.REPORT_FILE,
        outputs.REJECTS_FILE,
    ):
        assert (out / name).exists(), name
    assert (out / outputs.REJECTS_FILE).read_text() == ""
    dataset = read.read_dataset(str(out))
    assert dataset.rejects == []
    assert "No file was rejected or skipped" in render.dataset_section(dataset)


def test_links_into_the_tree_make_no_duplicates(tmp_path):
    root = tmp_path / "images"
    make_tree(root, classes=("palace", "tower"), prefix="seoul", per_class=5)
    make_tree(root, classes=("beach",), prefix="busan", per_class=5, seed=20)
    os.symlink(root, root / "seoul" / "palace" / "root_again")
    os.symlink(root / "seoul", root / "seoul" / "tower" / "up")
    os.symlink(root / "busan", root / "seoul" / "busan")
    out = tmp_path / "out"
    run_do(root, out)
    report = outputs.read_report(str(out))
    assert (report["examples"], report["rejected"], report["skipped"]) == (15, 0, 3)
    assert report["skipped_by_reason"] == {images.LINK_INTO_TREE: 3}
    paths = [r["path"].decode() for s in ("train", "eval") for r in examples_of(out, s)]
    assert len(paths) == len(set(paths)) == 15


def test_rotated_phone_photos_are_written_upright(tmp_path):
    """Every EXIF orientation, in both TIFF byte orders: the example holds the upright picture,
    keeps the tag it had in `orientation`, and the report counts the turned photos."""
    import io

    import numpy as np
    from PIL import Image, ImageOps

    from tests.conftest import photo, with_orientation

    root = tmp_path / "images"
    upright = {}
    for order in ("II", "MM"):
        for orientation in range(1, 9):
            buffer = io.BytesIO()
            photo(seed=orientation).save(buffer, "JPEG", quality=95)
            data = with_orientation(buffer.getvalue(), orientation, order)
            name = f"{order}{orientation}"
            write(root / "phone" / f"{name}.jpg", data)
            upright[name] = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    make_tree(root, classes=("scan",), prefix="", per_class=4)
    out = tmp_path / "out"
    run_do(root, out)
    rows = {r["id"].decode(): r for s in ("train", "eval") for r in examples_of(out, s)}
    for name, expected in upright.items():
        row = rows[name]
        stored = Image.open(io.BytesIO(row["image_raw"]))
        assert row["orientation"] == int(name[2:])
        assert stored.getexif().get(images.EXIF_ORIENTATION, 1) == 1  # never turned twice
        pixels = np.asarray(stored.convert("RGB")).astype(float)
        assert pixels.shape == expected.shape, name
        assert (row["height"], row["width"]) == expected.shape[:2]
        assert np.abs(pixels - expected).mean() < 3, name
    report = outputs.read_report(str(out))
    assert report["turned_upright"] == 14
    assert report["exif_orientations"] == {str(o): 2 for o in range(2, 9)}
    assert rows["scan_0"]["orientation"] == 1


def test_fingerprint_follows_the_links_the_executor_follows(tmp_path):
    from tfx.proto import example_gen_pb2

    from components.image_example_gen.driver import tree_fingerprint

    root = tmp_path / "images"
    outside = tmp_path / "more"
    make_tree(root, per_class=2)
    write(outside / "owl" / "1.jpg", encode(seed=3))
    os.symlink(outside, root / "train" / "more")
    config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="s", pattern="*")])
    before = tree_fingerprint(str(root), config, None)
    write(outside / "owl" / "2.jpg", encode(seed=4))  # read by the executor through the link
    assert tree_fingerprint(str(root), config, None) != before


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
    report = outputs.read_report(str(out))
    assert report["rejected_by_reason"] == {images.DUPLICATE_PATH: 1, images.DUPLICATE_ID: 1}
    assert (report["files_seen"], report["examples"], report["reconciled"]) == (13, 11, True)


def _splits_by_class(out):
    classes: dict[str, dict[str, set]] = {}
    for split in ("train", "eval"):
        for row in examples_of(out, split):
            entry = classes.setdefault(row["label_name"].decode(), {"train": set(), "eval": set()})
            entry[split].add(row["path"].decode())
    return classes


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
    before = _splits_by_class(plain)
    no_eval = [c for c in names if not before[c]["eval"]]
    lone_in_eval = [c for c in lone if before[c]["eval"]]
    assert len(no_eval) >= 10 and lone_in_eval  # what the hash split alone does

    out = tmp_path / "out"
    run_do(root, out)
    classes = _splits_by_class(out)
    for name in names:
        assert classes[name]["train"] and classes[name]["eval"], name
    for name in lone:
        assert len(classes[name]["train"]) == 1 and not classes[name]["eval"], name
    report = outputs.read_report(str(out))
    assert report["classes_without_examples"] == {"train": [], "eval": sorted(lone)}
    # Only those classes' images moved, one each; everything else kept its hash split.
    changed = sum(len(classes[c]["eval"] ^ before[c]["eval"]) for c in classes)
    assert changed == report["moved_to_cover_classes"] == len(no_eval) + len(lone_in_eval)
    assert sum(report["splits"].values()) == 20 * 2 + 20 * 3 + 12


def test_adding_images_moves_at_most_the_images_moved_for_coverage(tmp_path):
    root = tmp_path / "images"
    names = [f"c{i:02d}" for i in range(30)]
    make_tree(root, classes=names, per_class=2)
    run_do(root, tmp_path / "a")
    before = _splits_by_class(tmp_path / "a")
    make_tree(root, classes=names, per_class=12, seed=777)  # ten more in every class
    run_do(root, tmp_path / "b")
    after = _splits_by_class(tmp_path / "b")
    changed = [
        path
        for c in names
        for split, other in (("train", "eval"), ("eval", "train"))
        for path in before[c][split] & after[c][other]
    ]
    report = outputs.read_report(str(tmp_path / "a"))
    assert len(changed) <= report["moved_to_cover_classes"]
    assert all(after[c]["train"] and after[c]["eval"] for c in names)


def test_split_hashes_what_tfx_hashes():
    """The plan builds the partition key without an Example; it is byte for byte TFX's own."""
    from tfx.components.example_gen.base_example_gen_executor import _GeneratePartitionKey

    from components.image_example_gen.plan import partition_key

    config = example_gen_pb2.SplitConfig(partition_feature_name="id")
    for value in ("a1", "경복궁", "x" * 300, ""):
        example = tf.train.Example()
        example.features.feature["id"].bytes_list.value.append(value.encode())
        assert partition_key(value) == _GeneratePartitionKey(example, config)


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

    vocabulary = outputs.read_vocabulary(str(out))
    assert vocabulary == sorted(label.strip() for label in awkward)  # CSV cells are trimmed
    rejects = rejects_of(out)
    assert rejects == {
        "blank.jpg": images.BLANK_LABEL,
        "spaces.jpg": images.BLANK_LABEL,
        "newline.jpg": images.UNPRINTABLE_LABEL,
        "crlf.jpg": images.UNPRINTABLE_LABEL,
        "tab.jpg": images.UNPRINTABLE_LABEL,
        "notes.txt": images.NOT_AN_IMAGE,  # not "id_not_in_csv": it is no image at all
    }
    for row in examples_of(out, "train"):  # every index names the example's own label
        assert vocabulary[row["label"]] == row["label_name"].decode()


def test_label_folders_with_line_breaks_or_blank_names_are_rejects(tmp_path):
    root = tmp_path / "images"
    make_tree(root, per_class=3)
    write(root / "train" / "two\nlines" / "a.jpg", encode(seed=1))
    write(root / "train" / " " / "b.jpg", encode(seed=2))
    out = tmp_path / "out"
    run_do(root, out, ImageOptions(max_reject_fraction=0.9))
    assert outputs.read_vocabulary(str(out)) == ["cat", "dog"]
    rejects = rejects_of(out)
    assert rejects == {
        "train/two\nlines/a.jpg": images.UNPRINTABLE_LABEL,
        "train/ /b.jpg": images.BLANK_LABEL,
    }


def test_labels_file_reader_never_skips_a_line(tmp_path):
    path = str(tmp_path / "labels.txt")
    labels = ["b ", " a", "가", "1,2"]
    outputs.write_labels_file(path, labels)
    assert outputs.read_labels_file(path) == labels
    with open(path, "a", encoding="utf-8") as f:
        f.write("\nafter a blank line\n")
    with pytest.raises(ValueError, match="line 5: blank_label"):
        outputs.read_labels_file(path)
    with pytest.raises(ValueError, match="unprintable_label"):
        outputs.write_labels_file(path, ["a\nb"])


def test_image_root_with_glob_characters_in_its_name(tmp_path):
    root = tmp_path / "photos [2024] *"
    make_tree(root, per_class=3)
    out = tmp_path / "out [1]"
    run_do(root, out)
    assert outputs.read_report(str(out))["examples"] == 6


def test_links_that_leave_the_root_are_followed_unless_told_not_to(tmp_path):
    library = tmp_path / "library"  # outside the image root
    make_tree(library, classes=("beach",), prefix="", per_class=4, seed=30)
    root = tmp_path / "images"
    make_tree(root, classes=("palace", "tower"), prefix="", per_class=4)
    os.symlink(library / "beach", root / "beach")  # a folder link
    os.symlink(library / "beach" / "beach_0.jpg", root / "palace" / "linked.jpg")  # a file link

    run_do(root, tmp_path / "followed")
    followed = outputs.read_report(str(tmp_path / "followed"))
    assert (followed["examples"], followed["skipped"]) == (13, 0)

    options = ImageOptions(follow_external_links=False)
    run_do(root, tmp_path / "not_followed", options)
    report = outputs.read_report(str(tmp_path / "not_followed"))
    assert (report["examples"], report["skipped"]) == (8, 2)
    skipped = {
        r["path"]: (r["reason"], r["detail"])
        for r in map(
            json.loads, open(tmp_path / "not_followed" / outputs.REJECTS_FILE, encoding="utf-8")
        )
    }
    assert skipped == {
        "beach": (images.LINK_OUTSIDE_TREE, f"points to {library / 'beach'}"),
        "palace/linked.jpg": (
            images.LINK_OUTSIDE_TREE,
            f"points to {library / 'beach' / 'beach_0.jpg'}",
        ),
    }
    # The driver's fingerprint lists what the executor reads: the option changes it.
    config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="all", pattern="*")])
    assert driver.tree_fingerprint(str(root), config, None, True) != driver.tree_fingerprint(
        str(root), config, None, False
    )


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"cpu.max": "50000 100000\n"}, 1),  # half a CPU still gets one thread
        ({"cpu.max": "max 100000\n"}, None),  # no limit: the affinity's cores
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),  # no cgroup files at all
    ],
)
def test_decode_threads_follow_the_containers_cpu_limit(tmp_path, files, expected):
    for name, text in files.items():
        write(tmp_path / name, text.encode())
    affinity = len(os.sched_getaffinity(0))
    assert shards.usable_cores(str(tmp_path)) == (expected or affinity)


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


def test_bundles_at_once_in_one_process_share_its_decode_threads(monkeypatch):
    """A runner may run many bundles at once in one worker process: they decode on the
    process's `decode_threads`, so pixels in flight are bounded per process, not per bundle."""
    import threading
    import time

    from components.image_example_gen.plan import LabeledImage

    lock = threading.Lock()
    busy, most, workers = [0], [0], set()

    def convert(record, index, options):
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
            workers.add(threading.current_thread().name)
        time.sleep(0.01)
        with lock:
            busy[0] -= 1
        return record.id

    monkeypatch.setattr(shards, "_convert_framed", convert)
    options = ImageOptions(decode_threads=3)
    bundles = [
        [
            LabeledImage(images.FoundFile("train", f"{b}/{i}.jpg", ""), f"{b}-{i}", "x")
            for i in range(40)
        ]
        for b in range(6)
    ]
    results = {}

    def bundle(b):
        results[b] = [r for _, r in shards._convert_all(bundles[b], {}, options)]

    threads = [threading.Thread(target=bundle, args=(b,)) for b in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[b] == [f"{b}-{i}" for i in range(40)] for b in range(6))  # in order
    assert most[0] == 3 and len(workers) == 3  # six bundles, three decodes at a time
