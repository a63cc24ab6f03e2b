"""Image trees on a remote file system: the walk and reads through tf.io.gfile, as for gs://.

TensorFlow's ram:// file system stands in for a bucket here: it is reached only through
tf.io.gfile, like gs:// and s3://, and raises TensorFlow's errors (NotFoundError,
PermissionDeniedError: not OSErrors) where a local read raises OSError; it runs in-process in
a second. test_gcs.py runs `imgtfx convert` against a GCS emulator that TensorFlow's own gs://
client and Beam's reach (tests/helpers/gcs_server.py): listing pages, HTTP errors, credentials.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import uuid

import pytest
import tensorflow as tf

from imgtfx.components import file_io
from imgtfx.components.examples import layout, reader
from imgtfx.components.examples.conversion_report import ConversionReport, read_report
from imgtfx.components.examples.features import FeatureNames
from imgtfx.components.image_example_gen import tree
from imgtfx.components.image_example_gen.options import ImageOptions
from tests.helpers.conversions import run_do
from tests.helpers.images import encode

FILES = {
    "train/경복궁/a1.jpg": encode(seed=1),
    "train/경복궁/a2.jpg": encode(seed=2),
    "train/경복궁/a3.jpg": encode(seed=3),
    "train/남산타워/b1.jpg": encode(seed=4),
    "train/남산타워/b2.jpg": encode(seed=5),
    "train/남산타워/b3.jpg": encode(seed=6),
    "train/남산타워/broken.jpg": encode(seed=11)[:300],
    "train/남산타워/.DS_Store": b"\x00\x00\x00\x01Bud1",
    "train/.hidden/c1.jpg": encode(seed=7),
}
CSV = {"labels.csv": b"id,landmark_id\na1,1\na2,1\na3,1\nb1,2\nb2,2\nb3,2\nbroken,2\n"}


def _write(root: str, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = f"{root}/{rel}"
        tf.io.gfile.makedirs(os.path.dirname(path))
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(data)


@pytest.fixture
def bucket():
    root = f"ram://bucket-{uuid.uuid4().hex}/images"
    yield root
    tf.io.gfile.rmtree(root.rsplit("/", 1)[0])


def _without_run(report: ConversionReport) -> ConversionReport:
    """The report without what names the run (its tree, CSV and options)."""
    return dataclasses.replace(report, image_root="", labels_csv=None, options={})


def _report(out) -> ConversionReport:
    return _without_run(read_report(str(out)))


def _examples(out) -> dict[str, bytes]:
    rows, names = {}, FeatureNames()
    for split in ("train", "eval"):
        for example in reader.read_examples(layout.split_files(str(out), split)):
            rows[example[names.path].numpy().decode()] = example[names.image].numpy()
    return rows


@pytest.mark.parametrize("labels", ["folders", "csv"])
def test_a_remote_tree_converts_as_its_local_copy_does(bucket, tmp_path, labels):
    """Same counts, reasons, splits and example bytes; the labels CSV inside the tree and the
    .DS_Store are skipped on both, not counted as broken images."""
    local = str(tmp_path / "images")
    files = {**FILES, **CSV} if labels == "csv" else FILES
    _write(local, files)
    _write(bucket, files)
    outs = {}
    for name, root in (("local", local), ("remote", bucket)):
        csv = f"{root}/labels.csv" if labels == "csv" else None
        outs[name] = tmp_path / f"out-{name}"
        run_do(root, outs[name], ImageOptions(labels_csv=csv, max_reject_fraction=0.5))
    local_report, remote_report = (_report(outs[n]) for n in ("local", "remote"))
    assert remote_report == local_report
    skipped = {"hidden_or_system": 2, **({"labels_file": 1} if labels == "csv" else {})}
    assert remote_report.skipped_by_reason == skipped
    assert remote_report.rejected_by_reason == {"truncated_or_corrupt": 1}
    assert remote_report.examples == 6 and remote_report.reconciled
    assert _examples(outs["remote"]) == _examples(outs["local"])


def test_hidden_and_system_files_beside_the_split_folders_are_skipped_by_one_rule(bucket, tmp_path):
    """A `.DS_Store` or `Thumbs.db` at the top of the tree, beside a labels CSV: skipped as
    hidden_or_system on disk and in a bucket alike (the remote walk took them for images with
    no CSV row, the local glob did not list the dot file at all)."""
    top = {".DS_Store": b"\x00\x00\x00\x01Bud1", "Thumbs.db": b"\xd0\xcf\x11\xe0"}
    files = {**FILES, **CSV, **top}
    local = str(tmp_path / "images")
    _write(local, files)
    _write(bucket, files)
    reports = {}
    for name, root in (("local", local), ("remote", bucket)):
        out = tmp_path / f"out-{name}"
        run_do(root, out, ImageOptions(labels_csv=f"{root}/labels.csv", max_reject_fraction=0.5))
        reports[name] = _report(out)
        skips = {r["path"]: r["reason"] for r in map(json.loads, open(out / "rejects.jsonl"))}
        assert {p: skips.get(p) for p in top} == dict.fromkeys(top, "hidden_or_system"), name
    assert reports["remote"] == reports["local"]
    assert reports["local"].skipped_by_reason == {"hidden_or_system": 4, "labels_file": 1}
    assert "id_not_in_csv" not in reports["local"].rejected_by_reason


def test_remote_objects_and_folders_that_cannot_be_read_are_rejects(bucket, tmp_path, monkeypatch):
    """An object gone since it was listed, one the credentials may not read, and a folder that
    cannot be listed: each a reject with TensorFlow's reason, the rest converted."""
    files = {
        **FILES,
        "train/남산타워/gone.jpg": encode(seed=8),
        "train/남산타워/locked.jpg": encode(seed=9),
        "train/private/p1.jpg": encode(seed=10),
    }
    _write(bucket, files)
    read_bytes, listdir = file_io.read_bytes, tf.io.gfile.listdir

    def read(uri):
        if uri.endswith("/gone.jpg"):
            tf.io.gfile.remove(uri)  # deleted after the listing: ram:// raises the real error
        if uri.endswith("/locked.jpg"):
            raise tf.errors.PermissionDeniedError(None, None, "403 Forbidden: storage.objects.get")
        return read_bytes(uri)

    def list_folder(path):
        if path.endswith("/private"):
            raise tf.errors.PermissionDeniedError(None, None, "403 Forbidden: storage.objects.list")
        return listdir(path)

    monkeypatch.setattr(file_io, "read_bytes", read)
    monkeypatch.setattr(tf.io.gfile, "listdir", list_folder)
    out = tmp_path / "out"
    run_do(bucket, out, ImageOptions(max_reject_fraction=0.9))

    with open(out / "rejects.jsonl", encoding="utf-8") as f:
        rejects = {r["path"]: r for r in map(json.loads, f)}
    gone, locked = rejects["train/남산타워/gone.jpg"], rejects["train/남산타워/locked.jpg"]
    assert (gone["reason"], gone["detail"].split(":")[0]) == ("unreadable", "NotFoundError")
    assert locked["reason"] == "unreadable"
    assert locked["detail"] == "PermissionDeniedError: 403 Forbidden: storage.objects.get"
    private = rejects["train/private"]
    assert private["reason"] == "unreadable"
    assert private["detail"] == "PermissionDeniedError: 403 Forbidden: storage.objects.list"
    report = _report(out)
    assert report.examples == 6 and report.reconciled
    assert report.rejected_by_reason == {"truncated_or_corrupt": 1, "unreadable": 3}


