"""Copies of one picture: found (recall), distinct photos left alone (false groups), every group
in one split, reported, kept out where asked; groups that never chain; stable as images come.

The trees are bench/copies_data.py's: contest-shaped photos with exact and near copies planted
in the same landmark, under another landmark and in the other split folder.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil

import apache_beam as beam
import pytest

from bench.copies_data import measure, write_planted_tree, write_tinted_tree
from imgtfx.components.examples import layout, reasons, report_warnings
from imgtfx.components.examples.conversion_report import read_report
from imgtfx.components.image_example_gen import bands, duplicates, duplicates_jsonl
from imgtfx.components.image_example_gen.options import ImageOptions, split_folders_config
from tests.helpers.conversions import rejects_of, run_do

SIZE = (320, 180)


def _lines(out) -> list[dict]:
    with open(os.path.join(out, layout.DUPLICATES_FILE), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("planted"))
    tree = write_planted_tree(root, num_classes=30, photos_per_class=5, copies=120, size=SIZE)
    with open(tree["manifest"], encoding="utf-8") as f:
        manifest = json.load(f)
    out = os.path.join(root, "out")
    options = ImageOptions(labels_csv=tree["labels_csv"], max_reject_fraction=0.5)
    run_do(tree["images"], out, options, input_config=split_folders_config(["train", "eval"]))
    return tree, manifest, out


def test_planted_copies_are_found_and_distinct_photos_left_alone(planted, capsys):
    _, manifest, out = planted
    result = measure(_lines(out), manifest)
    with capsys.disabled():
        print(
            f"\ncopies found: recall {result['recall']:.3f} of {result['planted']} planted "
            f"(missed: {[m['kind'] for m in result['missed']]}); false groups "
            f"{result['false_groups']:.3%} of {result['distinct']} distinct photos"
        )
    assert result["recall"] >= 0.95
    assert result["false_groups"] <= 0.01


def test_every_group_under_two_labels_and_across_split_folders_is_reported(planted):
    _, manifest, out = planted
    lines = _lines(out)
    report = read_report(out)
    cross = [line for line in lines if len(set(line["labels"])) > 1]
    straddling = [line for line in lines if duplicates_jsonl.is_straddling(line)]
    assert report.duplicate_groups == len(lines) > 0
    assert report.duplicate_images == sum(len(line["paths"]) for line in lines)
    assert report.cross_label_groups == len(cross) > 0
    assert report.straddling_groups == len(straddling) > 0  # the user's split is kept
    group_of = {path: i for i, line in enumerate(lines) for path in line["paths"]}
    for plant in manifest["planted"]:
        if plant["copy"] in group_of and plant["place"] == "other_class":
            assert len(set(lines[group_of[plant["copy"]]]["labels"])) > 1, plant
        if plant["copy"] in group_of and plant["place"] == "other_split":
            assert duplicates_jsonl.is_straddling(lines[group_of[plant["copy"]]]), plant
    said = report_warnings.copy_warnings(report)
    assert said[0].startswith(f"copies: {len(lines):,} groups")
    assert any("under two or more labels" in line for line in said)
    assert any("more than one split" in line for line in said)
    for line in lines:  # every member within the threshold of the first, never a chain
        assert line["distances"][0] == 0 and max(line["distances"]) <= duplicates.THRESHOLD
        assert line["max_distance"] == max(line["distances"])


@pytest.fixture(scope="module")
def hash_split(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("hashsplit"))
    tree = write_planted_tree(
        root, num_classes=30, photos_per_class=5, copies=120, size=SIZE, split_folders=False
    )
    return tree


def test_the_hash_split_keeps_each_group_in_one_split(hash_split, tmp_path):
    out = tmp_path / "out"
    run_do(hash_split["images"], out, ImageOptions(labels_csv=hash_split["labels_csv"]))
    lines = _lines(out)
    report = read_report(str(out))
    assert lines and report.straddling_groups == 0
    assert all(len(set(line["splits"])) == 1 for line in lines)
    assert report.classes_without_examples == {"train": [], "eval": []}
    assert report.reconciled and report.examples == report.files_seen


def test_keep_one_skips_the_exact_copies_and_the_option_rejects_conflicting_ones(
    hash_split, tmp_path
):
    out = tmp_path / "keep"
    options = ImageOptions(labels_csv=hash_split["labels_csv"], dedupe="keep-one")
    run_do(hash_split["images"], out, options)
    lines = _lines(out)
    report = read_report(str(out))
    skipped = [
        (path, split)
        for line in lines
        for path, split, d in zip(line["paths"], line["splits"], line["distances"], strict=True)
        if split.startswith("skipped")
    ]
    assert skipped and report.skipped_by_reason == {reasons.DUPLICATE_IMAGE: len(skipped)}
    assert all(split == "skipped: duplicate_image" for _, split in skipped)
    assert report.reconciled
    kept = rejects_of(out)
    assert {path for path, _ in skipped} == {p for p, r in kept.items() if r == "duplicate_image"}

    out = tmp_path / "conflicting"
    options = ImageOptions(
        labels_csv=hash_split["labels_csv"],
        reject_conflicting_duplicates=True,
        max_reject_fraction=0.9,
    )
    run_do(hash_split["images"], out, options)
    lines = _lines(out)
    cross = [line for line in lines if len(set(line["labels"])) > 1]
    rejected = {p for p, r in rejects_of(out).items() if r == reasons.CONFLICTING_LABELS_DUPLICATE}
    assert cross and rejected == {path for line in cross for path in line["paths"]}


def test_dedupe_off_groups_nothing_and_still_writes_the_file(tmp_path):
    root = str(tmp_path / "tree")
    tree = write_planted_tree(root, num_classes=6, photos_per_class=3, copies=12, size=SIZE)
    out = tmp_path / "out"
    options = ImageOptions(labels_csv=tree["labels_csv"], dedupe="off")
    run_do(tree["images"], out, options)
    report = read_report(str(out))
    assert _lines(out) == [] and report.duplicate_groups == 0
    assert report.examples == report.files_seen == 6 * 3 + 12
    assert report_warnings.copy_warnings(report) == []


def test_groups_never_chain():
    """a~b and b~c, not a~c: c starts its own group; b joins a (the earlier leader)."""
    image = duplicates.Image
    a, b, c = (image(k, (k, k), "x", b"", 1) for k in "abc")
    near = duplicates.THRESHOLD
    groups = duplicates.leader_groups(
        [a, b, c], {"a": [(b, near)], "b": [(a, near), (c, 3)], "c": [(b, 3)]}
    )
    assert set(groups) == {"a", "b"} and groups["b"].representative == "a"
    assert groups["a"].distance == 0 and groups["b"].distance == near


def test_exact_copies_collapse_to_their_head_and_follow_it_into_its_group(tmp_path):
    """Every photo a repeat of one of two shots (shot A under two labels, shot B alone) and a
    near copy of A: A's 40 repeats band as one image and join A's near group, B's repeats form
    a group of exact copies with B's earliest as representative; nothing else is grouped."""
    from apache_beam.testing.util import assert_that, equal_to

    image = duplicates.Image
    shot_a, shot_b, near_a = bytes(29), b"\xf0" * 29, bytes(28) + b"\x03"  # near_a: 2 bits
    images = [image(f"a{i:02d}", (f"a{i:02d}", ""), "x" if i < 30 else "y", shot_a, 1)
              for i in range(40)]  # fmt: skip
    images += [image(f"b{i:02d}", (f"b{i:02d}", ""), "z", shot_b, 2) for i in range(20)]
    images += [image("a~near", ("a~near", ""), "x", near_a, 3), image("lone", ("c", ""), "x",
               b"\x0f" * 29, 4)]  # fmt: skip
    expected = [(f"a{i:02d}", ("a00", "a00", 2, 0, True)) for i in range(40)]
    expected += [("a~near", ("a00", "a00", 2, 2, False))]
    expected += [(f"b{i:02d}", ("b00", "b00", 1, 0, True)) for i in range(20)]
    with beam.Pipeline() as pipeline:
        found = (
            pipeline
            | beam.Create([tuple(i) for i in reversed(images)])
            | duplicates.GroupCopies(str(tmp_path / "bands"))
        )
        assert_that(found, equal_to(expected))
        heads = (
            pipeline
            | "Again" >> beam.Create([tuple(i) for i in images])
            | beam.Map(lambda i: ((i[4], i[3]), i))
            | beam.GroupByKey()
            | beam.FlatMap(duplicates.exact_sets).with_outputs("followers", "heads", main="i")
        )
        assert_that(  # only heads are banded: three shots and the lone photo
            heads.i | beam.Map(lambda i: (i[0], i[6])),
            equal_to([("a00", ("y",)), ("b00", ()), ("a~near", ()), ("lone", ())]),
            label="Banded",
        )
    # Two entries a head in the band files, not one per photo.
    written = sum(os.path.getsize(tmp_path / "bands" / f) for f in os.listdir(tmp_path / "bands"))
    assert written == 39 * bands.BANDS * 4


