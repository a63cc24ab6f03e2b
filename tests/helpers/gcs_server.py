"""A Google Cloud Storage that TensorFlow's `gs://` and Beam's GCS IO both reach, for tests.

The storage is `gcp-storage-emulator` (PyPI, in memory): GCS's JSON API, uploads, downloads,
listing with prefix, delimiter and pages, the batch endpoint Beam's file sinks use to finish.
In front of it a proxy brings both clients there, as each really connects:

- TensorFlow 2.16's own GCS file system (tsl/platform/cloud/gcs_file_system.cc, v2.16.1) has
  `https://www.googleapis.com` and `storage.googleapis.com` fixed, no emulator setting; its
  libcurl honours `https_proxy` and `CURL_CA_BUNDLE`, and its auth takes
  `GOOGLE_AUTH_TOKEN_FOR_TESTING` (google_auth_provider.cc) before any credentials. So the
  proxy answers CONNECT to those hosts with a certificate from a CA made here, and forwards
  the decrypted requests. (TensorFlow's modular file system, `tensorflow-io-gcs-filesystem`
  0.37.1, which reads an emulator variable, crashes TF 2.16 on its first call here.)
- Beam 2.61's GCS IO uses google-cloud-storage, which honours `STORAGE_EMULATOR_HOST` (plain
  HTTP to the proxy) with the service-account file `env()` names (its token address is the
  proxy's; without a credentials file google-auth probes a metadata server for 18 s).

The proxy records every request (`requests()`: method, path, status) so that a test can count
list requests against per-object ones, and answers chosen requests with an error (`fail`), as
a bucket answers an object the caller may not read (403) or one deleted after it was listed
(404). Run clients in a subprocess with `env()`: TensorFlow reads these settings once.

Over 400 lines: the server, its certificates and the proxy are one harness, none of them of use
alone.
"""

from __future__ import annotations

import datetime
import http.client
import http.server
import json
import os
import socket
import ssl
import threading
import time
import urllib.parse

