"""Image files: which names are never the dataset's, whether a file's bytes can become an
example, and what identifies its picture (a perceptual fingerprint and an exact digest, computed
from the pixels the check decoded anyway). The rules ImageExampleGen applies to every file of a
tree and `imgtfx predict` to every file it is given; pure functions over bytes and names, no
Beam or TFX.

Not the Examples contract (components/examples): no stage after the converter reads files, so
an edit here reruns ImageExampleGen only.
"""

from __future__ import annotations

import functools
import io
import struct
import warnings
from typing import NamedTuple

import google_crc32c
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from imgtfx.components.examples.reasons import (
    EMPTY_FILE,
    NOT_AN_IMAGE,
    REJECTED,
    TOO_MANY_PIXELS,
    TRUNCATED_OR_CORRUPT,
    UNSUPPORTED_FORMAT,
    Outcome,
)

# Formats decode.decode_image (TensorFlow) reads, kept as they are unless _tf_misreads finds a
# variant it decodes to other pixels; anything else PIL can open is transcoded. An MPO (phone
# gain-map photos, many cameras) is a JPEG followed by more pictures, which decode_jpeg ignores.
TF_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "GIF": "gif", "BMP": "bmp"}
# Names that operating systems and photo tools leave in folders; never images of the dataset.
SYSTEM_NAMES = {"thumbs.db", "ehthumbs.db", "desktop.ini", "__macosx", "@eadir", "$recycle.bin"}
IMAGE_EXTENSIONS = {
    *(".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".png", ".gif", ".bmp", ".dib", ".webp"),
    *(".tif", ".tiff", ".heic", ".heif", ".avif"),
}
# EXIF tag 0x0112: how the stored pixels must be turned to show the picture upright (1: as is).
EXIF_ORIENTATION = 0x0112
# Quality of a JPEG re-encoded after turning it upright; high, as it is encoded a second time.
UPRIGHT_JPEG_QUALITY = 95


class ImageInfo(NamedTuple):
    """What an image check learned; `data` is what goes into the example."""

    data: bytes
    format: str
    source_format: str
    height: int
    width: int
    channels: int
    orientation: int = 1  # the EXIF orientation the file had; `data` is upright either way
    transcoded: bool = False  # re-encoded so that TensorFlow reads it right (not for orientation)
    fingerprint: bytes = b""  # fingerprint(): near copies are a few bits apart
    digest: int = 0  # exact_digest(): equal for copies of the same image data


# The perceptual fingerprint: the signs of the lowest DCT frequencies (DC left out) of the
# upright picture, in YCbCr: 99 of luma (u, v < 10) and 63 of each chroma channel (u, v < 8);
# a picture without colour, whose chroma signs would all be alike, gets the next 126 luma
# frequencies instead, and the last bit says which (226 bits). Frequency (u, v) is u half
# cycles down the picture and v across, whatever its size, so the DCT is taken of the pixels
# the check decoded (the 1/8-scale JPEG) as they are, no thumbnail made. Signs around zero,
# not the median, so brightness (DC) and contrast (a scale) change no bit. Chroma is in it:
# distinct contest-shaped photos of one landmark (bench/contest_data.py) share their luma
# layout, and a 64-bit luma hash puts some of them within the grouping threshold's share of
# its bits; these bits put none of them within it (tests/components/test_fingerprints.py).
FINGERPRINT_BITS = 226
FINGERPRINT_SIDE = 64  # pictures larger than twice this are box-reduced first
DRAFT_SIDE = 2 * 16  # a JPEG is drafted no smaller: the finest frequency is 16 half cycles
_LUMA, _CHROMA, _FINE = 10, 8, 16
# Chroma whose strongest low frequency moves less than this (levels of 0-255, averaged over
# the picture) is no colour: a gray picture's JPEG noise averages out far below it.
COLOUR_LEVEL = 1.0
_PIXEL_MODES = ("RGB", "L", "CMYK", "YCbCr", "RGBA", "LA")
# JFIF's RGB -> YCbCr, without its offsets (they move DC only).
_YCBCR = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
    np.float32,
)
_COLOUR_TAKEN = np.array(
    [(u * _LUMA + v) * 3 + channel
     for channel, side in ((0, _LUMA), (1, _CHROMA), (2, _CHROMA))
     for u in range(side) for v in range(side) if u or v]
)  # fmt: skip  # indices into the (u, v, channel) coefficients of the coarse block
_FINER = sorted(
    ((u, v) for u in range(_FINE) for v in range(_FINE) if u >= _LUMA or v >= _LUMA),
    key=lambda uv: (uv[0] + uv[1], uv[0]),
)[: 2 * (_CHROMA * _CHROMA - 1)]
_GRAY_TAKEN = np.array(
    [u * _FINE + v for u in range(_LUMA) for v in range(_LUMA) if u or v]
    + [u * _FINE + v for u, v in _FINER]
)  # indices into the (u, v) luma coefficients of the fine block