def _images():
    image = duplicates.Image
    a, b = "train/서울/경복궁/a.jpg", "train/서울/경복궁/b.jpg"
    return [
        image(a, ("1001", a), "경복궁", bytes(29), 2**64 - 1),
        image(b, ("1002", b), "경복궁", bytes(28) + b"\x07", 0),  # 3 bits from a
        image("c.jpg", ("", "c.jpg"), "7", b"\xff" * 29, 5),
    ]


def test_band_entries_travel_packed_and_pairs_resolve_to_their_images(tmp_path):
    """The band entries (ids and fingerprints) are packed bytes in one file per bundle, and
    what the band shuffle carries is only where each part lies (the local runner holds no
    tuple per image and band, nor the entries); the near pairs found there resolve to their
    images, and only the images within the threshold are neighbours."""
    images = _images()
    gather = bands.GatherBands(str(tmp_path / "bands"))
    gather.start_bundle()
    assert list(itertools.chain.from_iterable(gather.process(tuple(i)) for i in images)) == []
    shuffled = {}
    for windowed in gather.finish_bundle():
        key, place = windowed.value
        path, _, length = place
        assert os.path.dirname(path) == str(tmp_path / "bands") and length % 39 == 0
        shuffled.setdefault(key, []).append(place)
    (written,) = os.listdir(tmp_path / "bands")  # one file for the bundle
    assert os.path.getsize(tmp_path / "bands" / written) == 39 * bands.BANDS * len(images)
    assert len(shuffled) >= bands.BANDS  # each band at least one key
    pairs = {pair for element in shuffled.items() for pair in bands.route_pairs(element)}
    a, b = (bands.image_id(i.key) for i in images[:2])
    assert pairs == {(a, (b, 3)), (b, (a, 3))}
    ids = {bands.image_id(i.key): tuple(i) for i in images}
    # Each pair once an image, however many bands and chunks it met in.
    distinct = bands.DistinctPairs()
    asked = {}
    for own, pair in [*pairs, *pairs]:  # as from two bands
        asked[own] = distinct.add_input(asked.get(own, distinct.create_accumulator()), pair)
    asked = {own: distinct.extract_output(found) for own, found in asked.items()}
    assert asked == {a: [(b, 3)], b: [(a, 3)]}
    offers = [
        offer
        for own, image in ids.items()
        for offer in duplicates.offered((own, {"image": [image], "asked": [asked.get(own, [])]}))
    ]
    found = {own: [p for k, p in offers if k == own] for own in ids}
    neighbours = [
        n for own, image in ids.items()
        for n in duplicates.neighbours_of((own, {"image": [image], "found": [found[own]]}))
    ]  # fmt: skip
    assert sorted(neighbours) == sorted(
        [(tuple(images[0]), [(tuple(images[1]), 3)]), (tuple(images[1]), [(tuple(images[0]), 3)])]
    )


