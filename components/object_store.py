"""Copying folders and files out of KFP's object store or S3: the Evaluator's baseline model,
and the image tree and labels CSV that ImageExampleGen reads on Kubeflow.

TensorFlow in the image reads gs:// and local paths only, and the KFP launcher copies a task's
declared inputs only, with the pipeline root's credentials: the baseline model is found in ML
Metadata at run time, and the users' data may lie in a bucket of their own, so those tasks
copy what they read themselves. S3's REST API (ListObjectsV2 and GetObject), signed with AWS
Signature Version 4, is what SeaweedFS, MinIO and S3 all answer; the project ships no S3 client
library (tensorflow-io is not in the stack, and Beam's S3 filesystem would bring boto3 for two
calls).

Where, in this order (Store):
  IMGTFX_OBJECT_STORE_ENDPOINT   given at compile time (--object-store-endpoint, or a secret's
      endpoint=): e.g. http://minio.example:9000, path-style requests
  the launcher's store session   what the KFP launcher recorded with the artifact
      (`store_session_info`: provider, endpoint, region, disableSSL, forcePathStyle): the
      store a baseline model was written to, exactly
  for minio://, KFP's own store as a pod finds it (kfp_store_endpoint): the launcher's default
      moved with the releases (backend/src/v2/objectstore/config.go: up to 2.14
      $MINIO_SERVICE_SERVICE_HOST:PORT else minio-service.kubeflow:9000, 2.15 that constant,
      from 2.16 seaweedfs.kubeflow:9000, and 2.16's manifests define no minio-service), so the
      first of seaweedfs.kubeflow (KFP's SeaweedFS, from 2.15), a minio-service in the pod's
      own namespace (its service-link env), minio-service.kubeflow that resolves; over plain
      HTTP, path-style, region `minio`, and never through an HTTP proxy (KFP's default NO_PROXY
      lists minio-service.kubeflow but not seaweedfs.kubeflow, apiserver/config/proxy)
  for s3://, AWS's regional endpoint, virtual-hosted
As whom: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN), which the compiled
package maps from a Kubernetes secret: `mlpipeline-minio-artifact` for KFP's store (on
multi-user Kubeflow from 1.11 a key of the profile's own, allowed only its own prefixes), or the
one named at compile time. Region: AWS_REGION / AWS_DEFAULT_REGION, else the session's, else
`minio` for minio:// and us-east-1 for s3://.

The users' data store (ImageExampleGen) is read with its own names (data_environ):
IMGTFX_DATA_ACCESS_KEY_ID, IMGTFX_DATA_SECRET_ACCESS_KEY, IMGTFX_DATA_ENDPOINT and
IMGTFX_DATA_REGION, which the package maps from the secret named at compile time. Not AWS_*: the
launcher reads those in the same container for the pipeline root's own store when it has no
provider config (config/s3.go fromEnv), and a second bucket's keys must not replace the root's.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import re
import socket
import urllib.parse
import xml.etree.ElementTree as ET

ENDPOINT_ENV = "IMGTFX_OBJECT_STORE_ENDPOINT"
# The users' data store's settings, each under the name Store reads (data_environ).
DATA_ENV = {
    "IMGTFX_DATA_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
    "IMGTFX_DATA_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
    "IMGTFX_DATA_SESSION_TOKEN": "AWS_SESSION_TOKEN",
    "IMGTFX_DATA_ENDPOINT": ENDPOINT_ENV,
    "IMGTFX_DATA_REGION": "AWS_REGION",
}
MINIO_SERVICE_ENV = ("MINIO_SERVICE_SERVICE_HOST", "MINIO_SERVICE_SERVICE_PORT")
# KFP's object store's services, in the order a pod tries them (kfp_store_endpoint): SeaweedFS's
# S3 port, which its Service has from 2.15 (seaweedfs-service.yaml@2.15.0 http-s3 8333; the
# launcher's :9000 there is only from 2.16.0), and MinIO's (or 2.15's alias of SeaweedFS).
SEAWEEDFS_SERVICE = "seaweedfs.kubeflow:8333"
MINIO_SERVICE = "minio-service.kubeflow:9000"  # objectstore/config.go@2.2.0:31, @2.15.0:29
AWS_ENDPOINT = re.compile(r"^(https://)?s3(\.[a-z0-9-]+)?\.amazonaws\.com/?$")
SCHEMES = ("minio://", "s3://")  # the stores TensorFlow in the image cannot read
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class ObjectStoreError(RuntimeError):
    """The store refused or failed a request; the message says which and why."""


def _quote(text: str, safe: str = "-_.~") -> str:
    return urllib.parse.quote(text, safe=safe)


def _query(pairs) -> str:
    """A query string as SigV4 canonicalizes it: each name and value percent-encoded, sorted."""
    return "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(pairs))


def _key(secret: bytes, text: str) -> bytes:
    return hmac.new(secret, text.encode(), hashlib.sha256).digest()


def sign(
    method: str,
    url: str,
    headers: dict[str, str],
    credentials: dict[str, str],
    region: str,
    now: datetime.datetime,
    payload_sha256: str = EMPTY_SHA256,
) -> dict[str, str]:
    """`headers` plus the Signature Version 4 headers of a request (service s3)."""
    parts = urllib.parse.urlsplit(url)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    headers = {
        **headers,
        "host": parts.netloc,
        "x-amz-date": stamp,
        "x-amz-content-sha256": payload_sha256,
    }
    if credentials.get("session_token"):
        headers["x-amz-security-token"] = credentials["session_token"]
    canonical_headers = {name.lower(): " ".join(str(v).split()) for name, v in headers.items()}
    signed = ";".join(sorted(canonical_headers))
    canonical_query = _query(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    canonical = "\n".join(
        [
            method,
            _quote(urllib.parse.unquote(parts.path) or "/", safe="-_.~/"),
            canonical_query,
            "".join(f"{name}:{canonical_headers[name]}\n" for name in sorted(canonical_headers)),
            signed,
            payload_sha256,
        ]
    )
    scope = f"{stamp[:8]}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + credentials["secret_key"]).encode()
    for part in (stamp[:8], region, "s3", "aws4_request"):
        key = _key(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials['access_key']}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return headers


def kfp_store_endpoint(environ=os.environ, resolve=socket.getaddrinfo) -> str:
    """KFP's own object store's URL, as a pod of any release finds it: SeaweedFS's S3 port if
    seaweedfs.kubeflow resolves (the store from 2.15, which the launcher reaches through
    minio-service.kubeflow:9000 at 2.15 and seaweedfs.kubeflow:9000 from 2.16: both target that
    port, and profile pods may reach only it, seaweedfs-networkpolicy.yaml), else a
    minio-service of the pod's own namespace (MINIO_SERVICE_SERVICE_HOST/PORT, which Kubernetes
    sets from it and launchers up to 2.14 read first), else minio-service.kubeflow:9000 (the
    default up to 2.15).

    Raises:
      ObjectStoreError: none of them is there.
    """
    host, _, port = SEAWEEDFS_SERVICE.partition(":")
    try:
        resolve(host, int(port))
        return f"http://{SEAWEEDFS_SERVICE}"
    except OSError:
        pass
    host, port = (environ.get(name) for name in MINIO_SERVICE_ENV)
    if host and port:
        return f"http://{host}:{port}"
    host, _, port = MINIO_SERVICE.partition(":")
    try:
        resolve(host, int(port))
        return f"http://{MINIO_SERVICE}"
    except OSError:
        raise ObjectStoreError(
            f"cannot find KFP's object store: neither {SEAWEEDFS_SERVICE.split(':')[0]} (KFP "
            f"2.15 and later) nor {MINIO_SERVICE.split(':')[0]} (up to 2.15) resolves from this "
            "pod; compile with --object-store-endpoint URL (docs/guides/kubeflow.md)."
        ) from None


def _session(session: dict | str | None) -> dict:
    if isinstance(session, str):
        try:
            session = json.loads(session)
        except ValueError:
            return {}
    return session if isinstance(session, dict) else {}


def kfp_own_store(session: dict | str | None) -> bool:
    """Whether a store session is the launcher's default one for KFP's own store
    (config/env.go getDefaultMinioSessionInfo: provider minio, no forcePathStyle, which every
    providers entry sets: config/s3.go ProvideSessionInfo, 2.15.0 :112-116). Its endpoint is
    then where the store was when the artifact was written (a ClusterIP up to 2.14,
    minio-service at 2.15), not where it is now: the launcher itself reads an earlier run's
    artifact with the current run's session (launcher_v2.go fetchNonDefaultBuckets)."""
    session = _session(session)
    params = session.get("Params") or {}
    return session.get("Provider") == "minio" and "forcePathStyle" not in params


