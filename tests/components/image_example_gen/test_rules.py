"""The converter's rules as the plain functions they are, with no Beam run: a file's label from
its folder, the labels CSV's join (each file's reason), and the coverage of every split by
every class. The whole executor runs in test_labels.py and test_splits.py."""

from __future__ import annotations

import unicodedata

import apache_beam as beam
from tfx.proto import example_gen_pb2

from imgtfx.components.examples import reasons
from imgtfx.components.examples.reasons import Outcome
from imgtfx.components.image_example_gen import labeling, labels_csv, splits
from imgtfx.components.image_example_gen.options import ImageOptions
from imgtfx.components.image_example_gen.records import LabeledImage, as_tuple
from imgtfx.components.image_example_gen.tree import FoundFile


def _found(path: str, uri: str | None = None) -> FoundFile:
    return FoundFile("", path, uri or f"/data/{path}")


def _sorted_out(outputs) -> tuple[list[LabeledImage], list[Outcome]]:
    """(records, outcomes) of a labelling function's outputs."""
    records, outcomes = [], []
    for output in outputs:
        if isinstance(output, beam.pvalue.TaggedOutput):
            assert output.tag == "outcomes"
            outcomes.append(output.value)
        else:
            records.append(output)
    return records, outcomes


def _reasons(outcomes: list[Outcome]) -> dict[str, str]:
    return {o.path: o.reason for o in outcomes}


def test_a_folder_names_the_label_at_its_level_or_the_file_is_rejected_with_why():
    def label(path, level=-1):
        records, outcomes = _sorted_out(labeling.label_from_folder(_found(path), level))
        return (records[0].id, records[0].label_name) if records else outcomes[0].reason

    assert label("train/cat/a.jpg") == ("a", "cat")  # the default: the file's own folder
    assert label("train/seoul/palace/b.jpg", level=1) == ("b", "seoul")
    assert label("a.jpg") == reasons.NO_LABEL_FOLDER  # at the top of the tree
    assert label("train/a.jpg", level=2) == reasons.NO_LABEL_FOLDER
    assert label("train/two\nlines/a.jpg") == reasons.UNPRINTABLE_LABEL
    assert label("train/ /b.jpg") == reasons.BLANK_LABEL
    assert label("train/tab\there/c.jpg") == reasons.UNPRINTABLE_LABEL


def _join(image_id: str, paths: list[str], labels: list[str]):
    files = [tuple(_found(p)) for p in paths]  # as the shuffle carries them
    element = (image_id, {"images": files, "labels": labels})
    return _sorted_out(labeling.join_csv(element))


def test_a_labels_csv_of_korean_ids_reads_whole_whatever_its_size_and_bom(tmp_path):
    """The contest's train.csv (88,102 ids `<landmark name>_<NNN>`, 2.5 MB) failed with
    'unexpected end of data': TensorFlow's text GFile decodes each 256 KiB read on its own, and
    a character cut by that boundary is no UTF-8. Excel's "CSV UTF-8" starts with a BOM."""
    rows = [(f"경복궁광화문_{i:05d}", str(i % 1049)) for i in range(30_000)]
    body = "".join(f"{image_id},{label}\n" for image_id, label in rows)
    for pad in range(3):  # a space before the first id (stripped) puts the cut inside a character
        data = ("\ufeffid,landmark_id\n" + " " * pad + body).encode("utf-8")
        if 0x80 <= data[256 * 1024] <= 0xBF:
            break
    assert 0x80 <= data[256 * 1024] <= 0xBF
    path = tmp_path / "train.csv"
    path.write_bytes(data)
    options = ImageOptions(labels_csv=str(path))
    assert labels_csv.labels_csv_columns(options) == ("id", "landmark_id")
    assert list(labels_csv.read_labels_csv(str(path), "id", "landmark_id")) == rows


