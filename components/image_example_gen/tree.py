"""The image tree walked: every entry under a split's folders as a FoundFile or an Outcome, and
what a path says (its id, its label folder).

Local trees are walked with os.scandir, remote ones (gs://, any tf.io.gfile file system) with
one listing a folder; both take the same files and skip the same names
(image_files.is_hidden_or_system), the labels CSV and the label names CSV.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import unicodedata
from collections.abc import Iterator
from typing import NamedTuple

from imgtfx.components.examples.reasons import (
    ALREADY_WALKED,
    BROKEN_SYMLINK,
    HIDDEN_OR_SYSTEM,
    LABELS_CSV_FILE,
    LINK_INTO_TREE,
    LINK_OUTSIDE_TREE,
    REJECTED,
    SKIPPED,
    SYMLINK_LOOP,
    UNREADABLE,
    Outcome,
)
from imgtfx.components.file_io import read_error
from imgtfx.components.image_files import IMAGE_EXTENSIONS, is_hidden_or_system


class FoundFile(NamedTuple):
    """A file found in the tree; `path` is NFC, '/'-separated and relative to the image root."""

    split: str
    path: str
    uri: str


def nfc(text: str) -> str:
    """Unicode NFC, so that macOS (NFD) names and CSV (NFC) ids compare equal."""
    if unicodedata.is_normalized("NFC", text):  # most names: a check, no new string
        return text
    return unicodedata.normalize("NFC", text)


def image_id(path: str) -> str:
    """The id of an image: its file name without extension."""
    return os.path.splitext(path.rsplit("/", 1)[-1])[0]


def other_extension(path: str) -> bool:
    """Whether the file name ends in an extension that is not an image's (notes.txt, a.csv)."""
    extension = os.path.splitext(path)[1].lower()
    return bool(extension) and extension not in IMAGE_EXTENSIONS


def folder_label(path: str, level: int) -> str | None:
    """The folder at `level` among the folders of `path`, or None when there is none."""
    folders = path.split("/")[:-1]
    try:
        return folders[level]
    except IndexError:
        return None


def _is_remote(uri: str) -> bool:
    return "://" in uri


def check_local_inputs(
    root: str, labels_csv: str | None = None, label_names_csv: str | None = None
) -> None:
    """The first check of a local conversion or run (`imgtfx convert`, local_runner.prepare),
    before TensorFlow is imported: a local image root must be a folder holding something, and
    local CSVs must exist. Remote ones are read where they are used.

    Raises:
      ValueError: the root is not a folder or is empty, or a CSV does not exist.
    """
    if not _is_remote(root):
        if not os.path.isdir(root):
            raise ValueError(f"image root {root} is not a folder.")
        if not any(True for _ in os.scandir(root)):
            raise ValueError(f"image root {root} is empty.")
    for what, csv in (("labels CSV", labels_csv), ("label names CSV", label_names_csv)):
        if csv and not _is_remote(csv) and not os.path.isfile(csv):
            raise ValueError(f"{what} {csv} does not exist.")


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
    rel = _relative(root, top)
    if rel not in ("", ".") and is_hidden_or_system(rel.rsplit("/", 1)[-1]):  # as any entry
        yield Outcome(rel, SKIPPED, HIDDEN_OR_SYSTEM)
        return
    if _is_remote(top):
        yield from _walk_remote(split, root, top, ignore, fan_out)
        return
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
        yield Outcome(rel, SKIPPED, LABELS_CSV_FILE)
    else:
        yield from _local_entry(split, top, rel)


def ignored_files(*csvs: str | None) -> frozenset[str]:
    """The `ignore` argument of `walk`: the real paths (URIs when remote) of the labels CSV and
    the label names CSV, which may lie inside the tree."""
    return frozenset(csv if _is_remote(csv) else os.path.realpath(csv) for csv in csvs if csv)


def split_tops(input_base: str, pattern: str) -> list[str]:
    """The files and folders a split pattern names under the image root, sorted. The pattern is
    a glob, matched one path component at a time as TensorFlow's glob matches remote roots:
    `*` matches names that start with a dot too, so a `.DS_Store` beside the split folders is
    walked, and skipped by the same rule, on disk and in a bucket. The root is taken
    literally (a folder named `photos [2024]` is not a pattern)."""
    if _is_remote(input_base):
        import tensorflow as tf

        return sorted(tf.io.gfile.glob(os.path.join(glob.escape(input_base), pattern)))
    paths = [input_base]
    for part in pattern.split("/"):
        if not _MAGIC.search(part):
            paths = [os.path.join(p, part) for p in paths if os.path.lexists(os.path.join(p, part))]
            continue
        paths = [
            os.path.join(p, name)
            for p in paths
            if os.path.isdir(p)
            for name in sorted(os.listdir(p))
            if fnmatch.fnmatchcase(name, part)
        ]
    return sorted(paths)


_MAGIC = re.compile(r"[*?[]")


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
                yield Outcome(rel, SKIPPED, LABELS_CSV_FILE)
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
                yield Outcome(rel, SKIPPED, LABELS_CSV_FILE)
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
# tests/helpers/gcs_server.py's emulator). Elsewhere (ram://, hdfs://) a name says nothing, and each
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
        yield Outcome(_relative(root, top), SKIPPED, LABELS_CSV_FILE)
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
            yield Outcome(_relative(root, child), SKIPPED, LABELS_CSV_FILE)
        else:
            yield FoundFile(split, _relative(root, child), child)
