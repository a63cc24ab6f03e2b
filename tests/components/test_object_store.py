"""Copying out of KFP's object store and S3: the signature against AWS's published example and
botocore's, the copy against SeaweedFS (tests/helpers/seaweedfs.py), the store KFP deploys,
which checks every signature and policy, through a network with faults
(tests/helpers/s3_faults.py)."""

from __future__ import annotations

import datetime
import os

import pytest

from imgtfx.components import object_store
from tests.helpers.s3_faults import FaultyNetwork
from tests.helpers.seaweedfs import ADMIN_KEYS, unique


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


MODEL_FILES = {
    "Format-Serving/saved_model.pb": b"graph",
    "Format-Serving/variables/variables.index": b"index",
    "Format-Serving/assets/경복궁 labels.txt": "경복궁\n".encode(),
    "Format-Serving/fingerprint.pb": b"f",
    "info.json": b"{}",
}


@pytest.fixture
def model(seaweedfs):
    """A model folder in KFP's bucket, a sibling whose name extends it, and the network to the
    store (requests counted)."""
    uri = f"minio://mlpipeline/{unique('v2/artifacts/run')}/Trainer/model"
    for name, data in MODEL_FILES.items():
        seaweedfs.put(f"{uri}/{name}", data)
    seaweedfs.put(f"{uri}-2/info.json", b"not this model's")
    network = FaultyNetwork(seaweedfs.url)
    yield uri, network
    network.close()


def _environ(url, **more):
    return {
        object_store.ENDPOINT_ENV: url,
        "AWS_ACCESS_KEY_ID": ADMIN_KEYS[0],
        "AWS_SECRET_ACCESS_KEY": ADMIN_KEYS[1],
        **more,
    }


def test_a_model_folder_is_copied_whole_page_by_page(model, tmp_path, monkeypatch):
    uri, network = model
    monkeypatch.setattr(object_store.Store, "PAGE_SIZE", 2)  # continuation tokens exercised
    copied = str(tmp_path / "copy")
    assert object_store.copy_folder(uri, copied, _environ(network.url)) == len(MODEL_FILES)
    for name, data in MODEL_FILES.items():
        with open(os.path.join(copied, *name.split("/")), "rb") as f:
            assert f.read() == data, name
    found = [os.path.join(d, n) for d, _, names in os.walk(copied) for n in names]
    assert len(found) == len(MODEL_FILES)  # not model-2's: a prefix is a folder, not a string
    assert network.requests == 3 + len(MODEL_FILES)  # three pages of two keys


def test_refusals_and_absences_are_the_stores_and_clear(model, seaweedfs, tmp_path):
    uri, _ = model
    wrong = _environ(seaweedfs.url, AWS_SECRET_ACCESS_KEY="not-it")
    with pytest.raises(object_store.ObjectStoreError, match="403 SignatureDoesNotMatch"):
        object_store.copy_folder(uri, str(tmp_path / "a"), wrong)
    with pytest.raises(object_store.ObjectStoreError, match="403 InvalidAccessKeyId"):
        object_store.copy_folder(
            uri, str(tmp_path / "b"), _environ(seaweedfs.url, AWS_ACCESS_KEY_ID="x")
        )
    with pytest.raises(object_store.ObjectStoreError, match="nothing under"):
        object_store.copy_folder(uri + "-gone", str(tmp_path / "c"), _environ(seaweedfs.url))
    with pytest.raises(object_store.ObjectStoreError, match="404 NoSuchBucket"):
        object_store.copy_folder(
            f"minio://{unique('other')}/m", str(tmp_path / "d"), _environ(seaweedfs.url)
        )
    with pytest.raises(object_store.ObjectStoreError, match="404 NoSuchKey"):
        object_store.copy_file(uri + "/gone.pb", str(tmp_path / "g"), _environ(seaweedfs.url))
    with pytest.raises(object_store.ObjectStoreError, match="AWS_ACCESS_KEY_ID"):
        object_store.copy_folder(
            uri, str(tmp_path / "e"), {object_store.ENDPOINT_ENV: seaweedfs.url}
        )
    unreachable = _environ("http://127.0.0.1:1")
    with pytest.raises(object_store.ObjectStoreError, match="cannot reach"):
        object_store.copy_folder(uri, str(tmp_path / "f"), unreachable)