@functools.lru_cache(maxsize=256)
def _basis(n: int, k: int = _FINE) -> np.ndarray:
    """DCT-II rows of the first k frequencies over n samples, divided by n, so that a
    coefficient is in levels averaged over the picture, whatever its size."""
    x = np.arange(n)
    return (np.cos(np.pi * (2 * x[None, :] + 1) * np.arange(k)[:, None] / (2 * n)) / n).astype(
        np.float32
    )


def fingerprint(image: Image.Image) -> bytes:
    """The perceptual fingerprint of an upright picture (FINGERPRINT_BITS bits, as bytes):
    copies re-encoded, resized, slightly cropped, or with brightness or contrast nudged lie a
    few bits apart (hamming). Two small matrix products over the pixels the check decoded:
    small beside the 1/8-scale JPEG decode itself (bench/methods.py measures it)."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        image = Image.fromarray((np.asarray(image, np.float32) / 257).clip(0, 255).astype(np.uint8))
    if image.mode not in _PIXEL_MODES:
        image = image.convert("RGB")  # palettes, 1-bit
    factor = min(image.size) // FINGERPRINT_SIDE
    if factor > 1:  # a full-size picture (not a JPEG's draft): fewer pixels, the same lows
        image = image.reduce(factor)
    if image.mode != "RGB":
        image = image.convert("RGB")  # gray, CMYK; alpha dropped, as TensorFlow drops it
    width, height = image.size
    rgb = np.frombuffer(image.tobytes(), np.uint8).reshape(height, width * 3).astype(np.float32)
    rows, columns = _basis(height), _basis(width)
    down = (rows[:_LUMA] @ rgb).reshape(_LUMA, width, 3).transpose(0, 2, 1)  # (u, c, x)
    coarse = (down @ columns[:_LUMA].T).transpose(0, 2, 1) @ _YCBCR.T  # (u, v, YCbCr)
    chroma = np.abs(coarse[:_CHROMA, :_CHROMA, 1:])
    chroma[0, 0] = 0
    coloured = bool(chroma.max() >= COLOUR_LEVEL)
    if coloured:
        bits = coarse.ravel().take(_COLOUR_TAKEN) > 0
    else:
        luma = rgb.reshape(height, width, 3) @ _YCBCR[0]
        bits = (rows @ luma @ columns.T).ravel().take(_GRAY_TAKEN) > 0
    return np.packbits(np.append(bits, coloured)).tobytes()


def hamming(a: bytes, b: bytes) -> int:
    """Bits that differ between two fingerprints."""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


def exact_digest(data: bytes, image: Image.Image | None = None) -> int:
    """A 64-bit digest of the image data: equal for copies of one picture under any name and
    with any metadata. For a JPEG, the CRC32C and length of its bytes without APPn and COM
    segments (EXIF, thumbnails, comments): the same coefficients, so the same pixels. For other
    formats, of the decoded pixels of `image` (a PNG saved again at another compression is the
    same picture). Exact copies have equal fingerprints too: grouping asks for both."""
    if image is None or data[:2] == b"\xff\xd8":
        pieces = _jpeg_image_data(data) if data[:2] == b"\xff\xd8" else [data]
    else:
        pieces = [f"{image.mode}{image.size}".encode(), image.tobytes()]
    crc, length = 0, 0
    for piece in pieces:
        crc = google_crc32c.extend(crc, piece)
        length += len(piece)
    return crc << 32 | length & 0xFFFFFFFF


_STANDALONE = {0x01, *range(0xD0, 0xD9)}  # TEM, RSTn, SOI: markers without a length


def _jpeg_image_data(data: bytes) -> list[bytes]:
    """The segments of a JPEG that make its pixels (tables, frame, scans), APPn and COM left
    out; the whole file where the markers cannot be followed."""
    pieces, i = [], 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if marker == 0xDA:  # start of scan: the entropy-coded data and the rest of the file
            pieces.append(data[i:])
            return pieces
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            pieces.append(data[i:end])
        i = end
    return [data]


def identified(info: ImageInfo, image: Image.Image) -> ImageInfo:
    """`info` with the fingerprint and digest of its picture (`image`: its upright pixels)."""
    lossless = None if info.format == "jpeg" else image
    return info._replace(fingerprint=fingerprint(image), digest=exact_digest(info.data, lossless))


def is_hidden_or_system(name: str) -> bool:
    """The one skip rule for names, of every walk (local and remote, any depth) and of
    `imgtfx predict`'s folders: dot files and what systems and photo tools leave behind."""
    return name.startswith(".") or name.lower() in SYSTEM_NAMES