BUCKET = "fake-bucket"  # not "b": the emulator's /b/{bucket} route would catch the path
GOOGLE_HOSTS = ("www.googleapis.com", "storage.googleapis.com", "oauth2.googleapis.com")
_HOP_HEADERS = {
    "proxy-connection",
    "connection",
    "transfer-encoding",
    "content-length",
    "keep-alive",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _certificates(folder: str) -> tuple[str, str, str]:
    """(ca.pem, leaf.pem, leaf.key): a CA of this test's own, and a certificate it signs for
    the Google hosts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def builder(subject, issuer, key):
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
        )

    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = (
        builder("fake-gcs-ca", "fake-gcs-ca", ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        builder(GOOGLE_HOSTS[0], "fake-gcs-ca", leaf_key)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in GOOGLE_HOSTS]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = tuple(os.path.join(folder, name) for name in ("ca.pem", "leaf.pem", "leaf.key"))
    pem = serialization.Encoding.PEM
    for path, data in zip(
        paths,
        (
            ca.public_bytes(pem),
            leaf.public_bytes(pem),
            leaf_key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        ),
        strict=True,
    ):
        with open(path, "wb") as f:
            f.write(data)
    return paths


def _service_account(path: str, token_uri: str) -> None:
    """A service-account file whose token address is the proxy's (google-auth 2.x ignores the
    token address of an `authorized_user` file)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    account = {
        "type": "service_account",
        "project_id": "fake-project",
        "private_key_id": "fake",
        "private_key": key.decode(),
        "client_email": "tests@fake-project.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(account, f)


class GcsServer:
    """The emulator and its proxy, started at once; `close()` stops both."""

    def __init__(self, folder: str):
        from gcp_storage_emulator import server as emulator_server
        from gcp_storage_emulator import storage
        from gcp_storage_emulator.handlers import objects
        from gcp_storage_emulator.server import create_server

        os.makedirs(folder, exist_ok=True)
        self._lock = threading.Lock()
        self._requests: list[dict] = []
        self._faults: dict[str, int] = {}
        media_upload = objects._media_upload

        def empty_upload(request, response, storage):
            # gcp-storage-emulator 2026.7.19 fails on an empty media upload (len(None)); TF
            # writes one for every folder it makes.
            if request.data is None:
                request._data = b""
            return media_upload(request, response, storage)

        objects._media_upload = empty_upload
        # In memory there is nothing to persist; the emulator rewrites all objects' metadata as
        # one JSON file on every write (O(objects) a request: minutes over a pipeline run).
        storage.Storage._write_config_to_file = lambda self: None
        handler = emulator_server.RequestHandler
        if handler.setup is http.server.BaseHTTPRequestHandler.setup:
            handler.setup = _setup_no_delay  # its replies too: 40 ms each without
        self._emulator_port = _free_port()
        self._emulator = create_server(
            "127.0.0.1", self._emulator_port, in_memory=True, default_bucket=BUCKET
        )
        self._emulator.start()
        self.ca, leaf, key = _certificates(folder)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(leaf, key)
        self._proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _proxy_handler(self, tls))
        self._proxy.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._proxy.server_address[1]}"
        self.credentials = os.path.join(folder, "service_account.json")
        _service_account(self.credentials, f"{self.url}/token")
        threading.Thread(target=self._proxy.serve_forever, daemon=True).start()

    def env(self) -> dict[str, str]:
        """What a client process needs to reach this GCS."""
        return {
            "https_proxy": self.url,
            # The emulator names an object's download link after the host it was written
            # through (http://www.googleapis.com/download/... for TensorFlow's writes), which
            # google-cloud-storage then follows: over plain HTTP, through the proxy as well.
            "http_proxy": self.url,
            "no_proxy": "127.0.0.1,localhost",
            "CURL_CA_BUNDLE": self.ca,
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "fake-token",
            "NO_GCE_CHECK": "true",
            # An error answers at once: TensorFlow's default is ten retries over minutes.
            "GCS_RETRY_CONFIG_MAX_RETRIES": "1",
            "GCS_RETRY_CONFIG_INIT_DELAY_TIME_US": "1000",
            "STORAGE_EMULATOR_HOST": self.url,
            "GOOGLE_APPLICATION_CREDENTIALS": self.credentials,
        }

    def put(self, name: str, data: bytes) -> None:
        """Uploads object `name` of BUCKET (straight to the emulator: not recorded)."""
        connection = http.client.HTTPConnection("127.0.0.1", self._emulator_port, timeout=60)
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        connection.request("POST", f"/upload/storage/v1/b/{BUCKET}/o?{query}", body=data)
        response = connection.getresponse()
        response.read()
        connection.close()
        if response.status != 200:
            raise RuntimeError(f"upload of {name} answered {response.status}")

    def get(self, name: str) -> bytes:
        """Object `name` of BUCKET (straight from the emulator: not recorded)."""
        return self._emulator_get(
            f"/download/storage/v1/b/{BUCKET}/o/{urllib.parse.quote(name, safe='')}?alt=media"
        )

    def names(self, prefix: str) -> list[str]:
        """The names of BUCKET's objects under `prefix` (not recorded)."""
        names, token = [], None
        while True:
            query = {"prefix": prefix, **({"pageToken": token} if token else {})}
            page = json.loads(
                self._emulator_get(f"/storage/v1/b/{BUCKET}/o?{urllib.parse.urlencode(query)}")
            )
            names += [item["name"] for item in page.get("items", [])]
            token = page.get("nextPageToken")
            if not token:
                return names

    def _emulator_get(self, path: str) -> bytes:
        connection = http.client.HTTPConnection("127.0.0.1", self._emulator_port, timeout=60)
        connection.request("GET", path)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}")
        return data

    def put_tree(self, folder: str, prefix: str) -> list[str]:
        """Uploads every file under `folder` as `prefix/<relative path>`; returns the names."""
        names = []
        for parent, _, files in os.walk(folder):
            for file in files:
                path = os.path.join(parent, file)
                name = f"{prefix}/{os.path.relpath(path, folder).replace(os.sep, '/')}"
                with open(path, "rb") as f:
                    self.put(name, f.read())
                names.append(name)
        return names

    def fail(self, object_name: str, status: int) -> None:
        """Every request for object `name` (its metadata, its bytes, by either client) answers
        `status` from now on; listings still show it."""
        with self._lock:
            self._faults[object_name] = status

    def requests(self) -> list[dict]:
        with self._lock:
            return list(self._requests)

    def close(self) -> None:
        self._proxy.shutdown()
        self._proxy.server_close()
        self._emulator.stop()

    # The proxy's side.

    def _record(self, entry: dict) -> None:
        with self._lock:
            self._requests.append(entry)

    def _fault(self, path: str) -> int | None:
        """The status set for the object a request names, if any: TensorFlow reads
        /BUCKET/NAME and stats /storage/v1/b/BUCKET/o/NAME, Beam reads /download/storage/...,
        each NAME percent-encoded."""
        target = urllib.parse.unquote(urllib.parse.urlsplit(path).path)
        for prefix in (
            f"/{BUCKET}/",
            f"/storage/v1/b/{BUCKET}/o/",
            f"/download/storage/v1/b/{BUCKET}/o/",
        ):
            if target.startswith(prefix):
                with self._lock:
                    return self._faults.get(target[len(prefix) :])
        return None


