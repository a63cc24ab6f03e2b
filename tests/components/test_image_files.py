"""One test per kind of bad or unusual image file, on the checks of components/image_files.py."""

from __future__ import annotations

import pytest

from imgtfx.components import image_files
from imgtfx.components.examples import reasons
from imgtfx.components.examples.reasons import Outcome
from imgtfx.components.image_files import ImageInfo
from tests.helpers.images import encode

MAX = 89_478_485


def check(data, max_pixels=MAX, transcode=True):
    return image_files.check_image(data, max_pixels, transcode)


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
    assert outcome.reason == reasons.UNSUPPORTED_FORMAT


def test_png_named_jpg_is_kept_as_png():
    info = check(encode("PNG"))  # the name plays no part: content decides
    assert info.format == "png"


def test_zero_byte_file():
    assert check(b"").reason == reasons.EMPTY_FILE


def test_not_an_image():
    assert check("사진 메모\n".encode()).reason == reasons.NOT_AN_IMAGE


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_is_found_by_decoding(fmt):
    data = encode(fmt, size=(200, 150), seed=3)
    outcome = check(data[: int(len(data) * 0.6)])
    assert isinstance(outcome, Outcome)
    assert outcome.reason == reasons.TRUNCATED_OR_CORRUPT


def test_decompression_bomb_rejected_before_decoding():
    outcome = check(encode("PNG", size=(300, 200)), max_pixels=300 * 200 - 1)
    assert outcome.reason == reasons.TOO_MANY_PIXELS
    assert "300x200" in outcome.detail


def test_a_photo_that_cannot_be_turned_upright_is_a_reject_not_a_crash(monkeypatch):
    import io

    from tests.helpers.images import photo, with_orientation

    buffer = io.BytesIO()
    photo().save(buffer, "JPEG")
    data = with_orientation(buffer.getvalue(), 6)

    def broken(image):
        raise OSError("broken data stream")

    monkeypatch.setattr(image_files.ImageOps, "exif_transpose", broken)
    outcome = image_files.check_image(data, 10**8, transcode=True)
    assert isinstance(outcome, Outcome)
    assert outcome.reason == reasons.TRUNCATED_OR_CORRUPT
    assert "turning upright: OSError: broken data stream" in outcome.detail
