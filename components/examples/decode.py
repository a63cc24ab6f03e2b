"""The image decoder that training, serving and the report share: encoded bytes -> upright RGB.

Graph ops only (no py_function), so the exported serving signatures carry all of it: a TF
Serving client sends a phone photo's bytes as they are. The converter keeps an image's bytes
only where this decoder sees the pixels it checked (components/image_files.py).
"""

from __future__ import annotations

import tensorflow as tf

_EXIF_HEADER = b"Exif\x00\x00"
_EXIF_SEARCH_BYTES = 65536  # APP1 (EXIF) sits at the start of a JPEG and is at most 64 KiB
_IFD_ENTRIES = 32  # orientation is among the first entries of IFD0 in every camera's files


def exif_orientation(encoded: tf.Tensor) -> tf.Tensor:
    """The EXIF orientation (1-8) of encoded JPEG bytes, 1 when absent or unreadable.

    Graph ops only (no py_function), so the exported serving signatures carry it: a TF Serving
    client sends a phone photo's bytes as they are. Reads the TIFF header after 'Exif\\0\\0', then
    IFD0's entries for tag 0x0112.
    """
    head = tf.strings.substr(encoded, 0, _EXIF_SEARCH_BYTES)
    parts = tf.strings.split(head, sep=_EXIF_HEADER, maxsplit=1)
    found = tf.logical_and(tf.io.is_jpeg(encoded), tf.size(parts) == 2)
    padded = head + b"\x00" * 16
    size = tf.strings.length(padded)
    tiff = tf.strings.length(parts[0]) + len(_EXIF_HEADER)
    little = tf.equal(tf.strings.substr(padded, tf.minimum(tiff, size - 2), 2), b"II")

    def number(positions: tf.Tensor, width: int) -> tf.Tensor:
        positions = tf.clip_by_value(positions, 0, size - width)
        raw = tf.strings.substr(
            tf.fill(tf.shape(positions), padded), positions, tf.fill(tf.shape(positions), width)
        )
        digits = tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.int64)
        weights = tf.constant([256**i for i in range(width)], tf.int64)
        return tf.where(
            little,
            tf.reduce_sum(digits * weights, -1),
            tf.reduce_sum(digits * weights[::-1], -1),
        )

    ifd = tiff + tf.cast(number(tf.reshape(tiff + 4, [1]), 4)[0], tf.int32)
    count = number(tf.reshape(ifd, [1]), 2)[0]
    entries = ifd + 2 + 12 * tf.range(_IFD_ENTRIES)
    tags = number(entries, 2)
    values = number(entries + 8, 2)
    wanted = tf.logical_and(tags == 0x0112, tf.range(_IFD_ENTRIES, dtype=tf.int64) < count)
    value = tf.reduce_max(tf.where(wanted, values, tf.zeros_like(values)))
    valid = tf.logical_and(found, tf.logical_and(value >= 1, value <= 8))
    return tf.where(valid, tf.cast(value, tf.int32), 1)