def test_a_profiles_key_reads_its_own_prefixes_and_is_refused_the_rest(seaweedfs, tmp_path):
    """Multi-user Kubeflow from 1.11: the profile controller's policy on the namespace's key
    (tests/helpers/seaweedfs.py profile_key), and SeaweedFS's verdict on each request."""
    namespace = unique("kubeflow-user")
    keys = seaweedfs.profile_key(namespace)
    environ = _environ(seaweedfs.url, AWS_ACCESS_KEY_ID=keys[0], AWS_SECRET_ACCESS_KEY=keys[1])
    own = f"minio://mlpipeline/private/{namespace}/landmarks/train"
    seaweedfs.put(own + "/서울/0.jpg", b"jpeg")
    seaweedfs.put("minio://mlpipeline/shared/weights/w.h5", b"h5")
    assert object_store.copy_folder(own, str(tmp_path / "own"), environ) == 1
    object_store.copy_file("minio://mlpipeline/shared/weights/w.h5", str(tmp_path / "w"), environ)
    other = f"minio://mlpipeline/private/{unique('kubeflow-user')}/train"
    seaweedfs.put(other + "/0.jpg", b"jpeg")
    for refused in (other, "minio://mlpipeline/v2/artifacts", "minio://mlpipeline/weights"):
        seaweedfs.put(refused + "/x", b"x")
        with pytest.raises(object_store.ObjectStoreError, match="403 AccessDenied"):
            object_store.copy_folder(refused, str(tmp_path / "refused"), environ)


def test_a_short_answer_or_a_proxys_page_is_an_error_not_a_model(model, tmp_path):
    uri, network = model
    key = uri.split("/", 3)[3] + "/Format-Serving/saved_model.pb"
    network.cut_short = {key}
    with pytest.raises(object_store.ObjectStoreError, match="2 of 5 bytes arrived"):
        object_store.copy_folder(uri, str(tmp_path / "a"), _environ(network.url))
    network.cut_short = set()
    network.outage = (502, b"<html><body><h1>502 Bad Gateway</h1></body></html>")
    with pytest.raises(object_store.ObjectStoreError, match="HTTP 502 <html>"):
        object_store.copy_folder(uri, str(tmp_path / "b"), _environ(network.url))
    network.outage = (200, b"<html>a captive portal</html")
    with pytest.raises(object_store.ObjectStoreError, match="not a bucket listing"):
        object_store.copy_folder(uri, str(tmp_path / "c"), _environ(network.url))


@pytest.mark.parametrize("key", ["m/../../etc/x", "m/a/./b", "m/a//b"])
def test_keys_that_would_land_outside_the_copy_are_refused(key, tmp_path, monkeypatch):
    """S3 keys may hold '..' segments; requests would also fetch another object than the one
    signed (it removes dot segments from the URL)."""
    monkeypatch.setattr(object_store.Store, "keys", lambda self, prefix: [key])
    environ = {
        "AWS_ACCESS_KEY_ID": "a",
        "AWS_SECRET_ACCESS_KEY": "b",
        object_store.ENDPOINT_ENV: "http://x",
    }
    with pytest.raises(object_store.ObjectStoreError, match="no safe local name"):
        object_store.copy_folder("minio://b/m", str(tmp_path / "copy"), environ)
    assert not os.path.exists(tmp_path / "copy")