def session_endpoint(session: dict | str | None) -> tuple[str | None, str | None]:
    """(endpoint URL, region) from a KFP store session (the `store_session_info` the launcher
    records, objectstore.SessionInfo: Provider, Params), as the launcher addresses it
    (objectstore/object_store.go createS3BucketSession: http:// for disableSSL, none for
    AWS's own endpoint); (None, None) when it names none (fromEnv, gs)."""
    session = _session(session)
    params = session.get("Params") or {}
    if session.get("Provider") not in ("minio", "s3") or params.get("fromEnv") == "true":
        return None, params.get("region") or None
    endpoint = params.get("endpoint") or ""
    if not endpoint or AWS_ENDPOINT.match(endpoint.lower()):
        return None, params.get("region") or None
    if "://" not in endpoint:
        ssl = params.get("disableSSL", "false").lower() != "true"
        endpoint = ("https://" if ssl else "http://") + endpoint
    return endpoint, params.get("region") or None


def data_environ(environ=os.environ) -> dict[str, str]:
    """The users' data store's settings (IMGTFX_DATA_*, DATA_ENV) under the names Store reads;
    the service-link address of KFP's store (MINIO_SERVICE_SERVICE_HOST/PORT) as it is."""
    found = {name: environ[name] for name in MINIO_SERVICE_ENV if name in environ}
    found.update({ours: environ[env] for env, ours in DATA_ENV.items() if environ.get(env)})
    return found