def test_two_images_sharing_an_id_are_measured_again_and_not_grouped():
    """An id collision (two keys, one 8-byte id) brings a far image along as a candidate; the
    distance measured on the images themselves leaves it out."""
    near, _, far = _images()
    twin = bands.image_id(near.key)
    joined = {"image": [tuple(near)], "found": [[(tuple(far), 0), (tuple(near), 0)]]}
    assert list(duplicates.neighbours_of((twin, joined))) == []


def test_an_image_is_offered_only_its_earliest_neighbours_whatever_the_bundles():
    """On a tree of near-identical photos every photo has thousands of near neighbours: the
    join gets the MAX_NEIGHBOURS earliest (and the spares), each once, the same in any order
    of arrival and however Beam splits them into accumulators."""
    image = duplicates.Image
    offers = [
        (tuple(image(f"p{i:03d}.jpg", (f"{i:03d}", f"p{i:03d}.jpg"), "x", bytes(29), i)), i % 7)
        for i in range(200)
    ]
    combine = duplicates.EarliestOffers()
    kept = duplicates.MAX_NEIGHBOURS + duplicates.SPARE_OFFERS
    expected = offers[:kept]
    for order in (offers, offers[::-1], offers[1::2] + offers[::2] + offers[:50]):
        parts = [order[k::3] for k in range(3)]  # three bundles' accumulators
        accumulators = []
        for part in parts:
            accumulator = combine.create_accumulator()
            for offer in part:
                accumulator = combine.add_input(accumulator, offer)
            accumulators.append(accumulator)
            assert len(accumulator) <= 4 * kept  # bounded while it gathers
        merged = combine.merge_accumulators(accumulators)
        assert combine.extract_output(merged) == expected


