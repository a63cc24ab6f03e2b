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

from imgtfx.components import object_store
from imgtfx.components.baseline_evaluator.environment import DEFAULT_METADATA_SERVICE
from imgtfx.kubeflow.stores import (
    BUCKET_SCHEMES,
    DEFAULT_ROOT,
    KFP_BUCKET,
    OBJECT_STORE_SECRET,
    PROFILE_PREFIXES,
    SERVED_FROM_ARTIFACT,
    StoreSecret,
)

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
    image: the container image every step runs in (kubeflow/Dockerfile).
    pipeline_root: the run's artifact store (gs://, s3:// or minio://BUCKET/PATH; gs:// for
      Vertex, where it is required). Open-source KFP takes the root from the run, else from
      the namespace's kfp-launcher ConfigMap (a profile's own on multi-user Kubeflow), else
      minio://mlpipeline/v2/artifacts: None leaves it to them, and what the package needs to
      know of it is then that it is on KFP's own store, minio://mlpipeline/...
    serving_dir: where blessed models are pushed; default PIPELINE_ROOT/serving, or (no root
      given) the Pusher's own `pushed_model` artifact under the run's root.
    metadata_service: open-source KFP only: host:port of the metadata gRPC service the
      Evaluator asks for the latest blessed model, or 'none' for no baseline.
    trainer_gpus, trainer_gpu_type, trainer_cpu, trainer_memory: the Trainer's container
      resources on the cluster (memory like 16G).
    object_store_secret: open-source KFP only: the pipeline root's store as
      StoreSecret.parse reads it: the Kubernetes secret with its keys (and its endpoint and
      region). The Evaluator copies its baseline model with them; for an s3:// root every
      task gets them, which the launcher reads (config/s3.go fromEnv). Default KFP's own
      `mlpipeline-minio-artifact` for a minio:// root (or none given); 'none' for none.
    object_store_endpoint: open-source KFP only: that store's endpoint URL (the secret's
      endpoint= says the same).
    data_secret: open-source KFP only: the secret ImageExampleGen reads an image tree or CSV on
      minio:// or s3:// with, as StoreSecret.parse reads it; default the root's store's secret
      for data in that store, KFP's own for minio://; 'none' for none.
    """

    output: str
    pipeline_root: str | None = None
    image: str = ""
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
        if self.platform == VERTEX and not self.pipeline_root:
            raise ValueError(
                "Vertex AI needs a root for its artifacts: give --pipeline-root gs://BUCKET/PATH."
            )
        if self.pipeline_root is not None:
            check_pipeline_root(self.pipeline_root, self.platform)
        if self.trainer_gpus < 0 or (self.trainer_cpu is not None and self.trainer_cpu <= 0):
            raise ValueError("trainer GPUs must be >= 0 and CPUs > 0.")
        if self.trainer_memory is not None:
            gigabytes(self.trainer_memory)
        if self.data_secret and self.data_secret.lower() != "none":
            StoreSecret.parse(self.data_secret, "--data-secret")
        secret = self.root_secret  # parses --object-store-secret
        if self.root_store == "s3://" and self.platform == KFP:
            if self.object_store_secret is None:
                raise ValueError(
                    f"pipeline root {self.pipeline_root}: every task's KFP launcher reads it with "
                    "the pod's AWS credentials and region: give --object-store-secret "
                    "NAME,region=REGION (or NAME,endpoint=HOST:PORT for an S3-compatible store; "
                    "'none' where the cluster gives pods AWS credentials and a region itself)."
                )
            if secret and not (secret.region or secret.endpoint_url):
                raise ValueError(
                    f"--object-store-secret {self.object_store_secret}: the KFP launcher needs "
                    "the bucket's region for an s3:// root: add ,region=REGION."
                )

    def check_weights(self, weights: str) -> None:
        """A backbone's weights file (`--weights`) the cluster's Trainer can get: one HDF5 file
        in a bucket the platform reads, and on open-source KFP, for minio:// and s3://, in the
        pipeline root's bucket (runner.weights_importer; no checks for none or imagenet).

        Raises:
          ValueError: a file the Trainer's pod could not get, saying where to put it.
        """
        if weights in ("none", "imagenet"):
            return
        stores = BUCKET_SCHEMES if self.platform == KFP else ("gs://",)
        if not weights.startswith(stores):
            raise ValueError(
                f"the cluster cannot read the weights file {weights}: copy it to a bucket "
                f"({', '.join(stores)}) and give its URI with --weights."
            )
        if not weights.endswith((".h5", ".hdf5")):
            # A checkpoint is several objects under a prefix, which the 2.17 launcher's
            # path-prefix download (objectstore DownloadBlob, #12928) does not bring along.
            raise ValueError(
                f"on Kubeflow the weights are one HDF5 file (.h5), got {weights}: save them "
                "with save_weights('<name>.h5')."
            )
        if self.platform == KFP and weights.startswith(object_store.SCHEMES):
            # The launcher opens an input outside the root's bucket with no credentials of its
            # own: gocloud has no minio driver before 2.17, and s3:// reads the pod's AWS_*
            # (component/launcher_v2.go fetchNonDefaultBuckets, objectstore.OpenBucket, 2.15.0).
            root = self.pipeline_root or DEFAULT_ROOT
            root_bucket = "/".join(root.split("/")[:3]) + "/"
            if not weights.startswith(root_bucket):
                where = (
                    f"the pipeline root's bucket {root_bucket}"
                    if self.pipeline_root
                    else f"KFP's own bucket {KFP_BUCKET}, every namespace's default root's "
                    "(give --pipeline-root if your runs use another)"
                )
                raise ValueError(
                    f"the weights file {weights} is outside {where}, which the KFP launcher "
                    "cannot read: copy it there."
                )

    @property
    def platform(self) -> str:
        return platform_of(self.output)

    @property
    def root_store(self) -> str:
        """The root's scheme (minio:// when no root is given: every KFP install's default)."""
        return (self.pipeline_root or DEFAULT_ROOT).split("://")[0] + "://"

    @property
    def serving(self) -> str:
        if self.serving_dir:
            return self.serving_dir
        if self.pipeline_root:
            return os.path.join(self.pipeline_root, "serving")
        return SERVED_FROM_ARTIFACT

    @property
    def root_secret(self) -> StoreSecret | None:
        """The pipeline root's store's secret, if any (object_store_secret)."""
        text = self.object_store_secret
        if text is None and self.root_store == "minio://":
            text = OBJECT_STORE_SECRET
        if not text or text.lower() == "none":
            return None
        secret = StoreSecret.parse(text, "--object-store-secret")
        if self.object_store_endpoint and not secret.endpoint:
            secret = dataclasses.replace(secret, endpoint=self.object_store_endpoint)
        return secret

    @property
    def secret(self) -> str | None:
        """The object-store secret's name the Evaluator's pod gets, if any."""
        secret = self.root_secret
        return secret.name if secret else None

    def data_store_secret(self, data_uris: tuple[str, ...]) -> StoreSecret | None:
        """The secret ImageExampleGen reads `data_uris` (the tree, the CSVs) with, if any.

        Raises:
          ValueError: data on s3:// with no secret to read it with, or on two stores.
        """
        if self.data_secret:
            if self.data_secret.lower() == "none":
                return None
            return StoreSecret.parse(self.data_secret, "--data-secret")
        stores = {
            scheme for scheme in object_store.SCHEMES for u in data_uris if u.startswith(scheme)
        }
        if len(stores) == 1:  # one secret reads one store
            (scheme,) = stores
            if self.root_store == scheme and self.root_secret:  # the root's store: its secret
                return self.root_secret
            if scheme == "minio://":  # KFP's own store
                return StoreSecret(OBJECT_STORE_SECRET)
        on_s3 = [uri for uri in data_uris if uri.startswith("s3://")]
        if on_s3:
            raise ValueError(
                f"ImageExampleGen reads {on_s3[0]} itself, with keys from a Kubernetes secret: "
                "give --data-secret NAME[,endpoint=HOST:PORT][,region=REGION] "
                "(docs/guides/kubeflow.md, 'Data in your own bucket')."
            )
        return None


def multi_user_notes(target: KubeflowTarget, uris: tuple[str, ...]) -> list[str]:
    """What a profile namespace of multi-user Kubeflow (1.11, KFP 2.15 and later) would refuse
    in this package: a root, data or weights on KFP's own store outside the prefixes its key
    may use. Notes, not errors: a standalone install's key reads the whole store."""
    found = []
    refused = []
    for uri in uris:
        if not uri.startswith("minio://"):
            continue
        if uri.startswith(KFP_BUCKET):
            key = uri[len(KFP_BUCKET) :]
            if not key.startswith(PROFILE_PREFIXES):
                refused.append(uri)
        elif not target.data_secret:  # another bucket, read with KFP's key
            refused.append(uri)
    if refused:
        found.append(
            "on multi-user Kubeflow (1.11 and later), a profile's key reads only "
            f"{KFP_BUCKET}private/<namespace>/, {KFP_BUCKET}shared/ and {KFP_BUCKET}artifacts/: "
            f"{', '.join(refused)} would be refused there (docs/guides/kubeflow.md, 'Multi-user "
            "Kubeflow: a profile namespace')."
        )
    root = target.pipeline_root or ""
    if root.startswith(KFP_BUCKET) and not root[len(KFP_BUCKET) :].startswith(PROFILE_PREFIXES):
        found.append(
            f"on multi-user Kubeflow (1.11 and later) a profile's key cannot write {root}: "
            "compile and submit there without --pipeline-root (the profile's own root applies)."
        )
    return found
