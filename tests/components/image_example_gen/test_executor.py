"""The executor: the plan's stages inside a Beam pipeline, and Do() on temporary folders."""

from __future__ import annotations

import json
import os

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to
from tfx.proto import example_gen_pb2

from imgtfx.components import image_files
from imgtfx.components.examples import layout, reasons
from imgtfx.components.examples.conversion_report import read_report
from imgtfx.components.examples.vocabulary import read_vocabulary
from imgtfx.components.image_example_gen import checking, driver, plan, report_checks, tree
from imgtfx.components.image_example_gen.component import default_output_config
from imgtfx.components.image_example_gen.options import ImageOptions
from tests.helpers.conversions import (
    examples_of,
    ids_by_split,
    run_do,
)
from tests.helpers.images import encode, make_tree, write


def test_the_plan_labels_and_splits_paths_inside_a_pipeline(tree, tmp_path):
    """The plan's Beam stages, checked inside the pipeline: every listed file is a labelled,
    checked and split record or an outcome with its reason, before any shard is written."""
    write(os.path.join(tree, "train", "cat", "broken.jpg"), b"")  # found by the check
    write(os.path.join(tree, "train", "dog", ".DS_Store"), b"x")
    write(os.path.join(tree, "loose.jpg"), encode())  # no label folder at level -2
    options = ImageOptions(label_level=-2)
    input_config = example_gen_pb2.Input(
        splits=[example_gen_pb2.Input.Split(name="single_split", pattern="*")]
    )
    output_config = default_output_config(input_config, options)
    paths = sorted(f"train/{c}/{c}_{i}.jpg" for c in ("cat", "dog") for i in range(6))
    with beam.Pipeline() as p:
        runs = str(tmp_path / "runs")
        planned = plan.plan_images(p, str(tree), input_config, output_config, options, runs)
        assert_that(
            planned.records | beam.Map(lambda r: (r.file.path, r.label_name, r.split in SPLITS)),
            equal_to([(path, "train", True) for path in paths]),
            label="Records",
        )
        assert_that(
            planned.outcomes | beam.Map(lambda o: (o.path, o.status, o.reason)),
            equal_to(
                [
                    ("train/dog/.DS_Store", reasons.SKIPPED, reasons.HIDDEN_OR_SYSTEM),
                    ("loose.jpg", reasons.REJECTED, reasons.NO_LABEL_FOLDER),
                    ("train/cat/broken.jpg", reasons.REJECTED, reasons.EMPTY_FILE),
                ]
            ),
            label="Outcomes",
        )
        assert_that(planned.files_seen, equal_to([15]), label="FilesSeen")
        assert_that(planned.vocabulary, equal_to([["train"]]), label="Vocabulary")


SPLITS = ("train", "eval")


def test_do_writes_splits_vocabulary_report_and_rejects(tree, tmp_path):
    write(os.path.join(tree, "train", "dog", "empty.jpg"), b"")
    write(os.path.join(tree, "train", "dog", ".DS_Store"), b"x")
    out = tmp_path / "out"
    artifact = run_do(tree, out)

    assert read_vocabulary(str(out)) == ["cat", "dog"]
    report = read_report(str(out))
    assert report.files_seen == 14
    assert (report.examples, report.rejected, report.skipped) == (12, 1, 1)
    assert report.reconciled is True
    by_split = ids_by_split(out)
    assert len(by_split["train"]) + len(by_split["eval"]) == 12
    assert report.splits == {s: len(v) for s, v in by_split.items()}
    rejects = [json.loads(line) for line in open(out / layout.REJECTS_FILE, encoding="utf-8")]
    assert {(r["path"], r["reason"]) for r in rejects} == {
        ("train/dog/empty.jpg", reasons.EMPTY_FILE),
        ("train/dog/.DS_Store", reasons.HIDDEN_OR_SYSTEM),
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


def test_too_many_rejects_fails_after_writing_the_report(tree, tmp_path):
    for i in range(4):
        write(os.path.join(tree, "train", "cat", f"bad{i}.jpg"), b"not a jpeg")
    out = tmp_path / "out"
    with pytest.raises(report_checks.ImageExampleGenError, match="25% of the images were rejected"):
        run_do(tree, out, ImageOptions(max_reject_fraction=0.2))
    assert read_report(str(out)).rejected_by_reason == {reasons.NOT_AN_IMAGE: 4}


def test_nothing_usable_fails_with_reasons(tmp_path):
    root = tmp_path / "images"
    write(root / "a" / "x.jpg", b"")
    with pytest.raises(report_checks.ImageExampleGenError, match="no usable images.*empty_file"):
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
    report = read_report(str(out))
    n = report.splits["train"]
    files = sorted(os.listdir(out / "Split-train"))
    shards = -(-n // 3)
    assert files and all(f.endswith(f"-of-{shards:05d}.gz") for f in files)
    assert len(files) > 1
    assert len(examples_of(out, "train")) == n


def test_clean_tree_writes_every_output_and_the_report_renders(tree, tmp_path):
    """No broken file: rejects.jsonl still exists (empty) and the report page reads it."""
    from imgtfx.report import data_sections, read

    out = tmp_path / "out"
    run_do(tree, out)
    for name in (
        layout.LABELS_FILE,
        layout.LABEL_NAMES_FILE,
        layout.REPORT_FILE,
        layout.REJECTS_FILE,
    ):
        assert (out / name).exists(), name
    assert (out / layout.REJECTS_FILE).read_text() == ""
    # The temporary runs (rejects, copies' lines and band entries) are gone once written.
    assert not [name for name in os.listdir(out) if name.startswith("_")]
    dataset = read.read_dataset(str(out))
    assert dataset.rejects == []
    assert "No file was rejected or skipped" in data_sections.dataset_section(dataset)


def test_links_into_the_tree_make_no_duplicates(tmp_path):
    root = tmp_path / "images"
    make_tree(root, classes=("palace", "tower"), prefix="seoul", per_class=5)
    make_tree(root, classes=("beach",), prefix="busan", per_class=5, seed=20)
    os.symlink(root, root / "seoul" / "palace" / "root_again")
    os.symlink(root / "seoul", root / "seoul" / "tower" / "up")
    os.symlink(root / "busan", root / "seoul" / "busan")
    out = tmp_path / "out"
    run_do(root, out)
    report = read_report(str(out))
    assert (report.examples, report.rejected, report.skipped) == (15, 0, 3)
    assert report.skipped_by_reason == {reasons.LINK_INTO_TREE: 3}
    paths = [r["path"].decode() for s in ("train", "eval") for r in examples_of(out, s)]
    assert len(paths) == len(set(paths)) == 15


def test_rotated_phone_photos_are_written_upright(tmp_path):
    """Every EXIF orientation, in both TIFF byte orders: the example holds the upright picture,
    keeps the tag it had in `orientation`, and the report counts the turned photos."""
    import io

    import numpy as np
    from PIL import Image, ImageOps

    from tests.helpers.images import photo, with_orientation

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
        assert stored.getexif().get(image_files.EXIF_ORIENTATION, 1) == 1  # never turned twice
        pixels = np.asarray(stored.convert("RGB")).astype(float)
        assert pixels.shape == expected.shape, name
        assert (row["height"], row["width"]) == expected.shape[:2]
        assert np.abs(pixels - expected).mean() < 3, name
    report = read_report(str(out))
    assert report.turned_upright == 14
    assert report.exif_orientations == {str(o): 2 for o in range(2, 9)}
    assert rows["scan_0"]["orientation"] == 1


def test_fingerprint_follows_the_links_the_executor_follows(tmp_path):
    from tfx.proto import example_gen_pb2

    from imgtfx.components.image_example_gen.driver import tree_fingerprint

    root = tmp_path / "images"
    outside = tmp_path / "more"
    make_tree(root, per_class=2)
    write(outside / "owl" / "1.jpg", encode(seed=3))
    os.symlink(outside, root / "train" / "more")
    config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="s", pattern="*")])
    before = tree_fingerprint(str(root), config, None)
    write(outside / "owl" / "2.jpg", encode(seed=4))  # read by the executor through the link
    assert tree_fingerprint(str(root), config, None) != before