def test_a_tree_of_tinted_crops_still_trains_and_evaluates_every_class(tmp_path):
    """Classes that are tints of three shots: a fingerprint without the tint (chroma signs
    are unchanged by a colour cast) puts most photos of every class within a few bits. Groups
    stay bounded (each member within THRESHOLD of its first), and every class is learned and
    evaluated: where no whole group can cover a split, one photo leaves its group, and the
    group is reported as straddling."""
    tree = write_tinted_tree(str(tmp_path / "tree"), num_classes=40, photos_per_class=4, size=SIZE)
    out = tmp_path / "out"
    run_do(tree["images"], out)
    report = read_report(str(out))
    lines = _lines(out)
    assert report.classes_without_examples == {"train": [], "eval": []}
    assert report.cross_label_groups > 0  # the case this tree makes
    assert all(max(line["distances"]) <= duplicates.THRESHOLD for line in lines)
    assert report.straddling_groups == sum(map(duplicates_jsonl.is_straddling, lines))
    assert os.path.getsize(out / layout.REPORT_FILE) < 100_000  # capped examples only


def test_adding_images_moves_only_their_copies_and_what_coverage_moves(tmp_path):
    root = str(tmp_path / "tree")
    tree = write_planted_tree(root, num_classes=12, photos_per_class=5, copies=0, size=SIZE,
                              split_folders=False)  # fmt: skip
    options = ImageOptions(labels_csv=tree["labels_csv"])
    run_do(tree["images"], tmp_path / "a", options)
    before = _splits(tmp_path / "a")
    more = write_planted_tree(str(tmp_path / "more"), num_classes=12, photos_per_class=5,
                              copies=30, size=SIZE, split_folders=False, seed=1,
                              first_photo=5)  # fmt: skip
    for folder, _, names in os.walk(more["images"]):  # new photos and copies of theirs
        for name in names:
            rel = os.path.relpath(os.path.join(folder, name), more["images"])
            target = os.path.join(tree["images"], rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(os.path.join(folder, name), target)
    with open(more["labels_csv"], encoding="utf-8") as f:
        rows = f.read().split("\n", 1)[1]
    with open(tree["labels_csv"], "a", encoding="utf-8") as f:
        f.write(rows)
    run_do(tree["images"], tmp_path / "b", options)
    after = _splits(tmp_path / "b")
    plain = dataclasses.replace(options, cover_every_split=False)
    run_do(tree["images"], tmp_path / "hash", plain)
    by_hash = _splits(tmp_path / "hash")
    changed = {p for p in before if before[p] != after[p]}
    grouped = {p for line in _lines(tmp_path / "b") for p in line["paths"]}
    # The old photos are not copies of the new ones: none joined a group, and one changed its
    # split only where coverage moved it, before (it goes back now) or now.
    assert not changed & grouped
    assert all(before[p] != by_hash[p] or after[p] != by_hash[p] for p in changed)


def _splits(out) -> dict[str, str]:
    from tests.helpers.conversions import ids_by_split

    return {path: split for split, paths in ids_by_split(out).items() for path in paths}


def test_a_group_line_lists_its_first_image_first_and_why_a_copy_was_kept_out():
    """The line of one group, from plan records as the plan holds them: a kept-out copy's
    split says why (kept_out), and it does not make the group straddle."""
    from imgtfx.components.image_example_gen.records import LabeledImage
    from imgtfx.components.image_example_gen.tree import FoundFile

    def record(path, split, distance, exact, kept_out=""):
        found = FoundFile("", path, f"/data/{path}")
        return LabeledImage(found, path, "tower", split, group="b.jpg", distance=distance,
                            exact=exact, kept_out=kept_out)  # fmt: skip

    records = [
        record("c.jpg", "train", 0, True, kept_out="skipped: duplicate_image"),
        record("b.jpg", "train", 0, True),
        record("a.jpg", "eval", 3, False),
    ]
    group, _ = duplicates_jsonl.member(records[0])
    line = duplicates_jsonl.group_line((group, [duplicates_jsonl.member(r)[1] for r in records]))
    assert line == {
        "kind": "near",
        "paths": ["b.jpg", "a.jpg", "c.jpg"],
        "labels": ["tower"] * 3,
        "splits": ["train", "eval", "skipped: duplicate_image"],
        "distances": [0, 3, 0],
        "max_distance": 3,
    }
    assert duplicates_jsonl.is_straddling(line)
    line["splits"][1] = "rejected: conflicting_labels_duplicate"
    assert not duplicates_jsonl.is_straddling(line)
    line["splits"][1] = "test"  # a split the user named, ':' free or not, is a split
    assert duplicates_jsonl.is_straddling(line)
