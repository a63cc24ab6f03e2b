"""Pure functions over one image file: find files in a tree, derive ids and labels, check bytes.

Nothing here knows Beam or TFX, so each rule can be unit-tested on its own and reused by the
standalone reader.
"""

from __future__ import annotations

import io
import os
import struct
import unicodedata
import warnings
from collections.abc import Iterator
from typing import NamedTuple

from PIL import Image, ImageOps, UnidentifiedImageError

# Formats reader.decode_image (TensorFlow) reads, kept as they are unless _tf_misreads finds a
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

# Reasons, as they appear in the rejects report. Stable strings: users grep and count them.
EMPTY_FILE = "empty_file"
NOT_AN_IMAGE = "not_an_image"
TRUNCATED_OR_CORRUPT = "truncated_or_corrupt"
TOO_MANY_PIXELS = "too_many_pixels"
UNSUPPORTED_FORMAT = "unsupported_format"
BROKEN_SYMLINK = "broken_symlink"
SYMLINK_LOOP = "symlink_loop"
UNREADABLE = "unreadable"
NO_LABEL_FOLDER = "no_label_folder"
ID_NOT_IN_CSV = "id_not_in_csv"
CONFLICTING_LABELS = "conflicting_labels"
DUPLICATE_ID = "duplicate_id"
DUPLICATE_PATH = "duplicate_path"
BLANK_LABEL = "blank_label"
UNPRINTABLE_LABEL = "unprintable_label"
# Reasons for skipping (not an error of the data).
HIDDEN_OR_SYSTEM = "hidden_or_system"
LABELS_FILE = "labels_file"
ALREADY_WALKED = "already_walked"
LINK_INTO_TREE = "link_into_tree"
LINK_OUTSIDE_TREE = "link_outside_tree"
# Not a file: a row of the labels CSV that matched no image.
CSV_ID_WITHOUT_IMAGE = "csv_id_without_image"

REJECTED, SKIPPED, CSV_ROW = "rejected", "skipped", "csv_row"


class FoundFile(NamedTuple):
    """A file found in the tree; `path` is NFC, '/'-separated and relative to the image root."""

    split: str
    path: str
    uri: str


class Outcome(NamedTuple):
    """A file (or CSV row) that did not become an example, and why."""

    path: str
    status: str  # REJECTED, SKIPPED or CSV_ROW
    reason: str
    detail: str = ""


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


def nfc(text: str) -> str:
    """Unicode NFC, so that macOS (NFD) names and CSV (NFC) ids compare equal."""
    if unicodedata.is_normalized("NFC", text):  # most names: a check, no new string
        return text
    return unicodedata.normalize("NFC", text)


def is_hidden_or_system(name: str) -> bool:
    return name.startswith(".") or name.lower() in SYSTEM_NAMES


def image_id(path: str) -> str:
    """The id of an image: its file name without extension."""
    return os.path.splitext(path.rsplit("/", 1)[-1])[0]


def other_extension(path: str) -> bool:
    """Whether the file name ends in an extension that is not an image's (notes.txt, a.csv)."""
    extension = os.path.splitext(path)[1].lower()
    return bool(extension) and extension not in IMAGE_EXTENSIONS


def csv_id(raw: str) -> str:
    """Normalises an id from a labels CSV; ids written with an image extension still match."""
    value = nfc(raw.strip())
    stem, ext = os.path.splitext(value)
    return stem if ext.lower() in IMAGE_EXTENSIONS else value


def folder_label(path: str, level: int) -> str | None:
    """The folder at `level` among the folders of `path`, or None when there is none."""
    folders = path.split("/")[:-1]
    try:
        return folders[level]
    except IndexError:
        return None


def _is_remote(uri: str) -> bool:
    return "://" in uri


def check_local_root(root: str) -> None:
    """The first check of every entry point (command line, local runner, convert): a local
    image root must be a folder holding something. Remote roots are listed by the plan.

    Raises:
      ValueError: the root is not a folder, or is empty.
    """
    if _is_remote(root):
        return
    if not os.path.isdir(root):
        raise ValueError(f"image root {root} is not a folder.")
    if not any(True for _ in os.scandir(root)):
        raise ValueError(f"image root {root} is empty.")