def test_a_data_store_is_read_with_its_own_names_and_many_at_once(own_store, tmp_path):
    """ImageExampleGen's store: its own keys and region under IMGTFX_DATA_* (the root's AWS_*
    left alone), every object of a Korean-named tree, 8 downloads at once, and one file."""
    bucket = unique("landmarks")
    keys = own_store.user_key(unique("reader"), bucket)
    files = {f"train/서울/경복궁/{i:03d}.jpg": bytes([i]) * (i + 1) for i in range(40)}
    for name, data in files.items():
        own_store.put(f"s3://{bucket}/{name}", data)
    own_store.put(f"s3://{bucket}/train.csv", b"id,landmark_id\n000,1\n")
    environ = {
        "AWS_ACCESS_KEY_ID": ADMIN_KEYS[0],  # the launcher's own, for KFP's store: not these
        "AWS_SECRET_ACCESS_KEY": ADMIN_KEYS[1] + "-not-this-stores",
        "IMGTFX_DATA_ACCESS_KEY_ID": keys[0],
        "IMGTFX_DATA_SECRET_ACCESS_KEY": keys[1],
        "IMGTFX_DATA_ENDPOINT": own_store.url,
        "IMGTFX_DATA_REGION": "eu-west-1",
    }
    data = object_store.data_environ(environ)
    copy = tmp_path / "copy"
    assert object_store.copy_folder(f"s3://{bucket}/train", str(copy), data, workers=8) == 40
    whole = tmp_path / "whole"  # a tree at the bucket's root: every object in it
    assert object_store.copy_folder(f"s3://{bucket}/", str(whole), data, workers=8) == 41
    assert (whole / "train.csv").is_file()
    object_store.copy_file(f"s3://{bucket}/train.csv", str(tmp_path / "t.csv"), data)
    roots = {**environ, object_store.ENDPOINT_ENV: own_store.url}  # the root's keys: refused
    with pytest.raises(object_store.ObjectStoreError, match="403 SignatureDoesNotMatch"):
        object_store.copy_file(f"s3://{bucket}/train.csv", str(tmp_path / "u"), roots)
    with pytest.raises(object_store.ObjectStoreError, match="404 NoSuchKey"):
        object_store.copy_file(f"s3://{bucket}/gone.csv", str(tmp_path / "v"), data)
    with pytest.raises(object_store.ObjectStoreError, match="give --data-secret"):
        object_store.copy_file(f"s3://{bucket}/x", str(tmp_path / "w"), {}, "give --data-secret")
    for name, content in files.items():
        assert (copy / name.removeprefix("train/")).read_bytes() == content
    assert (tmp_path / "t.csv").read_text().startswith("id,landmark_id")


def _resolver(names):
    def resolve(host, port):
        if host not in names:
            raise OSError(f"lookup {host}: no such host")
        return [("inet", None, None, "", ("10.0.0.1", port))]

    return resolve


@pytest.mark.parametrize(
    "names, environ, expected",
    [
        # 2.16 and later: SeaweedFS only (KFP's manifests define no minio-service); its S3 port
        ({"seaweedfs.kubeflow"}, {}, "http://seaweedfs.kubeflow:8333"),
        # 2.15: SeaweedFS (no port 9000 yet), and minio-service its alias: the same store
        ({"seaweedfs.kubeflow", "minio-service.kubeflow"}, {}, "http://seaweedfs.kubeflow:8333"),
        # up to 2.14, a pod of the kubeflow namespace: the service-link env the launcher reads
        (
            {"minio-service.kubeflow"},
            {"MINIO_SERVICE_SERVICE_HOST": "10.96.0.7", "MINIO_SERVICE_SERVICE_PORT": "9000"},
            "http://10.96.0.7:9000",
        ),
        # up to 2.14, a profile's pod (no service links there)
        ({"minio-service.kubeflow"}, {}, "http://minio-service.kubeflow:9000"),
    ],
    ids=["2.16+", "2.15", "2.14-kubeflow-ns", "2.14-profile"],
)
def test_kfps_store_is_found_as_each_release_deploys_it(names, environ, expected):
    assert object_store.kfp_store_endpoint(environ, _resolver(names)) == expected


