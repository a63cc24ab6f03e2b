"""What identifies a picture: a perceptual fingerprint (near copies lie a few bits apart) and an
exact digest (equal for copies of the same image data), both from the pixels the image check
decoded anyway (components/image_files.py identified). ImageExampleGen groups copies of one
picture by them (components/image_example_gen/duplicates.py); pure functions, no Beam or TFX.
"""

from __future__ import annotations

import functools

import google_crc32c
import numpy as np
from PIL import Image

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


# A copy cropped up to 5% a side lies within THRESHOLD of the original's centre (2.5% off each
# side) far more often than of the whole original: of 72 contest photos cropped 0-5% a side at
# random, 65% within 26 bits of the whole at 960x540 (76% at 320x180), 93% (94%) of the centre;
# a second centre (1.5% and 3.5%) found none more. Distinct photos of one landmark stayed 47
# bits or more from each other's centres.
CENTRE_CROP = 0.025


def centre_fingerprint(image: Image.Image) -> bytes:
    """The fingerprint of the picture's centre, CENTRE_CROP off each side: what a copy cropped
    a few percent a side is near (duplicates.image_distance)."""
    width, height = image.size
    box = (
        round(width * CENTRE_CROP),
        round(height * CENTRE_CROP),
        width - round(width * CENTRE_CROP),
        height - round(height * CENTRE_CROP),
    )
    return fingerprint(image.crop(box))


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
