"""Where and how a compiled pipeline runs: the Kubeflow side of `kubeflow.runner.compile(config,
target)`. The run's configuration (pipeline/run_config.py) says what runs; this says the package
file, its artifact root, the container image and the cluster's resources. Light: checked before
TFX is imported.

The target platform follows from the output file's extension:
  .yaml / .yml  open-source Kubeflow Pipelines (KFP v2 backend)
  .json         Vertex AI Pipelines (a PipelineJob)
"""

from __future__ import annotations

import dataclasses
import os
import re

from components import object_store
from components.baseline_evaluator.environment import DEFAULT_METADATA_SERVICE
from kubeflow.entrypoint import BUCKET_SCHEMES

KFP, VERTEX = "kfp", "vertex"
PLATFORMS = {".yaml": KFP, ".yml": KFP, ".json": VERTEX}
# Accelerator names: KFP asks Kubernetes for a resource; Vertex names a machine accelerator.
DEFAULT_GPU_TYPE = {KFP: "nvidia.com/gpu", VERTEX: "NVIDIA_TESLA_T4"}


def platform_of(output_file: str) -> str:
    """KFP or VERTEX, from the output's extension.

    Raises:
      ValueError: another extension.
    """
    extension = os.path.splitext(output_file)[1].lower()
    if extension not in PLATFORMS:
        raise ValueError(
            f"output {output_file}: end it in .yaml for open-source Kubeflow Pipelines or .json "
            "for Vertex AI Pipelines."
        )
    return PLATFORMS[extension]


def check_pipeline_root(pipeline_root: str, platform: str = KFP) -> None:
    """The roots the platform stores artifacts in: the KFP launcher's object store
    (objectstore/config.go ParseBucketConfig: gs://, s3://, minio://; anything else fails every
    task before its command runs), Vertex's gs://.

    Raises:
      ValueError: another root, in one line.
    """
    schemes = BUCKET_SCHEMES if platform == KFP else ("gs://",)
    parts = pipeline_root.split("/")
    if pipeline_root.startswith(schemes) and len(parts) > 2 and parts[2]:
        return
    stores = "gs://, s3:// or minio://" if platform == KFP else "gs://"
    raise ValueError(
        f"pipeline root {pipeline_root} cannot be used: "
        f"{'the Kubeflow Pipelines launcher' if platform == KFP else 'Vertex AI'} stores "
        f"artifacts in {stores} buckets only (e.g. {schemes[-1]}BUCKET/PATH)."
    )


def gigabytes(memory: str) -> float:
    """'16G', '512M', '8Gi' as (decimal) gigabytes, the unit of TFX's resource spec.

    Raises:
      ValueError: a size that cannot be read.
    """
    match = re.fullmatch(r"\s*([0-9.]+)\s*([GgMm]i?)?[Bb]?\s*", memory)
    if not match:
        raise ValueError(f"trainer memory {memory!r}: give it like 16G or 512M.")
    value = float(match.group(1))
    unit = (match.group(2) or "G").upper()
    scale = {"G": 1.0, "GI": 2**30 / 1e9, "M": 1e-3, "MI": 2**20 / 1e9}[unit]
    return value * scale


