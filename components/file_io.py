"""Reading a file the converter or `imgtfx predict` is given, local or in a bucket, and saying in
one line why a read failed."""

from __future__ import annotations


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
