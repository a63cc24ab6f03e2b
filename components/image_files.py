"""Image files: which names are never the dataset's, and whether a file's bytes can become an
example (check_image), with what identifies its picture (identified: components/fingerprint.py,
from the pixels the check decoded anyway). The rules ImageExampleGen applies to every file of a
tree and `imgtfx predict` to every file it is given; pure functions over bytes and names, no
Beam or TFX.

Not the Examples contract (components/examples): no stage after the converter reads files, so
an edit here reruns ImageExampleGen only.
"""

from __future__ import annotations

import io
import struct
import warnings
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from imgtfx.components.examples.reasons import (
    EMPTY_FILE,
    NOT_AN_IMAGE,
    REJECTED,
    TOO_MANY_PIXELS,
    TRUNCATED_OR_CORRUPT,
    UNREADABLE,
    UNSUPPORTED_FORMAT,
    Outcome,
)
from imgtfx.components.fingerprint import (
    DRAFT_SIDE,
    centre_fingerprint,
    exact_digest,
    fingerprint,
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
    centre: bytes = b""  # centre_fingerprint(): near the whole of a copy cropped a little


def identified(info: ImageInfo, image: Image.Image) -> ImageInfo:
    """`info` with the fingerprint and digest of its picture (`image`: its upright pixels)."""
    lossless = None if info.format == "jpeg" else image
    return info._replace(
        fingerprint=fingerprint(image),
        digest=exact_digest(info.data, lossless),
        centre=centre_fingerprint(image),
    )


def is_hidden_or_system(name: str) -> bool:
    """The one skip rule for names, of every walk (local and remote, any depth) and of
    `imgtfx predict`'s folders: dot files and what systems and photo tools leave behind."""
    return name.startswith(".") or name.lower() in SYSTEM_NAMES


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


def read_checked(path: str, max_pixels: int) -> bytes | str:
    """The file at `path` (local or a bucket) as a model reads it: checked with ImageExampleGen's
    rules (sideways photos turned upright, formats TensorFlow misreads transcoded); or, for a
    file it cannot use, the reason ("reason: detail"). For files outside a conversion
    (`imgtfx predict`, the Trainer's non-landmarks)."""
    from imgtfx.components import file_io

    try:
        data = file_io.read_bytes(path)
    except OSError as e:
        return f"{UNREADABLE}: {e.strerror or e}"
    checked = check_image(data, max_pixels, transcode=True)
    if isinstance(checked, Outcome):
        return f"{checked.reason}: {checked.detail}" if checked.detail else checked.reason
    return checked.data