class Store:
    """One bucket's objects over S3's REST API (where and as whom: the module's docstring).

    Args:
      uri: minio://bucket/path or s3://bucket/path.
      environ: the credentials, and the endpoint and region when given.
      hint: what to do when there are no credentials, for the error.
      session: the KFP store session the object was written with (store_session_info).
    """

    PAGE_SIZE = 1000  # ListObjectsV2's max-keys (S3's own default and limit)

    def __init__(self, uri: str, environ=os.environ, hint: str = "", session=None):
        scheme, _, rest = uri.partition("://")
        self.bucket, _, self.prefix = rest.partition("/")
        session_url, session_region = session_endpoint(session)
        self.region = (
            environ.get("AWS_REGION")
            or environ.get("AWS_DEFAULT_REGION")
            or session_region
            or ("minio" if scheme == "minio" else "us-east-1")
        )
        # KFP's own store is asked where it is now, directly (no HTTP proxy inside the
        # cluster: KFP's default NO_PROXY lists minio-service.kubeflow, not seaweedfs.kubeflow,
        # apiserver/config/proxy/config.go@2.16.0:33).
        endpoint = environ.get(ENDPOINT_ENV)
        self._in_cluster = not endpoint and (
            kfp_own_store(session) or (scheme == "minio" and not session_url)
        )
        if self._in_cluster:
            endpoint = kfp_store_endpoint(environ)
        elif not endpoint:
            endpoint = session_url
        if endpoint:  # KFP's store and S3-compatible stores: path-style
            self._base = f"{endpoint.rstrip('/')}/{self.bucket}"
        else:  # AWS: virtual-hosted style
            self._base = f"https://{self.bucket}.s3.{self.region}.amazonaws.com"
        access, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
        if not access or not secret:
            raise ObjectStoreError(
                f"no credentials to read {uri}: "
                + (
                    hint
                    or "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for the Evaluator (the "
                    "compiled package takes them from the mlpipeline-minio-artifact secret; see "
                    "docs/guides/kubeflow.md)."
                )
            )
        self._credentials = {
            "access_key": access,
            "secret_key": secret,
            "session_token": environ.get("AWS_SESSION_TOKEN", ""),
        }

    def _get(self, path: str, query: dict[str, str] | None = None):
        import requests

        url = self._base + _quote(path, safe="-_.~/")
        if query:
            url += "?" + _query(query.items())  # sent as signed
        now = datetime.datetime.now(datetime.timezone.utc)
        headers = sign("GET", url, {}, self._credentials, self.region, now)
        try:
            http = requests.Session()  # not closed here: the response streams from it
            http.trust_env = not self._in_cluster  # no proxy inside the cluster
            response = http.get(url, headers=headers, timeout=(10, 60), stream=True)
            if response.status_code != 200:
                body = response.content
                response.close()
                raise ObjectStoreError(f"GET {url}: HTTP {response.status_code} {_reason(body)}")
        except requests.RequestException as e:
            raise ObjectStoreError(f"cannot reach {url}: {e}") from None
        return url, response

    def keys(self, prefix: str) -> list[str]:
        """Every object key under `prefix` (ListObjectsV2, page by page)."""
        import requests

        keys, token = [], None
        while True:
            query = {"list-type": "2", "prefix": prefix, "max-keys": str(self.PAGE_SIZE)}
            if token:
                query["continuation-token"] = token
            url, response = self._get("/", query)
            try:
                with response:
                    page = ET.fromstring(response.content)
            except (requests.RequestException, ET.ParseError) as e:
                raise ObjectStoreError(f"GET {url}: not a bucket listing ({e})") from None
            keys.extend(e.findtext(f"{_S3_NS}Key") for e in page.iter(f"{_S3_NS}Contents"))
            token = page.findtext(f"{_S3_NS}NextContinuationToken")
            if page.findtext(f"{_S3_NS}IsTruncated") != "true" or not token:
                return keys

    def download(self, key: str, path: str) -> None:
        """Writes object `key` to `path`, whole: a connection that ends early is an error
        (requests does not check the length)."""
        import requests

        url, response = self._get("/" + key)
        written = 0
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)  # may meet a file
            with response, open(path, "wb") as f:
                for chunk in response.iter_content(1 << 20):
                    written += f.write(chunk)
        except (requests.RequestException, OSError) as e:
            raise ObjectStoreError(f"GET {url}: {type(e).__name__}: {e}") from None
        expected = response.headers.get("Content-Length")
        if expected is not None and int(expected) != written:
            raise ObjectStoreError(f"GET {url}: {written} of {expected} bytes arrived")


