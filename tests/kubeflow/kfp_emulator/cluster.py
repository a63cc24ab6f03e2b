"""A KFP install as a run meets it: the release, its object store behind the Kubernetes services
its manifests define, its namespaces (the kubeflow namespace of a standalone install, or the
profiles of a multi-user one) with their secrets and `kfp-launcher` ConfigMaps, and the pod
security its compiler applies. The store is a real S3 server (tests/seaweedfs.py) that enforces
each key's policy; what the launcher and the pods reach of it is what this module says they
reach, each rule cited at the tag it was read at (kubeflow/pipelines).

Services, per release (the namespace `kubeflow`):
- up to 2.14: MinIO as `minio-service` (manifests/kustomize/third-party/minio, env/platform-
  agnostic@2.14.3); SeaweedFS stands in for it here (the same S3 API; the admin key minio /
  minio123 of the standalone secret, third-party/minio/base/mlpipeline-minio-artifact-secret).
- 2.15: SeaweedFS as `seaweedfs`, and `minio-service` an alias of it
  (third-party/seaweedfs/base/seaweedfs/minio-service.yaml@2.15.0).
- from 2.16: `seaweedfs` only (no minio-service.yaml @2.16.0, @2.17.0; "Minio deployment
  manifests in KFP will be removed in 2.16.0", env/platform-agnostic-multi-user-minio@2.15.0).
Each service is port 9000 of the store's address; a pod's /etc/hosts names it, as cluster DNS
does. Kubernetes also gives a pod `<SERVICE>_SERVICE_HOST`/`_PORT` for each service of its own
namespace (service links): pods in `kubeflow` see MINIO_SERVICE_SERVICE_HOST where a
minio-service exists, pods in a profile namespace never do.

Namespaces:
- standalone: `kubeflow`, holding `mlpipeline-minio-artifact` with the admin key; no
  kfp-launcher ConfigMap (pipeline-install-config's defaultPipelineRoot is unset by default).
- multi-user: each profile (add_profile) as the profile controller makes it: from 2.15 a key of
  its own with sync.py's policy (tests/seaweedfs.py profile_key) and the ConfigMap
  `kfp-launcher` with defaultPipelineRoot minio://mlpipeline/private-artifacts/<ns>/v2/artifacts
  (pipelines-profile-controller/sync.py@2.15.0:181, @2.17.0:285); before 2.15 a copy of the
  admin secret and no ConfigMap (sync.py@2.5.0:116-125 writes one only when
  pipeline-install-config sets a root).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Mapping

from tests.kubeflow.kfp_emulator.spec import TaskFailed
from tests.kubeflow.kfp_emulator.store import Bucket, providers, s3_provider_session
from tests.seaweedfs import ADMIN_KEYS, S3_PORT, SeaweedFS

KUBEFLOW = "kubeflow"
OBJECT_STORE_SECRET = "mlpipeline-minio-artifact"  # config/env.go minioArtifactSecretName
LAUNCHER_CONFIG = "kfp-launcher"  # config/env.go configMapName
DEFAULT_PIPELINE_ROOT = "minio://mlpipeline/v2/artifacts"  # config/env.go (2.2.0 :36, 2.17.0 :38)
MINIO_SERVICE = "minio-service"
METADATA_PORT = 8080  # metadata-grpc-service's (manifests/kustomize/base/metadata/base)
SEAWEEDFS_SERVICE = "seaweedfs"
AWS_ENV_CREDENTIALS = (
    ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    ("AWS_WEB_IDENTITY_TOKEN_FILE",),
)


def version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:3])


@dataclasses.dataclass
class Namespace:
    name: str
    secrets: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    configmaps: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)


class Cluster:
    """One KFP install of release `kfp_version` over the object store `store`.

    Args:
      store: the S3 server standing for the install's store (SeaweedFS).
      kfp_version: "2.2.0" to "2.17.0".
      workdir: a folder for the pods' filesystems (`pods/`).
      multi_user: profiles (add_profile) rather than the kubeflow namespace run the pipelines.
      aws: an S3 server standing for AWS S3 (what the launcher's default AWS chain reaches for an
        s3:// URI with no providers config); None: AWS is out of reach, as from a test.
      run_as_user, run_as_group: the administrator's defaults for user containers, from 2.16
        (DEFAULT_SECURITY_CONTEXT_RUN_AS_USER/GROUP, apiserver/common/config.go@2.17.0:46-49);
        None: the image's USER.
    """

    def __init__(
        self,
        store: SeaweedFS,
        kfp_version: str = "2.15.0",
        workdir: str | None = None,
        multi_user: bool = False,
        aws: SeaweedFS | None = None,
        run_as_user: int | None = None,
        run_as_group: int | None = None,
    ):
        if workdir is None:
            raise ValueError("the emulated cluster needs a workdir for its pods.")
        self.store, self.aws = store, aws
        self.kfp = version(kfp_version)
        self.workdir = workdir
        self.multi_user = multi_user
        self.run_as_user, self.run_as_group = run_as_user, run_as_group
        self.namespaces: dict[str, Namespace] = {}
        kubeflow = self.namespace(KUBEFLOW)
        kubeflow.secrets[OBJECT_STORE_SECRET] = {
            "accesskey": ADMIN_KEYS[0],
            "secretkey": ADMIN_KEYS[1],
        }
        self.metadata_service: str | None = None  # the address serving metadata-grpc-service
        self.other_stores: dict[str, SeaweedFS] = {}  # {host name: server} of the users' own

    # --- the install's services ------------------------------------------------------------

    @property
    def services(self) -> dict[str, str]:
        """{service DNS name: address} of the object store in the kubeflow namespace."""
        names = []
        if self.kfp < (2, 16, 0):
            names.append(MINIO_SERVICE)
        if self.kfp >= (2, 15, 0):
            names.append(SEAWEEDFS_SERVICE)
        found = {f"{name}.{KUBEFLOW}": self.store.address for name in names}
        if self.metadata_service:
            found[f"metadata-grpc-service.{KUBEFLOW}"] = self.metadata_service
        return found

    def add_store(self, host: str, server: SeaweedFS) -> str:
        """An S3-compatible store of the users' own, that the cluster's pods reach as `host`
        (its port 9000); returns its endpoint, host:9000."""
        self.other_stores[host] = server
        return f"{host}:{S3_PORT}"

    def hosts(self) -> str:
        """A pod's /etc/hosts: cluster DNS for the install's services (short and full names)."""
        lines = ["127.0.0.1 localhost"]
        for name, address in self.services.items():
            lines.append(f"{address} {name} {name}.svc {name}.svc.cluster.local")
        for host, server in self.other_stores.items():
            lines.append(f"{server.address} {host}")
        return "\n".join(lines) + "\n"

    def resolve(self, host: str) -> str | None:
        """The address cluster DNS gives `host` (a service name, or an address as it is)."""
        if re.fullmatch(r"[0-9.]+", host):
            return host
        for name, address in self.services.items():
            if host in (name, f"{name}.svc", f"{name}.svc.cluster.local"):
                return address
        if host in self.other_stores:
            return self.other_stores[host].address
        return None

    def service_links(self, namespace: str) -> dict[str, str]:
        """Kubernetes' service-link env of a pod in `namespace`: the store's services there."""
        if namespace != KUBEFLOW:
            return {}
        found = {}
        for name in self.services:
            service = name.split(".")[0]
            if service in (MINIO_SERVICE, SEAWEEDFS_SERVICE):
                prefix = service.upper().replace("-", "_") + "_SERVICE"
                found[f"{prefix}_HOST"] = self.store.address
                found[f"{prefix}_PORT"] = str(S3_PORT)
        return found

    def serve_metadata(self, path: str) -> None:
        """KFP's metadata gRPC service (metadata-grpc-service.kubeflow:8080, the address the
        package's Evaluator asks by default) over the SQLite store at `path` that the launcher
        emulation records into, on a loopback address of its own."""
        from tests.kubeflow.kfp_emulator.metadata import metadata_service
        from tests.seaweedfs import loopback_address

        address = loopback_address(METADATA_PORT)
        self._metadata_server, _ = metadata_service(path, address, METADATA_PORT)
        self.metadata_service = address

    def close(self) -> None:
        server = getattr(self, "_metadata_server", None)
        if server is not None:
            server.stop(None)

    # --- namespaces ------------------------------------------------------------------------

    def namespace(self, name: str) -> Namespace:
        return self.namespaces.setdefault(name, Namespace(name))

    def secrets(self, namespace: str) -> dict[str, dict[str, str]]:
        return self.namespace(namespace).secrets

    def add_profile(self, name: str | None = None) -> str:
        """A profile namespace as the profile controller makes it; returns its name."""
        name = name or f"kubeflow-user-{uuid.uuid4().hex[:8]}"
        namespace = self.namespace(name)
        if self.kfp >= (2, 15, 0):
            # sync.py@2.15.0: a SeaweedFS key of the profile's own; the bucket ListBucket policy
            # from @2.17.0 (see tests/seaweedfs.py bucket_list_policy for 2.15's and 2.16's).
            access, secret = self.store.profile_key(name)
            namespace.configmaps[LAUNCHER_CONFIG] = {
                "defaultPipelineRoot": f"minio://mlpipeline/private-artifacts/{name}/v2/artifacts"
            }
        else:  # sync.py@2.5.0: the kubeflow namespace's secret, copied
            access, secret = ADMIN_KEYS
        namespace.secrets[OBJECT_STORE_SECRET] = {"accesskey": access, "secretkey": secret}
        return name

    def launcher_config(self, namespace: str) -> dict[str, str] | None:
        """The namespace's kfp-launcher ConfigMap data (config/env.go FromConfigMap: optional)."""
        return self.namespace(namespace).configmaps.get(LAUNCHER_CONFIG)

    # --- the root driver: the run's root and its store session ----------------------------

    def pipeline_root(self, run_root: str | None, namespace: str) -> str:
        """driver/root_dag.go (2.15.0 :95-101, 2.17.0 :97-115): the run's pipeline_root, else
        the namespace's kfp-launcher defaultPipelineRoot, else the constant
        (config/env.go DefaultPipelineRoot). The package's defaultPipelineRoot is never read
        (the API server compiles with no PipelineRoot option, compiler/argocompiler/
        argo.go@2.17.0:228-230)."""
        if run_root:
            return run_root.rstrip("/")
        config = self.launcher_config(namespace) or {}
        return (config.get("defaultPipelineRoot") or DEFAULT_PIPELINE_ROOT).rstrip("/")

    def store_session(self, root: str, namespace: str, driver_env: Mapping[str, str]) -> dict:
        """config/env.go GetStoreSessionInfo, as the root driver computes it in `namespace`
        (with `driver_env`, its pod's env) and records it in the run's context."""
        scheme = root.split("://")[0]
        configured = providers(self.launcher_config(namespace))
        if scheme == "minio":
            config = configured.get("minio")
            if not config:
                return self.default_minio_session(driver_env)
            session = s3_provider_session(config, root)
            session["Provider"] = "minio"
            return session
        if scheme == "s3":
            config = configured.get("s3")
            if not config:
                return {"Provider": "s3", "Params": {"fromEnv": "true"}}  # config/s3.go :90
            return s3_provider_session(config, root)
        return {"Provider": scheme, "Params": {"fromEnv": "true"}}  # gs: Google's defaults

    def default_minio_session(self, driver_env: Mapping[str, str]) -> dict:
        """config/env.go getDefaultMinioSessionInfo: up to 2.14 the endpoint of
        objectstore.MinioDefaultEndpoint (the pod's MINIO_SERVICE_SERVICE_HOST/PORT, else
        minio-service.kubeflow:9000, objectstore/config.go@2.2.0:154-168), 2.15 that constant
        (@2.15.0:29), from 2.16 seaweedfs.kubeflow:9000 (@2.16.0:29); maxRetries from 2.15."""
        if self.kfp >= (2, 16, 0):
            endpoint = f"{SEAWEEDFS_SERVICE}.{KUBEFLOW}:{S3_PORT}"
        elif self.kfp >= (2, 15, 0):
            endpoint = f"{MINIO_SERVICE}.{KUBEFLOW}:{S3_PORT}"
        else:
            host = driver_env.get("MINIO_SERVICE_SERVICE_HOST")
            port = driver_env.get("MINIO_SERVICE_SERVICE_PORT")
            endpoint = f"{host}:{port}" if host and port else f"{MINIO_SERVICE}.{KUBEFLOW}:9000"
        params = {
            "region": "minio",
            "endpoint": endpoint,
            "disableSSL": "true",
            "fromEnv": "false",
            "secretName": OBJECT_STORE_SECRET,
            "accessKeyKey": "accesskey",
            "secretKeyKey": "secretkey",
        }
        if self.kfp >= (2, 15, 0):
            params["maxRetries"] = "5"
        return {"Provider": "minio", "Params": params}

    # --- the launcher's bucket -------------------------------------------------------------

    def open_bucket(
        self, uri: str, session: dict | None, namespace: str, pod_env: Mapping[str, str]
    ) -> Bucket:
        """objectstore.OpenBucket (object_store.go@2.15.0:42-89, @2.17.0:43-105) for the
        bucket of `uri` with `session` (None: no session, as for an input outside the root's
        bucket). With a session that is not fromEnv: the secret's keys read from `namespace`
        through the Kubernetes API and the session's endpoint. Otherwise the AWS SDK's default
        chain: the pod's AWS_* and region, at AWS (or nothing, for minio:// before 2.17: gocloud
        has no minio driver).

        Raises:
          TaskFailed: no credentials, or no such store, as the launcher words it.
        """
        scheme, _, rest = uri.partition("://")
        bucket = rest.split("/")[0]
        if scheme == "gs":
            return Bucket(None, bucket, "gs")
        params = (session or {}).get("Params", {})
        if (
            session
            and session.get("Provider") in ("minio", "s3")
            and params.get("fromEnv") != "true"
        ):
            secret = self.secrets(namespace).get(params.get("secretName", ""))
            keys = (params.get("accessKeyKey", ""), params.get("secretKeyKey", ""))
            if secret is None:
                raise TaskFailed(
                    f'Failed to open bucket "{bucket}": failed to retrieve credentials for bucket '
                    f"{bucket}: Failed to get Bucket credentials from secret "
                    f'name="{params.get("secretName")}" namespace="{namespace}": secrets '
                    f'"{params.get("secretName")}" not found'
                )
            access, secret_key = (secret.get(k, "") for k in keys)
            if not access or not secret_key:
                raise TaskFailed(
                    f'Failed to open bucket "{bucket}": could not find specified keys '
                    f"'{keys[0]}' or '{keys[1]}'"
                )
            endpoint = params.get("endpoint", "")
            host = endpoint.split("://")[-1].split("/")[0]
            address = self.resolve(host.rsplit(":", 1)[0])
            if address is None:
                raise TaskFailed(
                    f'Failed to open bucket "{bucket}": dial tcp: lookup '
                    f"{host.rsplit(':', 1)[0]}: no such host"
                )
            server = self._server_at(address)
            return Bucket(server.client(access, secret_key), bucket, scheme)
        # No session, or fromEnv: the AWS SDK's default chain from the pod's env.
        if scheme == "minio" and self.kfp < (2, 17, 0):
            raise TaskFailed(
                f'Failed to open bucket "{bucket}": open blob.Bucket: no driver registered for '
                f'"minio" for URL "minio://{bucket}"'
            )
        if not any(all(pod_env.get(n) for n in c) for c in AWS_ENV_CREDENTIALS):
            raise TaskFailed(
                f'Failed to open bucket "{bucket}": NoCredentialProviders: no valid providers '
                "in chain (the AWS SDK's default chain reads the pod's AWS_* environment)"
            )
        if scheme == "minio":  # 2.17 newS3Client(nil, nil): AWS, virtual-hosted
            raise TaskFailed(
                f'Failed to open bucket "{bucket}": NoSuchBucket (newS3Client with no session '
                "addresses AWS S3, not the cluster's store)"
            )
        if not (pod_env.get("AWS_REGION") or pod_env.get("AWS_DEFAULT_REGION")):
            raise TaskFailed(
                f'Failed to open bucket "{bucket}": MissingRegion: could not find region '
                "configuration (set AWS_REGION for the pod)"
            )
        if self.aws is None:
            raise TaskFailed(f'Failed to open bucket "{bucket}": AWS S3 is out of reach here')
        keys = (pod_env.get("AWS_ACCESS_KEY_ID", ""), pod_env.get("AWS_SECRET_ACCESS_KEY", ""))
        return Bucket(self.aws.client(*keys), bucket, scheme)

    def _server_at(self, address: str) -> SeaweedFS:
        for server in (self.store, self.aws, *self.other_stores.values()):
            if server is not None and server.address == address:
                return server
        raise TaskFailed(f"dial tcp {address}:{S3_PORT}: connect: connection refused")
