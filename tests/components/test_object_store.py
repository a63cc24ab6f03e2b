"""Copying the baseline model out of MinIO/S3: the signature against AWS's published example,
the copy against a MinIO stand-in that checks it (tests/s3_server.py)."""

from __future__ import annotations

import datetime
import os

import pytest

from components import object_store
from tests.s3_server import ACCESS_KEY, SECRET_KEY, S3Server


def test_signature_is_aws_published_example():
    """AWS's Signature Version 4 example "GET Object" (Amazon S3 API reference, "Examples:
    Signature Calculations in AWS Signature Version 4": examplebucket, test.txt, a Range)."""
    headers = object_store.sign(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        {"Range": "bytes=0-9"},
        {
            "access_key": "AKIAIOSFODNN7EXAMPLE",
            "secret_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        },
        "us-east-1",
        datetime.datetime(2013, 5, 24),
    )
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


@pytest.mark.parametrize(
    "url, signature",
    [
        (  # a Korean key with spaces, path-style, MinIO's region
            "http://127.0.0.1:9000/mlpipeline/m/a%20b/%EA%B2%BD%EB%B3%B5%EA%B6%81%20labels.txt",
            "1a72eceea30f5496c1316779a0c7d19d2326aed01e56c7b37fea43c34cf8d4e0",
        ),
        (  # a listing page: a continuation token with '=', '/' and '+', a prefix with '/'
            "http://127.0.0.1:9000/mlpipeline?continuation-token=MQ%3D%3D%2F%2B&list-type=2"
            "&prefix=v2%2Fartifacts%2Fm%2F",
            "e76814918784513e481e9511f606abdfb3c274834634a2daa4dd3dd77dd71d0f",
        ),
    ],
)
def test_signature_is_botocores(url, signature):
    """Signatures botocore 1.44.8's S3SigV4Auth made for these requests (keys minio/minio123,
    region minio, at 2026-11-26T01:18:32Z), where AWS's example has no query or odd key."""
    headers = object_store.sign(
        "GET",
        url,
        {},
        {"access_key": "minio", "secret_key": "minio123"},
        "minio",
        datetime.datetime(2026, 11, 26, 1, 18, 32),
    )
    assert headers["Authorization"].endswith(f"Signature={signature}")


@pytest.fixture
def minio(tmp_path):
    model = tmp_path / "store" / "mlpipeline" / "v2" / "artifacts" / "run" / "Trainer" / "model"
    files = {
        "Format-Serving/saved_model.pb": b"graph",
        "Format-Serving/variables/variables.index": b"index",
        "Format-Serving/assets/경복궁 labels.txt": "경복궁\n".encode(),
        "Format-Serving/fingerprint.pb": b"f",
        "info.json": b"{}",
    }
    for name, data in files.items():
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_bytes(data)
    (tmp_path / "store" / "mlpipeline" / "v2" / "artifacts" / "run" / "Trainer" / "model-2").mkdir()
    server = S3Server(str(tmp_path / "store"))
    yield server, files
    server.close()


def _environ(server, **more):
    return {
        object_store.ENDPOINT_ENV: server.url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        **more,
    }


def test_a_model_folder_is_copied_whole_page_by_page(minio, tmp_path):
    server, files = minio
    uri = "minio://mlpipeline/v2/artifacts/run/Trainer/model"
    copied = str(tmp_path / "copy")
    assert object_store.copy_folder(uri, copied, _environ(server)) == len(files)
    for name, data in files.items():
        with open(os.path.join(copied, *name.split("/")), "rb") as f:
            assert f.read() == data, name
    found = [os.path.join(d, n) for d, _, names in os.walk(copied) for n in names]
    assert len(found) == len(files)  # not model-2's: a prefix is a folder, not a string
    assert server.requests == 3 + len(files)  # three pages of two keys


def test_refusals_and_absences_are_clear_errors(minio, tmp_path):
    server, _ = minio
    uri = "minio://mlpipeline/v2/artifacts/run/Trainer/model"
    wrong = _environ(server, AWS_SECRET_ACCESS_KEY="not-it")
    with pytest.raises(object_store.ObjectStoreError, match="403 SignatureDoesNotMatch"):
        object_store.copy_folder(uri, str(tmp_path / "a"), wrong)
    with pytest.raises(object_store.ObjectStoreError, match="403 InvalidAccessKeyId"):
        object_store.copy_folder(uri, str(tmp_path / "b"), _environ(server, AWS_ACCESS_KEY_ID="x"))
    with pytest.raises(object_store.ObjectStoreError, match="nothing under"):
        object_store.copy_folder(uri + "-gone", str(tmp_path / "c"), _environ(server))
    with pytest.raises(object_store.ObjectStoreError, match="404 NoSuchBucket"):
        object_store.copy_folder("minio://other/m", str(tmp_path / "d"), _environ(server))
    with pytest.raises(object_store.ObjectStoreError, match="AWS_ACCESS_KEY_ID"):
        object_store.copy_folder(uri, str(tmp_path / "e"), {object_store.ENDPOINT_ENV: server.url})
    unreachable = _environ(server, **{object_store.ENDPOINT_ENV: "http://127.0.0.1:1"})
    with pytest.raises(object_store.ObjectStoreError, match="cannot reach"):
        object_store.copy_folder(uri, str(tmp_path / "f"), unreachable)


def test_a_short_answer_or_a_proxys_page_is_an_error_not_a_model(minio, tmp_path):
    server, _ = minio
    uri = "minio://mlpipeline/v2/artifacts/run/Trainer/model"
    server.cut_short = {"v2/artifacts/run/Trainer/model/Format-Serving/saved_model.pb"}
    with pytest.raises(object_store.ObjectStoreError, match="2 of 5 bytes arrived"):
        object_store.copy_folder(uri, str(tmp_path / "a"), _environ(server))
    server.cut_short = set()
    server.outage = (502, b"<html><body><h1>502 Bad Gateway</h1></body></html>")
    with pytest.raises(object_store.ObjectStoreError, match="HTTP 502 <html>"):
        object_store.copy_folder(uri, str(tmp_path / "b"), _environ(server))
    server.outage = (200, b"<html>a captive portal</html")
    with pytest.raises(object_store.ObjectStoreError, match="not a bucket listing"):
        object_store.copy_folder(uri, str(tmp_path / "c"), _environ(server))


@pytest.mark.parametrize("key", ["m/../../etc/x", "m/a/./b", "m/a//b"])
def test_keys_that_would_land_outside_the_copy_are_refused(key, tmp_path, monkeypatch):
    """S3 keys may hold '..' segments; requests would also fetch another object than the one
    signed (it removes dot segments from the URL)."""
    monkeypatch.setattr(object_store.Store, "keys", lambda self, prefix: [key])
    environ = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}
    with pytest.raises(object_store.ObjectStoreError, match="no safe local name"):
        object_store.copy_folder("minio://b/m", str(tmp_path / "copy"), environ)
    assert not os.path.exists(tmp_path / "copy")