def test_the_csv_join_labels_one_file_per_id_and_gives_every_other_its_reason():
    (record,), outcomes = _join("a1", ["x/a1.jpg"], ["10", "10"])  # one label, twice: one
    assert (record.file.path, record.id, record.label_name, outcomes) == (
        "x/a1.jpg",
        "a1",
        "10",
        [],
    )

    records, outcomes = _join("a1", ["x/a1.jpg", "y/a1.png"], ["10"])
    assert [r.file.path for r in records] == ["x/a1.jpg"]  # the first path keeps the id
    assert _reasons(outcomes) == {"y/a1.png": reasons.DUPLICATE_ID}

    cases = {
        "ghost": ([], ["3"], {"ghost": reasons.CSV_ID_WITHOUT_IMAGE}),
        "nolabel": (["x/nolabel.jpg"], [], {"x/nolabel.jpg": reasons.ID_NOT_IN_CSV}),
        "notes": (["notes.txt"], [], {"notes.txt": reasons.NOT_AN_IMAGE}),
        "conflict": (["x/c.jpg"], ["1", "2"], {"x/c.jpg": reasons.CONFLICTING_LABELS}),
        "blank": (["blank.jpg"], [" "], {"blank.jpg": reasons.BLANK_LABEL}),
        "newline": (["nl.jpg"], ["two\nlines"], {"nl.jpg": reasons.UNPRINTABLE_LABEL}),
    }  # fmt: skip
    for image_id, (paths, labels, expected) in cases.items():
        records, outcomes = _join(image_id, paths, labels)
        assert (records, _reasons(outcomes)) == ([], expected), image_id
    assert _join("ghost", [], ["3"])[1][0].status == reasons.CSV_ROW  # a row, not a file


def test_the_csv_join_keeps_one_of_the_nfc_and_nfd_spellings_of_a_path():
    nfc, nfd = (unicodedata.normalize(form, "남산타워") for form in ("NFC", "NFD"))
    files = [
        _found(f"train/{nfc}/x1.jpg", uri=f"/data/train/{nfd}/x1.jpg"),
        _found(f"train/{nfc}/x1.jpg", uri=f"/data/train/{nfc}/x1.jpg"),
    ]  # the walk gives both their NFC path; the URIs tell them apart
    element = ("x1", {"images": [tuple(f) for f in files], "labels": ["2"]})
    records, outcomes = _sorted_out(labeling.join_csv(element))
    assert [r.file.uri for r in records] == [min(f.uri for f in files)]
    assert _reasons(outcomes) == {f"train/{nfc}/x1.jpg": reasons.DUPLICATE_PATH}
    assert "after Unicode NFC" in outcomes[0].detail


TRAIN_EVAL = example_gen_pb2.SplitConfig(
    splits=[
        example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=4),
        example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
    ]
)


def _image(path: str, split: str, bucket: int, group: str = "", labels: int = 1):
    found = _found(path)
    return LabeledImage(found, path, "tower", split, bucket, group=group, group_labels=labels)


def _covered(*images: LabeledImage) -> dict[str, tuple[str, bool]]:
    """{path: (split, moved)} once coverage ran on one class's images."""
    covered = splits.cover_splits(("tower", [as_tuple(i) for i in images]), TRAIN_EVAL)
    return {r.file.path: (r.split, r.moved) for r in covered}


def test_coverage_moves_the_image_nearest_the_missing_split_and_no_other():
    # Buckets 0-3 are train's, 4 eval's: bucket 3 lies nearest eval.
    assert _covered(_image("a", "train", 0), _image("b", "train", 3), _image("c", "train", 1)) == {
        "a": ("train", False),
        "b": ("eval", True),
        "c": ("train", False),
    }
    # A class of one image is learned: it moves into train.
    assert _covered(_image("a", "eval", 4)) == {"a": ("train", True)}
    # A class with both splits stays as the hash put it.
    assert _covered(_image("a", "train", 0), _image("b", "eval", 4)) == {
        "a": ("train", False),
        "b": ("eval", False),
    }


def test_coverage_moves_a_group_of_copies_whole_and_splits_one_only_as_a_last_resort():
    group = [_image("g1", "train", 3, group="g1"), _image("g2", "train", 3, group="g1")]
    moved = _covered(*group, _image("a", "train", 0))
    assert moved == {"g1": ("eval", True), "g2": ("eval", True), "a": ("train", False)}
    # The class is one group of copies: one image leaves it, so the class is evaluated too.
    assert sorted(_covered(*group).values()) == [("eval", True), ("train", False)]
