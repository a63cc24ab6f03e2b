"""A KFP install as a run meets it: the release, its object store behind the Kubernetes services
its manifests define, its namespaces (the kubeflow namespace of a standalone install, or the
profiles of a multi-user one) with their secrets and `kfp-launcher` ConfigMaps, and the pod
security its compiler applies. The store is a real S3 server (tests/helpers/seaweedfs.py) that
enforces each key's policy; what the launcher and the pods reach of it is what this module says they
reach, each rule cited at the tag it was read at (kubeflow/pipelines).

Services, per release (the namespace `kubeflow`), each with the ports its manifest gives it:
- up to 2.14: MinIO as `minio-service`, port 9000 (manifests/kustomize/third-party/minio,
  env/platform-agnostic@2.14.3); SeaweedFS stands in for it here (the same S3 API; the admin
  key minio / minio123 of the standalone secret).
- 2.15: SeaweedFS as `seaweedfs`, ports 8333 (http-s3) and others but no 9000
  (third-party/seaweedfs/base/seaweedfs/seaweedfs-service.yaml@2.15.0), and `minio-service` an
  alias of it, port 9000 to 8333 (minio-service.yaml@2.15.0).
- from 2.16: `seaweedfs` only, ports 8333 and 9000 (http-s3-compat, to 8333: seaweedfs-
  service.yaml@2.16.0; no minio-service.yaml @2.16.0, @2.17.0).
Each Service is a ClusterIP of its own forwarding only its ports (services.py); a pod's
/etc/hosts names it, as cluster DNS does. Kubernetes also gives a pod `<SERVICE>_SERVICE_HOST`/
`_PORT` for each service of its own namespace (service links): pods in `kubeflow` see
MINIO_SERVICE_SERVICE_HOST where a minio-service exists, pods in a profile namespace never do.

Namespaces:
- standalone: `kubeflow`, holding `mlpipeline-minio-artifact` with the admin key; no
  kfp-launcher ConfigMap (pipeline-install-config's defaultPipelineRoot is unset by default).
- multi-user: each profile (add_profile) as the profile controller makes it: from 2.15 a key of
  its own with sync.py's policy (tests/helpers/seaweedfs.py profile_key) and the ConfigMap
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

from tests.helpers.seaweedfs import ADMIN_KEYS, S3_PORT, SeaweedFS
from tests.kubeflow.kfp_emulator.services import Service
from tests.kubeflow.kfp_emulator.spec import TaskFailed
from tests.kubeflow.kfp_emulator.store import Bucket, providers, s3_client, s3_provider_session

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
        self._services: dict[str, Service] = {}

    # --- the install's services ------------------------------------------------------------

    def _store_services(self) -> dict[str, dict[int, int]]:
        """{service: {port: target port}} of the store in the kubeflow namespace."""
        found = {}
        if self.kfp < (2, 16, 0):
            found[MINIO_SERVICE] = {9000: S3_PORT}
        if (2, 15, 0) <= self.kfp < (2, 16, 0):
            found[SEAWEEDFS_SERVICE] = {S3_PORT: S3_PORT}
        if self.kfp >= (2, 16, 0):
            found[SEAWEEDFS_SERVICE] = {S3_PORT: S3_PORT, 9000: S3_PORT}
        return found

    def _service(self, name: str, ports: dict[int, tuple[str, int]]) -> Service:
        if name not in self._services:
            self._services[name] = Service(name, ports)
        return self._services[name]

    @property
    def services(self) -> dict[str, Service]:
        """{DNS name: Service} of the install, and the users' stores the cluster reaches."""
        for name, ports in self._store_services().items():
            target = {port: (self.store.address, to) for port, to in ports.items()}
            self._service(f"{name}.{KUBEFLOW}", target)
        return dict(self._services)

    def add_store(self, host: str, server: SeaweedFS, port: int = 9000) -> str:
        """An S3-compatible store of the users' own, which the cluster's pods reach as
        `host`:`port`; returns that endpoint."""
        self._service(host, {port: (server.address, S3_PORT)})
        return f"{host}:{port}"

    def hosts(self) -> str:
        """A pod's /etc/hosts: cluster DNS for the install's services (short and full names)."""
        lines = ["127.0.0.1 localhost"]
        for name, service in self.services.items():
            names = [name]
            if name.endswith(f".{KUBEFLOW}"):
                names += [f"{name}.svc", f"{name}.svc.cluster.local"]
            lines.append(f"{service.address} {' '.join(names)}")
        return "\n".join(lines) + "\n"

    def resolve(self, host: str) -> str | None:
        """The address cluster DNS gives `host` (a service name, or an address as it is)."""
        if re.fullmatch(r"[0-9.]+", host):
            return host
        for name, service in self.services.items():
            if host in (name, f"{name}.svc", f"{name}.svc.cluster.local"):
                return service.address
        return None

    def service_links(self, namespace: str) -> dict[str, str]:
        """Kubernetes' service-link env of a pod in `namespace`: the store's services there
        (the first port of each, as Kubernetes gives it)."""
        if namespace != KUBEFLOW:
            return {}
        found = {}
        for name, service in self.services.items():
            short = name.split(".")[0]
            if name.endswith(f".{KUBEFLOW}") and short in (MINIO_SERVICE, SEAWEEDFS_SERVICE):
                prefix = short.upper().replace("-", "_") + "_SERVICE"
                found[f"{prefix}_HOST"] = service.address
                found[f"{prefix}_PORT"] = str(next(iter(service.ports)))
        return found

    def serve_metadata(self, path: str) -> None:
        """KFP's metadata gRPC service (metadata-grpc-service.kubeflow:8080, the address the
        package's Evaluator asks by default) over the SQLite store at `path` that the launcher
        emulation records into, behind a Service of its own."""
        from tests.kubeflow.kfp_emulator.metadata import metadata_service

        self._metadata_server, port = metadata_service(path)
        name = f"metadata-grpc-service.{KUBEFLOW}"
        self._service(name, {METADATA_PORT: ("127.0.0.1", port)})

    def close(self) -> None:
        server = getattr(self, "_metadata_server", None)
        if server is not None:
            server.stop(None)
        for service in self._services.values():
            service.close()
        self._services.clear()

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
            # from @2.17.0 (tests/helpers/seaweedfs.py bucket_list_policy: 2.15's and 2.16's).
            access, secret = self.store.profile_key(name, delete=self.kfp >= (2, 17, 0))
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
            endpoint = f"{SEAWEEDFS_SERVICE}.{KUBEFLOW}:9000"
        elif self.kfp >= (2, 15, 0):
            endpoint = f"{MINIO_SERVICE}.{KUBEFLOW}:9000"
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
            # createS3BucketSession (object_store.go@2.15.0:268-296, @2.17.0:335-365): the
            # endpoint over http:// when disableSSL, else https://; path-style unless
            # forcePathStyle is false; cluster DNS for its host.
            endpoint = params.get("endpoint", "")
            if "://" not in endpoint:
                ssl = params.get("disableSSL", "false") != "true"
                endpoint = ("https://" if ssl else "http://") + endpoint
            scheme_, _, host = endpoint.partition("://")
            host = host.split("/")[0]
            name, _, port = host.partition(":")
            address = self.resolve(name)
            if address is None:
                raise TaskFailed(
                    f'Failed to open bucket "{bucket}": dial tcp: lookup {name}: no such host'
                )
            port = port or ("443" if scheme_ == "https" else "80")
            path_style = params.get("forcePathStyle", "true") != "false"
            client = s3_client(f"{scheme_}://{address}:{port}", (access, secret_key), path_style)
            return Bucket(client, bucket, scheme)
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
