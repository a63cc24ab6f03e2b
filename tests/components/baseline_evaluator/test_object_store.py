"""Copying the baseline model out of MinIO/S3: the signature against AWS's published example,
the copy against a MinIO stand-in that checks it (tests/s3_server.py)."""

from __future__ import annotations

import datetime
import os

import pytest

from components.baseline_evaluator import object_store
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
    copied = object_store.copy_folder(uri, str(tmp_path / "copy"), _environ(server))
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


def test_where_the_launcher_would_look():
    creds = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}
    store = object_store.Store("minio://mlpipeline/v2/x", creds)
    assert store._base == "http://minio-service.kubeflow:9000/mlpipeline"
    assert store.region == "minio" and store.prefix == "v2/x"
    service = {"MINIO_SERVICE_SERVICE_HOST": "10.0.0.7", "MINIO_SERVICE_SERVICE_PORT": "9000"}
    assert object_store.Store("minio://b/p", {**creds, **service})._base == "http://10.0.0.7:9000/b"
    aws = object_store.Store("s3://bucket/p", {**creds, "AWS_REGION": "eu-west-1"})
    assert aws._base == "https://bucket.s3.eu-west-1.amazonaws.com" and aws.region == "eu-west-1"