def upright(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Turns decoded pixels [h, w, c] as EXIF `orientation` says (what PIL's exif_transpose
    does), so that the picture shows upright."""

    def transpose(x):
        return tf.transpose(x, [1, 0, 2])

    turns = [
        lambda: image,
        lambda: tf.reverse(image, [1]),
        lambda: tf.image.rot90(image, 2),
        lambda: tf.reverse(image, [0]),
        lambda: transpose(image),
        lambda: tf.image.rot90(image, 3),
        lambda: tf.image.rot90(transpose(image), 2),
        lambda: tf.image.rot90(image, 1),
    ]
    return tf.switch_case(tf.clip_by_value(orientation, 1, 8) - 1, turns)


# The signatures TensorFlow's decoder classifies bytes by (decode_image_op.cc), most specific first.
IMAGE_MAGIC = (
    ("JPEG", b"\xff\xd8\xff"),
    ("PNG", b"\x89PNG\r\n\x1a\n"),
    ("GIF", b"GIF8"),
    ("BMP", b"BM"),
)
_HEADER_BYTES = 26  # the PNG, GIF and BMP dimensions all lie within the first 26 bytes


def image_format(encoded: tf.Tensor) -> tf.Tensor:
    """The format of encoded bytes (any shape) as TensorFlow's decoder will see it: "JPEG",
    "PNG", "GIF", "BMP", or "" for bytes it cannot decode at all."""
    names = tf.fill(tf.shape(encoded), "")
    for name, magic in reversed(IMAGE_MAGIC):
        names = tf.where(tf.strings.substr(encoded, 0, len(magic)) == magic, name, names)
    return names


def header_dimensions(encoded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(height, width) as int64, read from the header of PNG, GIF or BMP bytes (any shape)
    without decoding, so that a decompression bomb is refused before its pixels exist; 0 for
    other bytes. Never fails: short bytes are padded with zeros.

    The fields are those TensorFlow's decoders allocate from: PNG's IHDR, GIF's logical screen,
    BMP's info header (a negative height means top-down rows).
    """
    head = tf.strings.substr(encoded, 0, _HEADER_BYTES) + b"\x00" * _HEADER_BYTES
    head = tf.strings.substr(head, 0, _HEADER_BYTES)
    digits = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)

    def number(offset: int, width: int, big_endian: bool) -> tf.Tensor:
        value = tf.zeros_like(digits[..., 0])
        for i in range(width):
            value += digits[..., offset + i] * 256 ** ((width - 1 - i) if big_endian else i)
        return value

    def signed32(value: tf.Tensor) -> tf.Tensor:
        return tf.abs(tf.where(value >= 2**31, value - 2**32, value))

    kind = image_format(encoded)
    height = tf.where(kind == "PNG", number(20, 4, True), 0)
    height = tf.where(kind == "GIF", number(8, 2, False), height)
    height = tf.where(kind == "BMP", signed32(number(22, 4, False)), height)
    width = tf.where(kind == "PNG", number(16, 4, True), 0)
    width = tf.where(kind == "GIF", number(6, 2, False), width)
    width = tf.where(kind == "BMP", signed32(number(18, 4, False)), width)
    return height, width


def image_dimensions(encoded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(height, width) as int64 of one encoded image, from its header only; 0 for bytes that are
    no JPEG/PNG/GIF/BMP. Raises (InvalidArgumentError) for a JPEG whose header is corrupt."""
    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tuple(tf.unstack(tf.cast(tf.io.extract_jpeg_shape(encoded)[:2], tf.int64))),
        lambda: header_dimensions(encoded),
    )


def decode_image(encoded: tf.Tensor, image_size: int | None = None) -> tf.Tensor:
    """Encoded JPEG/PNG/GIF/BMP bytes -> uint8 RGB (1/3/4 channels and animations handled);
    resized to image_size x image_size (float32 in [0, 255]) when a size is given.

    With a size, JPEGs are decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps the
    shorter side at least image_size, then resized with antialiasing: the scaled decode does the
    heavy downsampling far cheaper than a full decode. Training and serving share this function.

    A JPEG's EXIF orientation is applied, so raw phone photos sent to the serving signature are
    seen upright; ImageExampleGen's examples are upright already and carry no tag.
    """
    if not image_size:
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return upright(image, exif_orientation(encoded))

    def jpeg(ratio: int):
        return lambda: tf.io.decode_jpeg(encoded, channels=3, ratio=ratio)

    def other():
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return image

    is_jpeg = tf.io.is_jpeg(encoded)
    shorter = tf.cond(
        is_jpeg,
        lambda: tf.reduce_min(tf.io.extract_jpeg_shape(encoded)[:2]),
        lambda: tf.constant(0, tf.int32),
    )
    # Branch 1 + k decodes at ratio 2**k: the largest k with shorter / 2**k >= image_size.
    steps = tf.reduce_sum(tf.cast(shorter // tf.constant([2, 4, 8]) >= image_size, tf.int32))
    branch = tf.where(is_jpeg, 1 + steps, 0)
    image = tf.switch_case(branch, [other, jpeg(1), jpeg(2), jpeg(4), jpeg(8)])
    image.set_shape([None, None, 3])
    image = upright(image, exif_orientation(encoded))
    return tf.image.resize(image, [image_size, image_size], antialias=True)
