"""What training and serving decode is what the converter checked, format by format.

Each source file is built with PIL, run through check_image, and the bytes it keeps are decoded
with decode.decode_image (TensorFlow, the trainer's and serving's decoder). The reference is
PIL's upright RGB of the SOURCE file (Image.open, exif_transpose, convert("RGB")): alpha dropped,
not composited, as decode_image(channels=3) drops it. 16-bit sources are held to a correct 8-bit
reduction (round(v / 257)) within 1, since PIL's convert clips them and TensorFlow scales them.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from imgtfx.components import image_files
from imgtfx.components.examples import decode, reasons
from imgtfx.components.examples.reasons import Outcome
from imgtfx.components.image_files import ImageInfo
from tests.helpers.images import photo

SIZE = (40, 30)
JPEG_MEAN_TOLERANCE = 3  # two JPEG decoders (PIL's, TensorFlow's) differ by about 1


def noise(seed=0, size=SIZE) -> Image.Image:
    """Random RGB pixels: every value matters, so a lossless format must give them exactly."""
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8))


def with_alpha(image: Image.Image, seed=9) -> Image.Image:
    rng = np.random.default_rng(seed)
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.fromarray((rng.random(image.size[::-1]) * 255).astype(np.uint8)))
    return rgba


def save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def palette(image: Image.Image, colors=256) -> Image.Image:
    return image.convert("P", palette=Image.ADAPTIVE, colors=colors)


def gray16(seed=3) -> np.ndarray:
    return (np.random.default_rng(seed).random(SIZE[::-1]) * 65535).astype(np.uint16)


def png_rgb16(pixels: np.ndarray) -> bytes:
    """A 16-bit RGB PNG written by hand (PIL cannot write one)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    height, width, _ = pixels.shape
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


RGB16 = (np.random.default_rng(5).random((SIZE[1], SIZE[0], 3)) * 65535).astype(np.uint16)


def without_adobe_marker(jpeg: bytes) -> bytes:
    """The JPEG less its APP14 'Adobe' segment, as some non-Adobe tools write CMYK."""
    start = jpeg.index(b"\xff\xee")
    length = struct.unpack_from(">H", jpeg, start + 2)[0]
    return jpeg[:start] + jpeg[start + 2 + length :]


def gif_first_frame_offset(gif: bytes) -> bytes:
    """The GIF on a larger screen, its only frame placed at (5, 5): an 'optimized' GIF."""
    data = bytearray(gif)
    width, height = struct.unpack_from("<HH", data, 6)
    descriptor = data.index(b",\x00\x00\x00\x00", 13)
    struct.pack_into("<HH", data, 6, width + 10, height + 10)
    struct.pack_into("<HH", data, descriptor + 1, 5, 5)
    return bytes(data)


def mpo(*pictures: Image.Image, **options) -> bytes:
    """A multi-picture JPEG, as phones (gain maps) and stereo cameras write them."""
    return save(pictures[0], "MPO", save_all=True, append_images=list(pictures[1:]), **options)


def exif(orientation: int) -> bytes:
    tags = Image.Exif()
    tags[image_files.EXIF_ORIENTATION] = orientation
    return tags.tobytes()