def walk(
    split: str,
    root: str,
    top: str,
    ignore: frozenset[str] = frozenset(),
    follow_external: bool = True,
    fan_out: bool = False,
) -> Iterator:
    """Yields a FoundFile or an Outcome for every entry under `top`, in a stable order.

    A link whose target lies inside the image root is an alias of files that are walked (or
    deliberately left out) anyway: it is skipped as `link_into_tree`, naming its target, and
    never followed, so no image is listed twice. Links that leave the root are followed unless
    `follow_external` is false (then skipped as `link_outside_tree`); a loop among them is
    reported, and a folder reached twice through them is walked once.

    Args:
      split: the input split these files belong to.
      root: the image root; yielded paths are relative to it.
      top: a file or folder under `root` to walk.
      ignore: real paths of files to skip (the labels CSV when it lies inside the tree).
      fan_out: a remote top's sub-folders are yielded as RemoteFolder, not walked, so that
        workers list them in parallel (remote_folder). Local trees are walked whole: finding
        link loops and folders reached twice needs the whole walk in one place.
    """
    if _is_remote(top):
        yield from _walk_remote(split, root, top, ignore, fan_out)
        return
    rel = _relative(root, top)
    real_root = os.path.realpath(root)
    alias = _alias_of(top, real_root)
    if alias is not None:
        yield Outcome(rel, SKIPPED, LINK_INTO_TREE, alias)
    elif not follow_external and _leaves_root(top):
        yield Outcome(rel, SKIPPED, LINK_OUTSIDE_TREE, f"points to {os.path.realpath(top)}")
    elif os.path.isdir(top):
        st = os.stat(top)
        yield from _walk_local(
            split, rel, top, {(st.st_dev, st.st_ino)}, set(), ignore, real_root, follow_external
        )
    elif ignore and _is_ignored(top, ignore):
        yield Outcome(rel, SKIPPED, LABELS_FILE)
    else:
        yield from _local_entry(split, top, rel)


def ignored_files(labels_csv: str | None) -> frozenset[str]:
    """The `ignore` argument of `walk`: the labels CSV's real path (its URI when remote)."""
    if not labels_csv:
        return frozenset()
    return frozenset({labels_csv if _is_remote(labels_csv) else os.path.realpath(labels_csv)})


def _is_ignored(path: str, ignore: frozenset[str]) -> bool:
    """Whether `path` is one of the `ignore` files. realpath costs an lstat per path component,
    so only links and files of the same name pay it (1 s of a 20 s conversion otherwise)."""
    name = os.path.basename(path)
    could_match = os.path.islink(path) or any(os.path.basename(i) == name for i in ignore)
    return could_match and os.path.realpath(path) in ignore


def _leaves_root(path: str) -> bool:
    """A link that exists and whose target is outside the root (`_alias_of` was None)."""
    return os.path.islink(path) and os.path.exists(path)


def _alias_of(path: str, real_root: str) -> str | None:
    """For a link whose target exists inside the image root: 'alias of <target>' (relative to
    the root). None for anything else: not a link, a broken link, a link that leaves the root."""
    if not os.path.islink(path) or not os.path.exists(path):
        return None
    target = os.path.realpath(path)
    if target != real_root and not target.startswith(real_root + os.sep):
        return None
    inside = os.path.relpath(target, real_root).replace(os.sep, "/")
    return f"alias of {nfc(inside) if inside != '.' else 'the image root'}"


def _relative(root: str, path: str) -> str:
    rel = os.path.relpath(path, root) if not _is_remote(path) else path[len(root) :].lstrip("/")
    return nfc(rel.replace(os.sep, "/"))


