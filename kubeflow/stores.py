"""What a compiled package knows of the object stores its tasks read and write, shared by the
compiler (target.py, runner.py, secrets.py) and the pods' entrypoint (entrypoint.py): the
schemes the KFP launcher mirrors into a pod and where, KFP's own store's defaults, what a
profile's key may use, and a store's secret as KFP's providers config spells it. Light: no TFX.
"""

from __future__ import annotations

import dataclasses
import re

from imgtfx.components import object_store

# component/launcher_v2.go LocalPathForURI (2.2.0 :714, 2.17.0 :1239).
LOCAL_MIRRORS = {"gs://": "gcs", "s3://": "s3", "minio://": "minio"}
# The stores a pipeline root may be on (objectstore/config.go ParseBucketConfig; the root
# driver's GetStoreSessionInfo takes no other provider): the ones the launcher mirrors.
BUCKET_SCHEMES = tuple(LOCAL_MIRRORS)
# The push destination of a package compiled with no root and no serving folder: the Pusher's
# own `pushed_model` artifact, under the run's root, is the served copy (entrypoint.py
# push_into_artifact).
SERVED_FROM_ARTIFACT = "/tmp/serving"
ROOT_KEY_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")  # the AWS SDK's, the launcher's
# The users' data store's keys, under the names object_store.data_environ reads.
DATA_KEY_ENV = tuple(env for env, name in object_store.DATA_ENV.items() if name in ROOT_KEY_ENV)

# The secret the KFP launcher reads its own store's credentials from (backend/src/v2/config/
# env.go, 2.2.0 to 2.17.0: minioArtifactSecretName, minioArtifactAccessKeyKey/SecretKeyKey):
# the admin's key on a standalone install, a profile's own on multi-user Kubeflow from 1.11.
OBJECT_STORE_SECRET = "mlpipeline-minio-artifact"
# Every KFP install's default root (config/env.go defaultPipelineRoot); a profile's is
# minio://mlpipeline/private-artifacts/<ns>/v2/artifacts: the same store and bucket.
DEFAULT_ROOT = "minio://mlpipeline/v2/artifacts"
KFP_BUCKET = "minio://mlpipeline/"

# What a profile's own key may read and write on multi-user Kubeflow from 1.11 (KFP 2.15): the
# profile controller's policy (manifests/kustomize/base/installs/multi-user/
# pipelines-profile-controller/sync.py@2.15.0:353-375): mlpipeline/{artifacts,
# private-artifacts/<ns>, private/<ns>, shared}/*.
PROFILE_PREFIXES = ("artifacts/", "private-artifacts/", "private/", "shared/")


@dataclasses.dataclass(frozen=True)
class StoreSecret:
    """The Kubernetes secret holding the keys of a store (the pipeline root's, or the one the
    users' data is in), with where that store is, spelled as KFP's own providers config spells
    a store (the kfp-launcher ConfigMap's `providers.s3`: endpoint, region, disableSSL,
    secretName, accessKeyKey, secretKeyKey; backend/src/v2/config/s3.go, 2.15.0).

    Attributes:
      name: the secret, in the run's namespace.
      endpoint: host[:port] or URL of an S3-compatible store; None: KFP's own store for
        minio:// (found in the pod: components/object_store.py), AWS's regional endpoint for
        s3://.
      region: the store's region (signing); None: 'minio' for minio://, us-east-1 for s3://.
      access_key_key, secret_key_key: the secret's keys holding the access key and the secret
        key (KFP's own secret's: accesskey, secretkey).
      disable_ssl: an endpoint without a scheme is http://, not https://.
    """

    name: str
    endpoint: str | None = None
    region: str | None = None
    access_key_key: str = "accesskey"
    secret_key_key: str = "secretkey"
    disable_ssl: bool = False

    FIELDS = {
        "endpoint": "endpoint",
        "region": "region",
        "accessKeyKey": "access_key_key",
        "secretKeyKey": "secret_key_key",
        "disableSSL": "disable_ssl",
    }

    @classmethod
    def parse(cls, text: str, flag: str = "--data-secret") -> StoreSecret:
        """'NAME[,endpoint=HOST:PORT][,region=R][,accessKeyKey=K][,secretKeyKey=K]
        [,disableSSL=true]', given as `flag`.

        Raises:
          ValueError: not a secret name, or a field KFP's providers config does not have.
        """
        name, *fields = [part.strip() for part in text.split(",")]
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", name):
            raise ValueError(
                f"{flag} {text!r}: begin with the secret's name (lowercase letters, "
                "digits, '-' and '.', as Kubernetes names it), then field=value pairs."
            )
        values: dict = {}
        for field in fields:
            key, equals, value = field.partition("=")
            if key not in cls.FIELDS or not equals or not value:
                raise ValueError(
                    f"{flag} {text!r}: {field!r} is not one of "
                    f"{', '.join(k + '=...' for k in cls.FIELDS)}."
                )
            if key == "disableSSL":
                if value.lower() not in ("true", "false"):
                    raise ValueError(f"{flag} {text!r}: disableSSL is true or false.")
                value = value.lower() == "true"
            values[cls.FIELDS[key]] = value
        secret = cls(name, **values)
        if secret.access_key_key == secret.secret_key_key:
            raise ValueError(f"{flag} {text!r}: accessKeyKey and secretKeyKey are one key.")
        return secret

    @property
    def endpoint_url(self) -> str | None:
        """The endpoint as a URL; None for AWS's own (requests go to the bucket's regional,
        virtual-hosted endpoint)."""
        endpoint = self.endpoint
        if not endpoint or re.match(r"^(https://)?s3(\.[a-z0-9-]+)?\.amazonaws\.com/?$", endpoint):
            return None
        if "://" not in endpoint:
            endpoint = ("http://" if self.disable_ssl else "https://") + endpoint
        return endpoint

    def providers(self) -> dict:
        """This store as the `providers.s3` entry of a kfp-launcher ConfigMap
        (config/s3.go S3ProviderConfig, 2.15.0 :26-66: default endpoint, region, disableSSL,
        forcePathStyle, credentials.secretRef), which the launcher of every release from 2.2
        reads for an s3:// root in that namespace."""
        default = {
            "endpoint": self.endpoint,
            "region": self.region or "us-east-1",
            "disableSSL": self.disable_ssl,
            "forcePathStyle": True,
            "credentials": {
                "fromEnv": False,
                "secretRef": {
                    "secretName": self.name,
                    "accessKeyKey": self.access_key_key,
                    "secretKeyKey": self.secret_key_key,
                },
            },
        }
        return {"s3": {"default": default}}