def test_image_root_with_glob_characters_in_its_name(tmp_path):
    root = tmp_path / "photos [2024] *"
    make_tree(root, per_class=3)
    out = tmp_path / "out [1]"
    run_do(root, out)
    assert read_report(str(out)).examples == 6


def test_links_that_leave_the_root_are_followed_unless_told_not_to(tmp_path):
    library = tmp_path / "library"  # outside the image root
    make_tree(library, classes=("beach",), prefix="", per_class=4, seed=30)
    root = tmp_path / "images"
    make_tree(root, classes=("palace", "tower"), prefix="", per_class=4)
    os.symlink(library / "beach", root / "beach")  # a folder link
    os.symlink(library / "beach" / "beach_0.jpg", root / "palace" / "linked.jpg")  # a file link

    run_do(root, tmp_path / "followed")
    followed = read_report(str(tmp_path / "followed"))
    assert (followed.examples, followed.skipped) == (13, 0)

    options = ImageOptions(follow_external_links=False)
    run_do(root, tmp_path / "not_followed", options)
    report = read_report(str(tmp_path / "not_followed"))
    assert (report.examples, report.skipped) == (8, 2)
    skipped = {
        r["path"]: (r["reason"], r["detail"])
        for r in map(
            json.loads, open(tmp_path / "not_followed" / layout.REJECTS_FILE, encoding="utf-8")
        )
    }
    assert skipped == {
        "beach": (reasons.LINK_OUTSIDE_TREE, f"points to {library / 'beach'}"),
        "palace/linked.jpg": (
            reasons.LINK_OUTSIDE_TREE,
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
    assert checking.usable_cores(str(tmp_path)) == (expected or affinity)


def test_bundles_at_once_in_one_process_share_its_decode_threads(monkeypatch):
    """A runner may run many bundles at once in one worker process: they decode on the
    process's `decode_threads`, so pixels in flight are bounded per process, not per bundle."""
    import threading
    import time

    from imgtfx.components.image_example_gen.records import LabeledImage

    lock = threading.Lock()
    busy, most, workers = [0], [0], set()

    def check(record):
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
            workers.add(threading.current_thread().name)
        time.sleep(0.01)
        with lock:
            busy[0] -= 1
        return record.id

    options = ImageOptions(decode_threads=3)
    bundles = [
        [
            LabeledImage(tree.FoundFile("train", f"{b}/{i}.jpg", ""), f"{b}-{i}", "x")
            for i in range(40)
        ]
        for b in range(6)
    ]
    results = {}

    def bundle(b):
        results[b] = [r for _, r in checking.in_order(bundles[b], check, options.decode_threads)]

    threads = [threading.Thread(target=bundle, args=(b,)) for b in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[b] == [f"{b}-{i}" for i in range(40)] for b in range(6))  # in order
    assert most[0] == 3 and len(workers) == 3  # six bundles, three decodes at a time
