"""One test per kind of bad or unusual input file, on the pure checking and walking rules."""

from __future__ import annotations

import os

import pytest

from components.image_example_gen import images
from components.image_example_gen.images import FoundFile, ImageInfo, Outcome
from tests.conftest import encode, write

MAX = 89_478_485


def check(data, max_pixels=MAX, transcode=True):
    return images.check_image(data, max_pixels, transcode)


@pytest.mark.parametrize(
    "fmt, mode, channels, kept_format",
    [
        ("JPEG", "RGB", 3, "jpeg"),
        ("JPEG", "L", 1, "jpeg"),
        ("JPEG", "CMYK", 4, "jpeg"),
        ("PNG", "RGBA", 4, "png"),
        ("PNG", "L", 1, "png"),
        ("PNG", "I;16", 1, "png"),
        ("PNG", "P", 3, "png"),
        ("GIF", "P", 3, "gif"),
        ("BMP", "RGB", 3, "bmp"),
    ],
)
def test_decodable_images_are_kept_untouched(fmt, mode, channels, kept_format):
    data = encode(fmt, size=(24, 20), mode=mode)
    info = check(data)
    assert isinstance(info, ImageInfo)
    assert info.data == data  # the original bytes, untouched
    assert (info.width, info.height, info.channels, info.format) == (24, 20, channels, kept_format)


@pytest.mark.parametrize("fmt", ["WEBP", "TIFF"])
def test_formats_tensorflow_cannot_decode_are_transcoded_to_png(fmt):
    info = check(encode(fmt, size=(24, 20)))
    assert isinstance(info, ImageInfo)
    assert info.format == "png" and info.source_format == fmt.lower()
    assert info.data.startswith(b"\x89PNG")
    import tensorflow as tf

    assert tf.io.decode_image(info.data, channels=3).shape == (20, 24, 3)


def test_one_bit_bmp_is_transcoded():
    info = check(encode("BMP", mode="1"))
    assert info.format == "png" and info.source_format == "bmp"


def test_unsupported_format_rejected_when_transcoding_is_off():
    outcome = check(encode("WEBP"), transcode=False)
    assert outcome.reason == images.UNSUPPORTED_FORMAT


def test_png_named_jpg_is_kept_as_png():
    info = check(encode("PNG"))  # the name plays no part: content decides
    assert info.format == "png"


def test_zero_byte_file():
    assert check(b"").reason == images.EMPTY_FILE


def test_not_an_image():
    assert check("사진 메모\n".encode()).reason == images.NOT_AN_IMAGE


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_is_found_by_decoding(fmt):
    data = encode(fmt, size=(200, 150), seed=3)
    outcome = check(data[: int(len(data) * 0.6)])
    assert isinstance(outcome, Outcome)
    assert outcome.reason == images.TRUNCATED_OR_CORRUPT


def test_decompression_bomb_rejected_before_decoding():
    outcome = check(encode("PNG", size=(300, 200)), max_pixels=300 * 200 - 1)
    assert outcome.reason == images.TOO_MANY_PIXELS
    assert "300x200" in outcome.detail


def test_ids_labels_and_unicode_names():
    nfd = "train/서울/경복궁/사진.jpg".encode().decode()
    import unicodedata

    nfd = unicodedata.normalize("NFD", nfd)
    assert images.nfc(nfd) == unicodedata.normalize("NFC", nfd) != nfd
    assert images.image_id("a/b/0abc.jpg") == "0abc"
    assert images.csv_id(" 0abc.JPG ") == "0abc"
    assert images.csv_id("v1.2") == "v1.2"  # not an image extension: kept
    assert images.folder_label("train/seoul/palace/1.jpg", -1) == "palace"
    assert images.folder_label("train/seoul/palace/1.jpg", 1) == "seoul"
    assert images.folder_label("1.jpg", -1) is None


def test_walk_accounts_for_every_entry(tmp_path):
    root = tmp_path / "root"
    write(root / "a" / "x.jpg", encode())
    write(root / "a" / ".DS_Store", b"junk")
    write(root / "a" / "Thumbs.db", b"junk")
    write(root / ".hidden" / "y.jpg", encode())
    os.symlink(root / "a", root / "a" / "loop")  # a folder linking to itself
    os.symlink(root / "missing.jpg", root / "a" / "broken.jpg")
    os.symlink(root / "a" / "x.jpg", root / "a" / "alias.jpg")  # a second name for x.jpg
    entries = list(images.walk("s", str(root), str(root)))
    found = {e.path for e in entries if isinstance(e, FoundFile)}
    outcomes = {e.path: (e.reason, e.detail) for e in entries if isinstance(e, Outcome)}
    assert found == {"a/x.jpg"}
    assert outcomes == {
        "a/.DS_Store": (images.HIDDEN_OR_SYSTEM, ""),
        "a/Thumbs.db": (images.HIDDEN_OR_SYSTEM, ""),
        ".hidden": (images.HIDDEN_OR_SYSTEM, ""),
        "a/loop": (images.LINK_INTO_TREE, "alias of a"),
        "a/alias.jpg": (images.LINK_INTO_TREE, "alias of a/x.jpg"),
        "a/broken.jpg": (images.BROKEN_SYMLINK, f"points to {root / 'missing.jpg'}"),
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
        for e in images.walk("s", str(root), str(root / top))
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
    assert {e.reason for e in entries if isinstance(e, Outcome)} == {images.LINK_INTO_TREE}


def test_links_that_leave_the_tree_are_followed_and_loops_there_reported(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    write(root / "a" / "x.jpg", encode())
    write(outside / "b" / "y.jpg", encode(seed=1))
    os.symlink(outside / "b", root / "a" / "more")
    os.symlink(outside / "b", outside / "b" / "again")  # a loop outside the root
    os.symlink(root / "a", outside / "b" / "home")  # back into the tree: an alias
    entries = list(images.walk("s", str(root), str(root)))
    found = sorted(e.path for e in entries if isinstance(e, FoundFile))
    assert found == ["a/more/y.jpg", "a/x.jpg"]
    outcomes = {e.path: e.reason for e in entries if isinstance(e, Outcome)}
    assert outcomes == {
        "a/more/again": images.SYMLINK_LOOP,
        "a/more/home": images.LINK_INTO_TREE,
    }


def test_labels_csv_inside_the_tree_is_skipped_also_through_a_link(tmp_path):
    root = tmp_path / "root"
    write(root / "a" / "x.jpg", encode())
    write(root / "train.csv", b"id,label\nx,1\n")
    os.symlink(root / "train.csv", root / "a" / "labels.csv")
    ignore = frozenset({os.path.realpath(root / "train.csv")})
    entries = list(images.walk("s", str(root), str(root), ignore))
    outcomes = {e.path: e.reason for e in entries if isinstance(e, Outcome)}
    assert outcomes == {"train.csv": images.LABELS_FILE, "a/labels.csv": images.LABELS_FILE}


def test_a_photo_that_cannot_be_turned_upright_is_a_reject_not_a_crash(monkeypatch):
    import io

    from tests.conftest import photo, with_orientation

    buffer = io.BytesIO()
    photo().save(buffer, "JPEG")
    data = with_orientation(buffer.getvalue(), 6)

    def broken(image):
        raise OSError("broken data stream")

    monkeypatch.setattr(images.ImageOps, "exif_transpose", broken)
    outcome = images.check_image(data, 10**8, transcode=True)
    assert isinstance(outcome, Outcome)
    assert outcome.reason == images.TRUNCATED_OR_CORRUPT
    assert "turning upright: OSError: broken data stream" in outcome.detail