@dataclasses.dataclass(frozen=True)
class KubeflowTarget:
    """Attributes:
    output: the file to write: `.yaml` (open-source KFP package) or `.json` (Vertex AI).
    pipeline_root: the run's artifact store (gs://, s3:// or minio://BUCKET/PATH; gs:// for
      Vertex); the open-source backend takes the root from the run, so pass the same one to
      `imgtfx submit` (or set it in the kfp-launcher ConfigMap).
    image: the container image every step runs in (kubeflow/Dockerfile).
    serving_dir: where blessed models are pushed; default PIPELINE_ROOT/serving.
    metadata_service: open-source KFP only: host:port of the metadata gRPC service the
      Evaluator asks for the latest blessed model, or 'none' for no baseline.
    trainer_gpus, trainer_gpu_type, trainer_cpu, trainer_memory: the Trainer's container
      resources on the cluster (memory like 16G).
    object_store_secret: open-source KFP only: the Kubernetes secret (keys accesskey,
      secretkey) whose credentials the Evaluator copies a baseline model out of minio:// or
      s3:// with; default KFP's own `mlpipeline-minio-artifact` for a minio:// root, none
      otherwise; 'none' for none.
    object_store_endpoint: open-source KFP only: that store's endpoint URL, when not the
      launcher's default MinIO (minio-service.kubeflow:9000) or AWS.
    data_secret: open-source KFP only: the secret ImageExampleGen reads an image tree or CSV on
      minio:// or s3:// with, as DataSecret.parse reads it; default the object-store secret,
      which for a minio:// tree is KFP's own; 'none' for none.
    """

    output: str
    pipeline_root: str
    image: str
    serving_dir: str | None = None
    metadata_service: str = DEFAULT_METADATA_SERVICE
    trainer_gpus: int = 0
    trainer_gpu_type: str | None = None
    trainer_cpu: float | None = None
    trainer_memory: str | None = None
    object_store_secret: str | None = None
    object_store_endpoint: str | None = None
    data_secret: str | None = None

    def __post_init__(self) -> None:
        """Raises ValueError for a package no cluster could run."""
        if not self.image:
            raise ValueError("give the container image (--image) the steps run in.")
        check_pipeline_root(self.pipeline_root, self.platform)
        if self.trainer_gpus < 0 or (self.trainer_cpu is not None and self.trainer_cpu <= 0):
            raise ValueError("trainer GPUs must be >= 0 and CPUs > 0.")
        if self.trainer_memory is not None:
            gigabytes(self.trainer_memory)
        if self.data_secret and self.data_secret.lower() != "none":
            DataSecret.parse(self.data_secret)

    @property
    def platform(self) -> str:
        return platform_of(self.output)

    @property
    def serving(self) -> str:
        return self.serving_dir or os.path.join(self.pipeline_root, "serving")

    @property
    def secret(self) -> str | None:
        """The object-store secret the Evaluator's pod gets, if any."""
        secret = self.object_store_secret
        if secret is None and self.pipeline_root.startswith("minio://"):
            secret = OBJECT_STORE_SECRET
        return secret if secret and secret.lower() != "none" else None

    def data_store_secret(self, data_uris: tuple[str, ...]) -> DataSecret | None:
        """The secret ImageExampleGen reads `data_uris` (the tree, the CSVs) with, if any.

        Raises:
          ValueError: data on s3:// with no secret to read it with, or on two stores.
        """
        if self.data_secret:
            return (
                None if self.data_secret.lower() == "none" else DataSecret.parse(self.data_secret)
            )
        stores = {
            scheme for scheme in object_store.SCHEMES for u in data_uris if u.startswith(scheme)
        }
        root_store = self.pipeline_root.split("://")[0] + "://"
        if len(stores) == 1:  # one secret reads one store
            (scheme,) = stores
            if root_store == scheme and self.secret:  # the root's store: its secret
                return DataSecret(self.secret, endpoint=self.object_store_endpoint)
            if scheme == "minio://":  # KFP's MinIO
                return DataSecret(OBJECT_STORE_SECRET)
        on_s3 = [uri for uri in data_uris if uri.startswith("s3://")]
        if on_s3:
            raise ValueError(
                f"ImageExampleGen reads {on_s3[0]} itself, with keys from a Kubernetes secret: "
                "give --data-secret NAME[,endpoint=HOST:PORT][,region=REGION] (kubeflow/README.md,"
                " 'Data in your own bucket')."
            )
        return None


@dataclasses.dataclass(frozen=True)
class DataSecret:
    """The Kubernetes secret holding the keys of the store the users' data is in, with where
    that store is, spelled as KFP's own providers config spells a store (the kfp-launcher
    ConfigMap's `providers.s3`: endpoint, region, disableSSL, secretName, accessKeyKey,
    secretKeyKey; backend/src/v2/config/s3.go, 2.15.0).

    Attributes:
      name: the secret, in the run's namespace.
      endpoint: host[:port] or URL of an S3-compatible store; None: KFP's MinIO for minio://
        (minio-service.kubeflow:9000), AWS's regional endpoint for s3://.
      region: the store's region (signing); None: 'minio' for minio://, us-east-1 for s3://.
      access_key_key, secret_key_key: the secret's keys holding the access key and the secret
        key (KFP's MinIO secret's: accesskey, secretkey).
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
    def parse(cls, text: str) -> DataSecret:
        """'NAME[,endpoint=HOST:PORT][,region=R][,accessKeyKey=K][,secretKeyKey=K]
        [,disableSSL=true]'.

        Raises:
          ValueError: not a secret name, or a field KFP's providers config does not have.
        """
        name, *fields = [part.strip() for part in text.split(",")]
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", name):
            raise ValueError(
                f"--data-secret {text!r}: begin with the secret's name (lowercase letters, "
                "digits, '-' and '.', as Kubernetes names it), then field=value pairs."
            )
        values: dict = {}
        for field in fields:
            key, equals, value = field.partition("=")
            if key not in cls.FIELDS or not equals or not value:
                raise ValueError(
                    f"--data-secret {text!r}: {field!r} is not one of "
                    f"{', '.join(k + '=...' for k in cls.FIELDS)}."
                )
            if key == "disableSSL":
                if value.lower() not in ("true", "false"):
                    raise ValueError(f"--data-secret {text!r}: disableSSL is true or false.")
                value = value.lower() == "true"
            values[cls.FIELDS[key]] = value
        secret = cls(name, **values)
        if secret.access_key_key == secret.secret_key_key:
            raise ValueError(f"--data-secret {text!r}: accessKeyKey and secretKeyKey are one key.")
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


# The secret the KFP launcher reads MinIO credentials from (backend/src/v2/config/env.go,
# 2.2.0 to 2.15.0: minioArtifactSecretName, minioArtifactAccessKeyKey/SecretKeyKey).
OBJECT_STORE_SECRET = "mlpipeline-minio-artifact"
