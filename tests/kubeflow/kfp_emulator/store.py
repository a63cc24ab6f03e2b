"""The launcher's object-store side: an opened bucket (objectstore.OpenBucket's, listing,
downloading and uploading through a real S3 client with the session's keys) and the providers
config of a kfp-launcher ConfigMap (config/env.go, config/s3.go). cluster.py decides which
bucket a URI opens with which keys."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from tests.kubeflow.kfp_emulator.spec import TaskFailed


def s3_client(endpoint_url: str, keys: tuple[str, str], path_style: bool = True):
    """A boto3 S3 client of `endpoint_url` with `keys` (the launcher's aws-sdk-go-v2 client)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=keys[0],
        aws_secret_access_key=keys[1],
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path" if path_style else "virtual"},
            retries={"max_attempts": 2},
            connect_timeout=10,
        ),
    )


class Bucket:
    """An opened bucket: `client` a boto3 S3 client with the session's keys (None: gs://, which
    the emulation does not store)."""

    def __init__(self, client, name: str, scheme: str):
        self.client, self.name, self.scheme = client, name, scheme

    def _call(self, what: str, call):
        import botocore.exceptions

        try:
            return call()
        except botocore.exceptions.ClientError as e:
            error = e.response.get("Error", {})
            raise TaskFailed(f"{what}: {error.get('Code')}: {error.get('Message', '')}") from None
        except botocore.exceptions.BotoCoreError as e:  # no connection, TLS to a plain port
            raise TaskFailed(f"{what}: {type(e).__name__}: {e}") from None

    def keys(self, prefix: str) -> list[str]:
        """Every key with the string prefix `prefix` (blob.List with Prefix)."""
        if self.client is None:
            raise TaskFailed(f"gs://{self.name}: the emulation stores no gs:// objects")
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.name, Prefix=prefix)
        return self._call(
            f'failed to list objects in remote storage "{prefix}"',
            lambda: [o["Key"] for page in pages for o in page.get("Contents", [])],
        )

    def download(self, key: str, path: str) -> None:
        body = self._call(
            f'downloadFile(): unable to complete copying "{key}" to local storage "{path}"',
            lambda: self.client.get_object(Bucket=self.name, Key=key)["Body"].read(),
        )
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(body)

    def upload(self, path: str, key: str) -> None:
        with open(path, "rb") as f:
            data = f.read()
        self._call(
            f'uploadFile(): unable to complete copying "{path}" to remote storage "{key}"',
            lambda: self.client.put_object(Bucket=self.name, Key=key, Body=data),
        )


def providers(config: Mapping[str, str] | None) -> dict:
    """config/env.go getBucketProviders: the ConfigMap's `providers`, YAML."""
    import yaml

    text = (config or {}).get("providers", "")
    return (yaml.safe_load(text) or {}) if text else {}


def s3_provider_session(config: dict, root: str) -> dict:
    """config/s3.go S3ProviderConfig.ProvideSessionInfo (2.15.0 :82-171): the default's
    endpoint, region, disableSSL (false), forcePathStyle (true), maxRetries (5) and secretRef,
    or fromEnv; overrides are not modelled (this package's tests set none)."""
    default = config.get("default")
    if not default:
        return {"Provider": "s3", "Params": {"fromEnv": "true"}}
    if not default.get("credentials"):
        raise TaskFailed("invalid provider config: missing default credentials")
    params = {
        "endpoint": default.get("endpoint", ""),
        "region": default.get("region", ""),
        "disableSSL": json.dumps(bool(default.get("disableSSL", False))),
        "forcePathStyle": json.dumps(bool(default.get("forcePathStyle", True))),
        "maxRetries": str(default.get("maxRetries", 5)),
        "fromEnv": json.dumps(bool(default["credentials"].get("fromEnv", False))),
    }
    if params["fromEnv"] == "false":
        ref = default["credentials"].get("secretRef") or {}
        params["secretName"] = ref.get("secretName", "")
        params["accessKeyKey"] = ref.get("accessKeyKey", "")
        params["secretKeyKey"] = ref.get("secretKeyKey", "")
    return {"Provider": "s3", "Params": params}