def pil_rgb(data: bytes) -> np.ndarray:
    """The reference: PIL's upright RGB of a file."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    return np.asarray(image.convert("RGB")).astype(int)


def reduced_16bit(pixels: np.ndarray) -> np.ndarray:
    """A correct 8-bit reduction of 16-bit pixels, as RGB."""
    rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)
    return np.round(rgb / 257.0).astype(int)


def tf_rgb(data: bytes) -> np.ndarray:
    """What the trainer and the serving signature see."""
    return decode.decode_image(tf.constant(data)).numpy().astype(int)


# name: (source bytes, the 16-bit pixels it holds or None, the format check_image gives).
KEPT = {
    "jpeg_rgb": (lambda: save(photo(SIZE), "JPEG", quality=90), None, "jpeg"),
    "jpeg_progressive": (
        lambda: save(photo(SIZE), "JPEG", quality=90, progressive=True),
        None,
        "jpeg",
    ),
    "jpeg_gray": (lambda: save(photo(SIZE).convert("L"), "JPEG", quality=90), None, "jpeg"),
    "jpeg_cmyk_adobe": (lambda: save(photo(SIZE).convert("CMYK"), "JPEG"), None, "jpeg"),
    "mpo": (lambda: mpo(photo(SIZE), photo(SIZE, seed=1), quality=90), None, "jpeg"),
    "png_rgb": (lambda: save(noise(), "PNG"), None, "png"),
    "png_gray": (lambda: save(noise().convert("L"), "PNG"), None, "png"),
    "png_1bit": (lambda: save(noise().convert("1"), "PNG"), None, "png"),
    "png_16bit_gray": (lambda: save(Image.fromarray(gray16()), "PNG"), gray16(), "png"),
    "png_16bit_rgb": (lambda: png_rgb16(RGB16), RGB16, "png"),
    "png_palette": (lambda: save(palette(noise()), "PNG"), None, "png"),
    "png_palette_4bit": (lambda: save(palette(noise(), 16), "PNG", bits=4), None, "png"),
    "png_palette_transparency": (
        lambda: save(palette(noise()), "PNG", transparency=3),
        None,
        "png",
    ),
    "png_gray_alpha": (lambda: save(with_alpha(noise()).convert("LA"), "PNG"), None, "png"),
    "png_rgba": (lambda: save(with_alpha(noise()), "PNG"), None, "png"),
    "gif_palette": (lambda: save(palette(noise()), "GIF"), None, "gif"),
    "gif_animated": (
        lambda: save(
            palette(noise()),
            "GIF",
            save_all=True,
            append_images=[palette(noise(1)), palette(noise(2))],
            duration=100,
        ),
        None,
        "gif",
    ),
    "bmp_8bit_gray": (lambda: save(noise().convert("L"), "BMP"), None, "bmp"),
    "bmp_24bit": (lambda: save(noise(), "BMP"), None, "bmp"),
    "bmp_32bit": (lambda: save(with_alpha(noise()), "BMP"), None, "bmp"),
}

TRANSCODED = {
    "jpeg_cmyk_without_adobe_marker": (
        lambda: without_adobe_marker(save(photo(SIZE).convert("CMYK"), "JPEG", quality=95)),
        None,
        "jpeg",
    ),
    "gif_transparency": (lambda: save(palette(noise()), "GIF", transparency=3), None, "png"),
    "gif_first_frame_smaller": (
        lambda: gif_first_frame_offset(save(palette(noise()), "GIF")),
        None,
        "png",
    ),
    "bmp_1bit": (lambda: save(noise().convert("1"), "BMP"), None, "png"),
    "bmp_8bit_palette": (lambda: save(palette(noise()), "BMP"), None, "png"),
    "bmp_bytes_after_pixels": (lambda: save(noise(), "BMP") + b"\0\0", None, "png"),
    "webp": (lambda: save(noise(), "WEBP", lossless=True), None, "png"),
    "webp_alpha": (lambda: save(with_alpha(noise()), "WEBP", lossless=True), None, "png"),
    "tiff": (lambda: save(noise(), "TIFF"), None, "png"),
    "tiff_16bit_big_endian": (
        lambda: save(Image.frombytes("I;16B", SIZE, gray16().astype(">u2").tobytes()), "TIFF"),
        gray16(),
        "png",
    ),
    "png_exif_orientation": (lambda: save(noise(), "PNG", exif=exif(6)), None, "png"),
}


def assert_same_pixels(data: bytes, source: bytes, sixteen_bit, lossless: bool):
    reference = pil_rgb(source) if sixteen_bit is None else reduced_16bit(sixteen_bit)
    decoded = tf_rgb(data)
    assert decoded.shape == reference.shape
    difference = np.abs(decoded - reference)
    if not lossless:
        assert difference.mean() < JPEG_MEAN_TOLERANCE
    elif sixteen_bit is not None:
        assert difference.max() <= 1
    else:
        assert difference.max() == 0


@pytest.mark.parametrize("name", KEPT)
def test_kept_formats_decode_in_tensorflow_to_the_pixels_checked(name):
    build, sixteen_bit, kept_format = KEPT[name]
    source = build()
    info = image_files.check_image(source, 10**8, transcode=True)
    assert isinstance(info, ImageInfo)
    assert info.data == source and not info.transcoded  # kept as it is (an MPO too)
    assert info.format == kept_format
    assert_same_pixels(info.data, source, sixteen_bit, lossless=kept_format != "jpeg")


@pytest.mark.parametrize("name", TRANSCODED)
def test_what_tensorflow_misreads_is_transcoded_to_the_pixels_checked(name):
    build, sixteen_bit, new_format = TRANSCODED[name]
    source = build()
    info = image_files.check_image(source, 10**8, transcode=True)
    assert isinstance(info, ImageInfo)
    # counted in report.json: "transcoded", or "turned_upright" for a sideways PNG
    assert info.data != source and (info.transcoded != (info.orientation != 1))
    assert info.format == new_format
    assert info.source_format == Image.open(io.BytesIO(source)).format.lower()
    assert_same_pixels(info.data, source, sixteen_bit, lossless=new_format != "jpeg")


@pytest.mark.parametrize("name", TRANSCODED)
def test_what_is_transcoded_tensorflow_cannot_read_as_it_is(name):
    """The other half of the rule: nothing TensorFlow reads right is rewritten."""
    build, sixteen_bit, _ = TRANSCODED[name]
    source = build()
    reference = pil_rgb(source) if sixteen_bit is None else reduced_16bit(sixteen_bit)
    try:
        decoded = tf_rgb(source)
    except tf.errors.InvalidArgumentError:
        return
    assert decoded.shape != reference.shape or np.abs(decoded - reference).max() > 1


def test_an_mpo_photo_stays_its_jpeg_bytes():
    """An Ultra-HDR / gain-map photo: decode_jpeg reads its first picture, so it is not turned
    into a PNG several times its size."""
    first = photo((640, 480))
    source = mpo(first, photo((320, 240), seed=1), quality=85)
    info = image_files.check_image(source, 10**8, transcode=True)
    assert (info.format, info.source_format) == ("jpeg", "mpo")
    assert info.data == source and info.data.startswith(b"\xff\xd8")
    assert len(info.data) < len(save(first, "PNG")) / 2
    assert_same_pixels(info.data, source, None, lossless=False)


def test_a_sideways_mpo_is_turned_upright_as_jpeg():
    source = mpo(photo(SIZE), photo(SIZE, seed=1), quality=95, exif=exif(6))
    info = image_files.check_image(source, 10**8, transcode=True)
    assert (info.format, info.source_format, info.orientation) == ("jpeg", "mpo", 6)
    assert info.data.startswith(b"\xff\xd8")
    assert (info.width, info.height) == SIZE[::-1]
    assert_same_pixels(info.data, source, None, lossless=False)


def test_without_transcoding_a_misread_format_is_rejected_with_why():
    outcome = image_files.check_image(save(palette(noise()), "BMP"), 10**8, transcode=False)
    assert isinstance(outcome, Outcome)
    assert outcome.reason == reasons.UNSUPPORTED_FORMAT
    assert "palette indices" in outcome.detail


@pytest.mark.parametrize("name", ["jpeg_cmyk_without_adobe_marker", "png_exif_orientation"])
def test_without_transcoding_a_jpeg_or_png_is_still_rewritten_in_its_format(name):
    build, _, new_format = TRANSCODED[name]
    source = build()
    info = image_files.check_image(source, 10**8, transcode=False)
    assert isinstance(info, ImageInfo) and info.format == new_format
    assert_same_pixels(info.data, source, None, lossless=new_format == "png")