def read_error(error: Exception) -> str:
    """What the file system said: an OSError's text, or a TensorFlow file system error's class
    and message (remote reads raise NotFoundError, PermissionDeniedError, ...)."""
    message = getattr(error, "message", None)
    if message is None:
        return str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def read_bytes(uri: str) -> bytes:
    """The bytes of a local file or of a URI any tf.io.gfile file system reads."""
    if "://" in uri:
        import tensorflow as tf

        with tf.io.gfile.GFile(uri, "rb") as f:
            return f.read()
    with open(uri, "rb") as f:
        return f.read()


def _channels(image: Image.Image) -> int:
    if image.mode == "P":  # palette images decode to RGB, or RGBA with transparency
        return 4 if "transparency" in image.info else 3
    return len(image.getbands())


def _tf_misreads(image: Image.Image, data: bytes) -> str | None:
    """Why decode.decode_image, the trainer's and serving's decoder, would not see the pixels
    the converter checked in `data`; None when it sees them, so the bytes are kept as they are.

    The pixels checked are PIL's upright RGB (Image.open, ImageOps.exif_transpose,
    convert("RGB")). Alpha is dropped, not composited, as decode_image(channels=3) drops it. A
    16-bit PNG is held to a correct 8-bit reduction, within 1: TensorFlow scales it, where PIL's
    convert would clip it. tests/components/image_example_gen/test_formats.py holds each rule
    to TensorFlow. Only headers PIL has parsed are read: a plain JPEG costs nothing more.
    """
    if image.format not in TF_FORMATS:
        return f"TensorFlow cannot decode {(image.format or 'unknown').lower()}"
    if image.format in ("JPEG", "MPO"):
        # PIL reads every CMYK JPEG as Adobe writes it (inverted); TensorFlow only one that
        # carries Adobe's marker.
        if image.mode == "CMYK" and "adobe" not in image.info:
            return "TensorFlow reads a CMYK JPEG without Adobe's marker as not inverted"
        return None
    if image.format == "GIF":
        if "transparency" in image.info:  # PIL keeps their palette colour
            return "TensorFlow decodes a GIF's transparent pixels as black"
        if getattr(image, "dispose_extent", None) != (0, 0, *struct.unpack_from("<HH", data, 6)):
            return "TensorFlow misreads a GIF whose first frame does not fill the picture"
        return None
    if image.format == "BMP":
        return _bmp_misread(image, data)
    return None