def test_no_kfp_store_is_a_clear_error():
    with pytest.raises(object_store.ObjectStoreError, match="--object-store-endpoint"):
        object_store.kfp_store_endpoint({}, _resolver(set()))


@pytest.mark.parametrize(
    "session, expected",
    [
        (  # 2.16's default session
            '{"Provider":"minio","Params":{"disableSSL":"true","endpoint":"seaweedfs.kubeflow:9000",'
            '"fromEnv":"false","region":"minio","secretName":"mlpipeline-minio-artifact"}}',
            ("http://seaweedfs.kubeflow:9000", "minio"),
        ),
        (  # a providers entry for an S3-compatible store over TLS
            {
                "Provider": "s3",
                "Params": {"endpoint": "s3.example:443", "region": "r1", "fromEnv": "false"},
            },
            ("https://s3.example:443", "r1"),
        ),
        (  # AWS's own endpoint, and the default chain
            {"Provider": "s3", "Params": {"endpoint": "s3.amazonaws.com", "region": "eu-west-1"}},
            (None, "eu-west-1"),
        ),
        ({"Provider": "s3", "Params": {"fromEnv": "true"}}, (None, None)),
        (None, (None, None)),
        ("not json", (None, None)),
    ],
)
def test_the_launchers_store_session_names_the_store(session, expected):
    assert object_store.session_endpoint(session) == expected


def test_kfps_own_store_is_asked_where_it_is_now_and_a_providers_store_where_recorded(
    monkeypatch,
):
    """The launcher's default session names where KFP's store was when the model was written
    (a ClusterIP up to 2.14, minio-service at 2.15); the launcher reads an earlier run's
    artifact with the current run's session, so the copy asks the store where it is now. A
    providers entry's store (it has forcePathStyle) is where the session says."""
    monkeypatch.setattr(object_store, "kfp_store_endpoint", lambda environ: "http://now:8333")
    keys = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"}
    then = {
        "Provider": "minio",
        "Params": {"endpoint": "10.96.0.7:9000", "disableSSL": "true", "region": "minio"},
    }
    assert object_store.Store("minio://mlpipeline/m", keys, session=then)._base == (
        "http://now:8333/mlpipeline"
    )
    providers = {
        "Provider": "minio",
        "Params": {
            "endpoint": "minio.storage:9000",
            "disableSSL": "true",
            "forcePathStyle": "true",
        },
    }
    assert object_store.Store("minio://runs/m", keys, session=providers)._base == (
        "http://minio.storage:9000/runs"
    )


def test_the_store_in_the_cluster_is_reached_past_an_http_proxy(
    model, seaweedfs, tmp_path, monkeypatch
):
    """KFP's default NO_PROXY lists minio-service.kubeflow, not seaweedfs.kubeflow
    (apiserver/config/proxy/config.go@2.16.0:33): the store found in the cluster is asked
    directly; a store given by URL goes as the environment says."""
    uri, _ = model
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")  # a proxy that answers nothing
    monkeypatch.setattr(object_store, "kfp_store_endpoint", lambda environ: seaweedfs.url)
    keys = {"AWS_ACCESS_KEY_ID": ADMIN_KEYS[0], "AWS_SECRET_ACCESS_KEY": ADMIN_KEYS[1]}
    assert object_store.copy_folder(uri, str(tmp_path / "a"), keys) == len(MODEL_FILES)
    session = {"Provider": "minio", "Params": {"endpoint": "seaweedfs.kubeflow:9000"}}
    copied = object_store.copy_folder(uri, str(tmp_path / "s"), keys, session=session)
    assert copied == len(MODEL_FILES)  # a recorded session of KFP's store: the same
    with pytest.raises(object_store.ObjectStoreError, match="cannot reach"):
        object_store.copy_folder(uri, str(tmp_path / "b"), _environ(seaweedfs.url))