def kind(request: dict) -> str:
    """'list', 'metadata', 'read' or 'write': what a recorded request asked of GCS's JSON API
    (TensorFlow reads an object at /BUCKET/NAME, Beam at /download/storage/v1/...)."""
    path, _, query = request["path"].partition("?")
    if request["method"] != "GET":
        return "write"
    if path == f"/storage/v1/b/{BUCKET}/o":
        return "list"
    if path.startswith(f"/storage/v1/b/{BUCKET}/o/"):
        return "read" if "alt=media" in query else "metadata"
    return "read"


def object_name(request: dict) -> str:
    """The object a request names ('' for a listing)."""
    path = urllib.parse.unquote(request["path"].partition("?")[0])
    for prefix in (
        f"/storage/v1/b/{BUCKET}/o/",
        f"/download/storage/v1/b/{BUCKET}/o/",
        f"/{BUCKET}/",
    ):
        if path.startswith(prefix):
            return path[len(prefix) :]
    return ""


def _setup_no_delay(handler: http.server.BaseHTTPRequestHandler) -> None:
    """A request handler's setup that sends each write at once: headers and body go out in
    separate writes, and Nagle's algorithm held the second until the client's delayed ACK,
    40 ms a request."""
    http.server.BaseHTTPRequestHandler.setup(handler)
    handler.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _proxy_handler(server: GcsServer, tls: ssl.SSLContext):
    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        setup = _setup_no_delay

        def do_CONNECT(self):  # TensorFlow: TLS to a Google host, ended here
            self.send_response(200, "Connection established")
            self.end_headers()
            self.wfile.flush()
            self.connection = tls.wrap_socket(self.connection, server_side=True)
            self.rfile = self.connection.makefile("rb", self.rbufsize)
            self.wfile = self.connection.makefile("wb", 0)
            self.tls_host = self.path.split(":")[0]
            self.close_connection = False

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = b""
                while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                    body += self.rfile.read(size)
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return body
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _reply(self, status: int, headers, body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _forward(self):
            tls_host = getattr(self, "tls_host", None)
            split = urllib.parse.urlsplit(self.path)
            path = split.path + (f"?{split.query}" if split.query else "")
            body = self._body()
            if path == "/token":  # the service-account file's token address
                token = {"access_token": "fake-token", "expires_in": 3600, "token_type": "Bearer"}
                return self._reply(
                    200, [("Content-Type", "application/json")], json.dumps(token).encode()
                )
            entry = {
                "time": time.time(),
                "method": self.command,
                "path": path,
                "tls": bool(tls_host),
            }
            status = server._fault(path)
            if status is not None:
                entry.update(status=status, injected=True)
                server._record(entry)
                error = {
                    "error": {"code": status, "message": "injected by tests/helpers/gcs_server.py"}
                }
                return self._reply(
                    status, [("Content-Type", "application/json")], json.dumps(error).encode()
                )
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
            if body or self.command in ("POST", "PUT", "PATCH"):
                headers["Content-Length"] = str(len(body))
            connection = http.client.HTTPConnection("127.0.0.1", server._emulator_port, timeout=60)
            connection.request(self.command, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            connection.close()
            out = []
            for name, value in response.getheaders():
                if name.lower() in _HOP_HEADERS | {"server", "date"}:
                    continue
                if name.lower() == "location" and tls_host and value.startswith("http://"):
                    value = "https://" + value[len("http://") :]  # TF's upload: stay on TLS
                out.append((name, value))
            entry["status"] = response.status
            server._record(entry)
            self._reply(response.status, out, data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _forward

    return Proxy