def _bmp_misread(image: Image.Image, data: bytes) -> str | None:
    """TensorFlow reads an uncompressed 8, 24 or 32-bit BMP whose file ends where its pixels
    end, taking an 8-bit pixel as a gray level whatever the palette says; it fails on or
    misreads any other BMP."""
    if len(data) < 34 or struct.unpack_from("<I", data, 14)[0] < 40:
        return "TensorFlow cannot decode a BMP with an OS/2 header"
    offset, _, width, height, _, bits, compression = struct.unpack_from("<IIiiHHI", data, 10)
    if bits not in (8, 24, 32) or compression != 0:
        return f"TensorFlow cannot decode {'compressed' if compression else f'{bits}-bit'} BMPs"
    if bits == 8 and image.mode != "L":  # PIL reads a gray-ramp palette as L: index = gray level
        return "TensorFlow reads an 8-bit palette BMP as its palette indices"
    if len(data) != offset + (width * bits // 8 + 3) // 4 * 4 * abs(height):
        return "TensorFlow cannot decode a BMP whose file does not end with its pixels"
    return None


def check_image(data: bytes, max_pixels: int, transcode: bool) -> ImageInfo | Outcome:
    """Decodes `data` fully and says whether (and as what) it can become an example.

    Returns an ImageInfo, or an Outcome whose `path` is empty (the caller knows the path).
    The bytes are kept as they are only when the trainer's decoder sees the pixels checked here
    (see _tf_misreads); a JPEG it would misread is re-encoded as JPEG, anything else as PNG.
    JPEGs are decoded at 1/8 scale (a small one at no less than DRAFT_SIDE pixels a
    side): the whole entropy-coded stream is still read, so truncation is found, at less than
    half the cost of a full decode.
    """
    if not data:
        return Outcome("", REJECTED, EMPTY_FILE)
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return Outcome("", REJECTED, NOT_AN_IMAGE, "no known image header")
    except Image.DecompressionBombError as e:
        return Outcome("", REJECTED, TOO_MANY_PIXELS, str(e))
    except Exception as e:  # noqa: BLE001 - a known header whose file then breaks off
        return Outcome("", REJECTED, TRUNCATED_OR_CORRUPT, f"{type(e).__name__}: {e}")
    width, height = image.size
    if width * height > max_pixels:
        return Outcome(
            "", REJECTED, TOO_MANY_PIXELS, f"{width}x{height} is over max_pixels={max_pixels}"
        )
    source_format = (image.format or "unknown").lower()
    channels = _channels(image)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns about large images; we checked the size
            if image.format in ("JPEG", "MPO"):  # an MPO's first picture: what TF decodes
                # At most 1/8 scale, and never under the fingerprint's side: a 24x20 JPEG drafted
                # to 3x3 pixels left its fingerprint a few bits from any other.
                side = DRAFT_SIDE
                draft = (min(width, max(width // 8, side)), min(height, max(height // 8, side)))
                image.draft(image.mode, draft)
            image.load()
    except Exception as e:  # noqa: BLE001 - truncated or corrupt streams raise OSError, SyntaxError...
        return Outcome("", REJECTED, TRUNCATED_OR_CORRUPT, f"{type(e).__name__}: {e}")
    orientation = _orientation(image)
    if orientation != 1:
        try:
            return _upright(data, orientation, source_format, transcode)
        except Exception as e:  # noqa: BLE001 - the full-size decode failed where 1/8 did not
            return Outcome(
                "", REJECTED, TRUNCATED_OR_CORRUPT, f"turning upright: {type(e).__name__}: {e}"
            )
    misread = _tf_misreads(image, data)
    if misread is None:
        info = ImageInfo(data, TF_FORMATS[image.format], source_format, height, width, channels)
        return identified(info, image)
    if source_format in ("jpeg", "mpo"):  # a photo stays a JPEG, as a sideways one does
        try:
            return _upright(data, 1, source_format, transcode)
        except Exception as e:  # noqa: BLE001 - the full-size decode failed where 1/8 did not
            return Outcome(
                "", REJECTED, TRUNCATED_OR_CORRUPT, f"re-encoding: {type(e).__name__}: {e}"
            )
    if not transcode:
        return Outcome("", REJECTED, UNSUPPORTED_FORMAT, misread)
    return _to_png(image, source_format)


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation of a JPEG, WebP, TIFF or PNG (1-8), 1 when absent or invalid. Read
    from the header PIL already parsed; GIF and BMP carry none."""
    if image.format not in ("JPEG", "MPO", "WEBP", "TIFF", "PNG"):
        return 1
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block does not make the picture unusable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright(data: bytes, orientation: int, source_format: str, transcode: bool):
    """Decodes fully, turns the picture upright and re-encodes it without the tag: JPEGs (MPOs
    too) as JPEG (quality UPRIGHT_JPEG_QUALITY), PNGs as PNG, anything else as PNG when
    transcoding. Phones store most photos sideways with a tag that TensorFlow's decoders ignore,
    so the model would learn from turned pictures. Orientation 1 re-encodes a JPEG only."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    if source_format in ("jpeg", "mpo"):
        if image.mode not in ("L", "RGB", "CMYK"):
            image = image.convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=UPRIGHT_JPEG_QUALITY)
        width, height = image.size
        info = ImageInfo(
            buffer.getvalue(),
            "jpeg",
            source_format,
            height,
            width,
            _channels(image),
            orientation,
            transcoded=orientation == 1,  # a CMYK JPEG TensorFlow would misread
        )
        return identified(info, image)
    if not transcode and source_format != "png":
        return Outcome(
            "", REJECTED, UNSUPPORTED_FORMAT, f"TensorFlow cannot decode {source_format}"
        )
    return _to_png(image, source_format, orientation)


def _to_png(image: Image.Image, source_format: str, orientation: int = 1) -> ImageInfo:
    """Lossless PNG bytes that decode_image reads as PIL reads `image`: palettes, transparency
    and 16-bit gray stay as they are (TensorFlow scales 16 bits to 8)."""
    if image.mode.startswith("I;16") and image.mode != "I;16":  # big-endian TIFF and the like
        # PIL's own conversions of these modes clip to 8 bits
        image = Image.fromarray(np.asarray(image).astype(np.uint16))
    elif image.mode not in ("1", "L", "LA", "RGB", "RGBA", "I;16", "P"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    width, height = image.size
    info = ImageInfo(
        buffer.getvalue(),
        "png",
        source_format,
        height,
        width,
        _channels(image),
        orientation,
        transcoded=orientation == 1 or source_format != "png",
    )
    return identified(info, image)