def test_a_data_store_is_read_with_its_own_names_and_many_at_once(tmp_path):
    """ImageExampleGen's store: its own keys and region under IMGTFX_DATA_* (the root's AWS_*
    left alone), every object of a Korean-named tree, 8 downloads at once, and one file."""
    server = S3Server(str(tmp_path / "s3"), region="eu-west-1", access_key="reader", secret_key="s")
    files = {f"train/서울/경복궁/{i:03d}.jpg": bytes([i]) * (i + 1) for i in range(40)}
    for name, data in files.items():
        path = tmp_path / "s3" / "landmarks" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (tmp_path / "s3" / "landmarks" / "train.csv").write_text("id,landmark_id\n000,1\n")
    environ = {
        "AWS_ACCESS_KEY_ID": "the-roots",  # the launcher's own, not for the data
        "AWS_SECRET_ACCESS_KEY": "x",
        "IMGTFX_DATA_ACCESS_KEY_ID": "reader",
        "IMGTFX_DATA_SECRET_ACCESS_KEY": "s",
        "IMGTFX_DATA_ENDPOINT": server.url,
        "IMGTFX_DATA_REGION": "eu-west-1",
    }
    data = object_store.data_environ(environ)
    copy = tmp_path / "copy"
    try:
        assert object_store.copy_folder("s3://landmarks/train", str(copy), data, workers=8) == 40
        whole = tmp_path / "whole"  # a tree at the bucket's root: every object in it
        assert object_store.copy_folder("s3://landmarks/", str(whole), data, workers=8) == 41
        assert (whole / "train.csv").is_file()
        object_store.copy_file("s3://landmarks/train.csv", str(tmp_path / "t.csv"), data)
        roots = {**environ, object_store.ENDPOINT_ENV: server.url}  # the root's keys: refused
        with pytest.raises(object_store.ObjectStoreError, match="403 InvalidAccessKeyId"):
            object_store.copy_file("s3://landmarks/train.csv", str(tmp_path / "u"), roots)
        with pytest.raises(object_store.ObjectStoreError, match="404 NoSuchKey"):
            object_store.copy_file("s3://landmarks/gone.csv", str(tmp_path / "v"), data)
        with pytest.raises(object_store.ObjectStoreError, match="give --data-secret"):
            object_store.copy_file(
                "s3://landmarks/x", str(tmp_path / "w"), {}, "give --data-secret"
            )
    finally:
        server.close()
    for name, content in files.items():
        assert (copy / name.removeprefix("train/")).read_bytes() == content
    assert (tmp_path / "t.csv").read_text().startswith("id,landmark_id")