def _local_entry(split: str, path: str, rel: str) -> Iterator:
    if os.path.islink(path) and not os.path.exists(path):
        yield Outcome(rel, REJECTED, BROKEN_SYMLINK, f"points to {os.readlink(path)}")
    elif not os.path.isfile(path):
        yield Outcome(rel, REJECTED, UNREADABLE, "not a regular file")
    else:
        yield FoundFile(split, rel, path)


def _walk_local(
    split, rel_folder, folder, ancestors, visited, ignore, real_root, follow_external=True
) -> Iterator:
    """Walks `folder`, whose path relative to the root is `rel_folder` (NFC). Relative paths
    are built by joining NFC names ('/' never combines), not by os.path.relpath per file."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        yield Outcome(rel_folder, REJECTED, UNREADABLE, f"cannot list folder: {e}")
        return
    prefix = f"{rel_folder}/" if rel_folder and rel_folder != "." else ""
    for entry in entries:
        rel = prefix + nfc(entry.name)
        if is_hidden_or_system(entry.name):
            yield Outcome(rel, SKIPPED, HIDDEN_OR_SYSTEM)
            continue
        link = entry.is_symlink()
        if not link and entry.is_file(follow_symlinks=False):  # the common case: no more stats
            if ignore and _is_ignored(entry.path, ignore):
                yield Outcome(rel, SKIPPED, LABELS_FILE)
            else:
                yield FoundFile(split, rel, entry.path)
            continue
        # Only links pay for a realpath; the labels CSV keeps its own reason below.
        if link and not (ignore and _is_ignored(entry.path, ignore)):
            alias = _alias_of(entry.path, real_root)
            if alias is not None:
                yield Outcome(rel, SKIPPED, LINK_INTO_TREE, alias)
                continue
            if not follow_external and _leaves_root(entry.path):
                target = os.path.realpath(entry.path)
                yield Outcome(rel, SKIPPED, LINK_OUTSIDE_TREE, f"points to {target}")
                continue
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError as e:
            yield Outcome(rel, REJECTED, UNREADABLE, str(e))
            continue
        if not is_dir:
            if ignore and _is_ignored(entry.path, ignore):
                yield Outcome(rel, SKIPPED, LABELS_FILE)
            else:
                yield from _local_entry(split, entry.path, rel)
            continue
        try:
            st = os.stat(entry.path)
        except OSError as e:  # a symlink loop makes stat fail with ELOOP
            yield Outcome(rel, REJECTED, SYMLINK_LOOP, str(e))
            continue
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            yield Outcome(
                rel, REJECTED, SYMLINK_LOOP, f"links back to {os.path.realpath(entry.path)}"
            )
        elif key in visited:
            yield Outcome(
                rel, SKIPPED, ALREADY_WALKED, f"same folder as {os.path.realpath(entry.path)}"
            )
        else:
            visited.add(key)
            yield from _walk_local(
                split,
                rel,
                entry.path,
                ancestors | {key},
                visited,
                ignore,
                real_root,
                follow_external,
            )


class RemoteFolder(NamedTuple):
    """A folder of a remote tree left to be listed by another worker (walk's `fan_out`)."""

    split: str
    uri: str


# File systems whose listing marks each sub-folder with a trailing '/': TensorFlow's GCS file
# system lists a folder with one delimited request a page and returns the delimiter's prefixes
# as `name/` (tsl/platform/cloud/gcs_file_system.cc GetChildrenBounded, TF 2.16; seen on
# tests/gcs_server.py's emulator). Elsewhere (ram://, hdfs://) a name says nothing, and each
# entry costs an isdir.
FOLDERS_MARKED = frozenset({"gs"})


def _walk_remote(
    split: str, root: str, top: str, ignore: frozenset[str], fan_out: bool = False
) -> Iterator:
    """The remote walk (gs://, s3://, any tf.io.gfile file system): the files the local walk
    takes, the same files skipped (hidden and system files, the labels CSV), and what cannot
    be listed or read a reject (NotFoundError, PermissionDeniedError: not OSErrors) while the
    rest of the tree is walked. One isdir for the top; below it, one listing a folder (no
    request per file where FOLDERS_MARKED)."""
    import tensorflow as tf  # only remote trees need TensorFlow's file system

    top = top.rstrip("/")
    if top in ignore:
        yield Outcome(_relative(root, top), SKIPPED, LABELS_FILE)
        return
    try:
        is_folder = tf.io.gfile.isdir(top)
    except tf.errors.OpError as e:
        yield Outcome(_relative(root, top), REJECTED, UNREADABLE, read_error(e))
        return
    if is_folder:
        yield from remote_folder(split, root, top, ignore, fan_out)
    else:
        yield FoundFile(split, _relative(root, top), top)


def remote_folder(
    split: str, root: str, uri: str, ignore: frozenset[str], fan_out: bool = False
) -> Iterator:
    """Yields what the remote folder `uri` holds, its sub-folders walked too, or with `fan_out`
    yielded as RemoteFolder for other workers to walk."""
    import tensorflow as tf

    try:
        names = sorted(set(tf.io.gfile.listdir(uri)))
    except tf.errors.OpError as e:
        yield Outcome(_relative(root, uri), REJECTED, UNREADABLE, read_error(e))
        return
    marked = uri.split("://", 1)[0] in FOLDERS_MARKED
    for name in names:
        child = f"{uri}/{name.rstrip('/')}"
        if is_hidden_or_system(name.rstrip("/")):
            yield Outcome(_relative(root, child), SKIPPED, HIDDEN_OR_SYSTEM)
            continue
        try:
            is_folder = name.endswith("/") if marked else tf.io.gfile.isdir(child)
        except tf.errors.OpError as e:
            yield Outcome(_relative(root, child), REJECTED, UNREADABLE, read_error(e))
            continue
        if is_folder and fan_out:
            yield RemoteFolder(split, child)
        elif is_folder:
            yield from remote_folder(split, root, child, ignore)
        elif child in ignore:
            yield Outcome(_relative(root, child), SKIPPED, LABELS_FILE)
        else:
            yield FoundFile(split, _relative(root, child), child)


def read_error(error: Exception) -> str:
    """What the file system said: an OSError's text, or a TensorFlow file system error's class
    and message (remote reads raise NotFoundError, PermissionDeniedError, ...)."""
    message = getattr(error, "message", None)
    if message is None:
        return str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def read_bytes(uri: str) -> bytes:
    if _is_remote(uri):
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
    """Why reader.decode_image, the trainer's and serving's decoder, would not see the pixels
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
    JPEGs are decoded at 1/8 scale: the whole entropy-coded stream is still read, so truncation
    is found, at less than half the cost of a full decode.
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
                image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
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
        return ImageInfo(data, TF_FORMATS[image.format], source_format, height, width, channels)
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
        return ImageInfo(
            buffer.getvalue(),
            "jpeg",
            source_format,
            height,
            width,
            _channels(image),
            orientation,
            transcoded=orientation == 1,  # a CMYK JPEG TensorFlow would misread
        )
    if not transcode and source_format != "png":
        return Outcome(
            "", REJECTED, UNSUPPORTED_FORMAT, f"TensorFlow cannot decode {source_format}"
        )
    return _to_png(image, source_format, orientation)


def _to_png(image: Image.Image, source_format: str, orientation: int = 1) -> ImageInfo:
    """Lossless PNG bytes that decode_image reads as PIL reads `image`: palettes, transparency
    and 16-bit gray stay as they are (TensorFlow scales 16 bits to 8)."""
    if image.mode.startswith("I;16") and image.mode != "I;16":  # big-endian TIFF and the like
        import numpy as np  # PIL's own conversions of these modes clip to 8 bits

        image = Image.fromarray(np.asarray(image).astype(np.uint16))
    elif image.mode not in ("1", "L", "LA", "RGB", "RGBA", "I;16", "P"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    width, height = image.size
    return ImageInfo(
        buffer.getvalue(),
        "png",
        source_format,
        height,
        width,
        _channels(image),
        orientation,
        transcoded=orientation == 1 or source_format != "png",
    )