def test_convert_with_images_labels_and_output_all_remote(bucket, tmp_path):
    """`imgtfx convert`'s function with the tree, its labels CSV and the output on the remote
    file system: the local copy's counts and examples."""
    from imgtfx.components.image_example_gen.convert import convert

    files = {**FILES, **CSV}
    local = str(tmp_path / "images")
    _write(local, files)
    _write(bucket, files)
    output = bucket.rsplit("/", 1)[0] + "/converted"
    options = ImageOptions(labels_csv=f"{bucket}/labels.csv", max_reject_fraction=0.5)
    remote = convert(bucket, output, options)
    here = convert(
        local,
        str(tmp_path / "out"),
        ImageOptions(labels_csv=f"{local}/labels.csv", max_reject_fraction=0.5),
    )
    assert _without_run(remote) == _without_run(here)
    assert remote.examples == 6 and remote.skipped_by_reason["labels_file"] == 1
    assert tf.io.gfile.exists(f"{output}/rejects.jsonl")
    assert tf.io.gfile.glob(f"{output}/Split-train/*.gz")
    rows, names = {}, FeatureNames()
    for example in reader.read_examples(layout.split_files(output, "train")):
        rows[example[names.path].numpy().decode()] = example[names.image].numpy()
    assert rows and all(rows[p] == v for p, v in _examples(tmp_path / "out").items() if p in rows)


def test_listing_200000_objects_costs_a_request_a_folder_page_and_none_an_object(monkeypatch):
    """A bucket of 200,000 photos in 400 landmark folders. TensorFlow's gs:// lists a folder
    with one delimited request a page of 1,000 names, sub-folders named `name/`, and isdir is
    one request (tsl gcs_file_system.cc, TF 2.16; test_gcs.py counts them on the real client
    against an emulator): those two calls are faked here, counted in requests, and every other
    file system call fails the test."""
    root, per_folder = "gs://bucket/images", 500
    folders = [f"{root}/train/landmark{k:03d}" for k in range(400)]
    children = {root: ["train/"], f"{root}/train": [f"landmark{k:03d}/" for k in range(400)]}
    children.update({f: [f"{i:06d}.jpg" for i in range(per_folder)] for f in folders})
    requests = collections.Counter()

    def listdir(uri):
        requests["list"] += max(1, -(-len(children[uri]) // 1000))
        return children[uri]

    def isdir(uri):
        requests["isdir"] += 1
        return uri in children

    def forbidden(*args, **kwargs):
        raise AssertionError(f"a request per object: {args}")

    monkeypatch.setattr(tf.io.gfile, "listdir", listdir)
    monkeypatch.setattr(tf.io.gfile, "isdir", isdir)
    for name in ("stat", "exists", "glob", "walk"):
        monkeypatch.setattr(tf.io.gfile, name, forbidden)

    found = [e for e in tree.walk("train", root, f"{root}/train") if isinstance(e, tree.FoundFile)]
    assert len(found) == len(folders) * per_folder == 200_000
    assert requests == {"isdir": 1, "list": 1 + len(folders)}  # the top, then a page a folder

    # Fanned out, as the plan lists a bucket: the top's listing hands each folder to a worker.
    requests.clear()
    spread = list(tree.walk("train", root, f"{root}/train", fan_out=True))
    assert spread == [tree.RemoteFolder("train", f) for f in folders]
    assert requests == {"isdir": 1, "list": 1}
    listed = [e for f in spread for e in tree.remote_folder("train", root, f.uri, frozenset())]
    assert len(listed) == 200_000 and requests["list"] == 1 + len(folders)