def _reason(body: bytes) -> str:
    """S3's error code from an error body, or the start of whatever else answered."""
    try:
        code = ET.fromstring(body).findtext("Code")
    except ET.ParseError:
        code = None
    return code or body[:100].decode("utf-8", "replace").strip()


def copy_folder(
    uri: str,
    destination: str,
    environ=os.environ,
    hint: str = "",
    workers: int = 1,
    session=None,
) -> int:
    """Copies every object under folder `uri` (minio://bucket/path or s3://...) into
    `destination`, `workers` at once (a store answers each GET in milliseconds; 88,000 photos
    one at a time wait mostly on the network); returns how many.

    Raises:
      ObjectStoreError: no credentials, the store unreachable or refusing, or nothing there.
    """
    store = Store(uri, environ, hint, session)
    prefix = store.prefix.rstrip("/") + "/" if store.prefix.strip("/") else ""  # "": the bucket
    keys = [k for k in store.keys(prefix) if not k.endswith("/")]  # not folder markers
    if not keys:
        raise ObjectStoreError(f"nothing under {uri}")
    targets = []
    for key in keys:
        parts = key[len(prefix) :].split("/")
        if any(part in ("", ".", "..") for part in parts):  # would land elsewhere, or not be
            raise ObjectStoreError(f"object {key!r} under {uri} has no safe local name")
        targets.append((key, os.path.join(destination, *parts)))
    if workers <= 1:
        for key, path in targets:
            store.download(key, path)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(lambda target: store.download(*target), targets):
                pass  # the first failure is raised here
    return len(targets)


def copy_file(uri: str, path: str, environ=os.environ, hint: str = "") -> None:
    """Copies the one object `uri` to `path`.

    Raises:
      ObjectStoreError: as copy_folder; HTTP 404 NoSuchKey for no such object.
    """
    store = Store(uri, environ, hint)
    store.download(store.prefix, path)
