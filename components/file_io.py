"""Reading a file the converter or `imgtfx predict` is given, local or in a bucket, and saying in
one line why a read failed."""

from __future__ import annotations

import codecs
import contextlib
import io
from collections.abc import Iterator


def read_error(error: Exception) -> str:
    """What the file system said: an OSError's text, or a TensorFlow file system error's class
    and message (remote reads raise NotFoundError, PermissionDeniedError, ...)."""
    message = getattr(error, "message", None)
    if message is None:
        return str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def open_binary(uri: str, mode: str = "rb"):
    """A local file with Python's own open, anything else with tf.io.gfile: GFile's seek and
    read go through TensorFlow's deprecation wrapper, 50 us a call, which the copies' band
    files (thousands of small slices, bands.py) paid on one core."""
    if "://" in uri:
        import tensorflow as tf

        return tf.io.gfile.GFile(uri, mode)
    return open(uri, mode)  # noqa: SIM115 - the caller closes it


def read_bytes(uri: str) -> bytes:
    """The bytes of a local file or of a URI any tf.io.gfile file system reads."""
    with open_binary(uri) as f:
        return f.read()


class _Utf8Text(io.TextIOBase):
    """Text read from a binary file with an incremental UTF-8 decoder. TensorFlow's GFile in
    text mode decodes each read(n) on its own, so a character cut by the chunk boundary fails
    ('unexpected end of data' in a labels CSV of Korean ids over 256 KiB); a BOM (Excel's
    "CSV UTF-8") is dropped."""

    def __init__(self, raw):
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        data = self._raw.read(size if size is not None and size > 0 else -1)
        return self._decoder.decode(data, final=not data or size is None or size < 0)

    def readline(self, size: int = -1) -> str:
        return self._decoder.decode(self._raw.readline(), final=False)


@contextlib.contextmanager
def open_text(uri: str) -> Iterator[io.TextIOBase]:
    """A UTF-8 text file, local or on any tf.io.gfile file system, read safely in chunks."""
    import tensorflow as tf

    with tf.io.gfile.GFile(uri, "rb") as raw:
        yield _Utf8Text(raw)
