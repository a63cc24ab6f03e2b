"""The walk of an image tree: every entry found or accounted for, links, ids and labels from
paths."""

from __future__ import annotations

import os

from imgtfx.components.examples import reasons
from imgtfx.components.examples.reasons import Outcome
from imgtfx.components.image_example_gen import labels_csv, tree
from imgtfx.components.image_example_gen.tree import FoundFile
from tests.helpers.images import encode, write


def test_ids_labels_and_unicode_names():
    nfd = "train/서울/경복궁/사진.jpg".encode().decode()
    import unicodedata

    nfd = unicodedata.normalize("NFD", nfd)
    assert tree.nfc(nfd) == unicodedata.normalize("NFC", nfd) != nfd
    assert tree.image_id("a/b/0abc.jpg") == "0abc"
    assert labels_csv.csv_id(" 0abc.JPG ") == "0abc"
    assert labels_csv.csv_id("v1.2") == "v1.2"  # not an image extension: kept
    assert tree.folder_label("train/seoul/palace/1.jpg", -1) == "palace"
    assert tree.folder_label("train/seoul/palace/1.jpg", 1) == "seoul"
    assert tree.folder_label("1.jpg", -1) is None


def test_walk_accounts_for_every_entry(tmp_path):
    root = tmp_path / "root"
    write(root / "a" / "x.jpg", encode())
    write(root / "a" / ".DS_Store", b"junk")
    write(root / "a" / "Thumbs.db", b"junk")
    write(root / ".hidden" / "y.jpg", encode())
    os.symlink(root / "a", root / "a" / "loop")  # a folder linking to itself
    os.symlink(root / "missing.jpg", root / "a" / "broken.jpg")
    os.symlink(root / "a" / "x.jpg", root / "a" / "alias.jpg")  # a second name for x.jpg
    entries = list(tree.walk("s", str(root), str(root)))
    found = {e.path for e in entries if isinstance(e, FoundFile)}
    outcomes = {e.path: (e.reason, e.detail) for e in entries if isinstance(e, Outcome)}
    assert found == {"a/x.jpg"}
    assert outcomes == {
        "a/.DS_Store": (reasons.HIDDEN_OR_SYSTEM, ""),
        "a/Thumbs.db": (reasons.HIDDEN_OR_SYSTEM, ""),
        ".hidden": (reasons.HIDDEN_OR_SYSTEM, ""),
        "a/loop": (reasons.LINK_INTO_TREE, "alias of a"),
        "a/alias.jpg": (reasons.LINK_INTO_TREE, "alias of a/x.jpg"),
        "a/broken.jpg": (reasons.BROKEN_SYMLINK, f"points to {root / 'missing.jpg'}"),
    }


def test_links_into_the_tree_are_aliases_listed_once(tmp_path):
    """Links to the image root, to an ancestor and to a sibling top folder (each top folder is
    walked on its own): every image is found exactly once, each link is skipped once."""
    root = tmp_path / "root"
    write(root / "seoul" / "palace" / "1.jpg", encode())
    write(root / "busan" / "beach" / "2.jpg", encode(seed=1))
    os.symlink(root, root / "seoul" / "palace" / "whole_tree")
    os.symlink(root / "seoul", root / "seoul" / "palace" / "up")
    os.symlink(root / "busan", root / "seoul" / "busan_too")
    os.symlink(root / "busan", root / "all_busan")  # a top folder that is a link
    entries = [
        e
        for top in ("all_busan", "busan", "seoul")
        for e in tree.walk("s", str(root), str(root / top))
    ]
    found = sorted(e.path for e in entries if isinstance(e, FoundFile))
    assert found == ["busan/beach/2.jpg", "seoul/palace/1.jpg"]
    skipped = {e.path: e.detail for e in entries if isinstance(e, Outcome)}
    assert skipped == {
        "all_busan": "alias of busan",
        "seoul/busan_too": "alias of busan",
        "seoul/palace/up": "alias of seoul",
        "seoul/palace/whole_tree": "alias of the image root",
    }
    assert {e.reason for e in entries if isinstance(e, Outcome)} == {reasons.LINK_INTO_TREE}


def test_links_that_leave_the_tree_are_followed_and_loops_there_reported(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    write(root / "a" / "x.jpg", encode())
    write(outside / "b" / "y.jpg", encode(seed=1))
    os.symlink(outside / "b", root / "a" / "more")
    os.symlink(outside / "b", outside / "b" / "again")  # a loop outside the root
    os.symlink(root / "a", outside / "b" / "home")  # back into the tree: an alias
    entries = list(tree.walk("s", str(root), str(root)))
    found = sorted(e.path for e in entries if isinstance(e, FoundFile))
    assert found == ["a/more/y.jpg", "a/x.jpg"]
    outcomes = {e.path: e.reason for e in entries if isinstance(e, Outcome)}
    assert outcomes == {
        "a/more/again": reasons.SYMLINK_LOOP,
        "a/more/home": reasons.LINK_INTO_TREE,
    }


def test_labels_csv_inside_the_tree_is_skipped_also_through_a_link(tmp_path):
    root = tmp_path / "root"
    write(root / "a" / "x.jpg", encode())
    write(root / "train.csv", b"id,label\nx,1\n")
    os.symlink(root / "train.csv", root / "a" / "labels.csv")
    ignore = frozenset({os.path.realpath(root / "train.csv")})
    entries = list(tree.walk("s", str(root), str(root), ignore))
    outcomes = {e.path: e.reason for e in entries if isinstance(e, Outcome)}
    assert outcomes == {
        "train.csv": reasons.LABELS_CSV_FILE,
        "a/labels.csv": reasons.LABELS_CSV_FILE,
    }
