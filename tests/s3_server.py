"""A MinIO stand-in for tests: S3's ListObjectsV2 and GetObject over HTTP, on a local folder.

What the client under test meets on a cluster, as S3's API reference states it: path-style
requests (/BUCKET/KEY), Signature Version 4 in the Authorization header (a wrong one answers
403 SignatureDoesNotMatch, an unknown key 403 InvalidAccessKeyId), ListObjectsV2 pages of at
most max-keys (here 2 by default, so that paging is exercised) with IsTruncated and
NextContinuationToken, keys in UTF-8 binary order, 404 NoSuchKey. The signature is checked by
recomputing it with the client's `sign`, which tests check against AWS's published example.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import os
import threading
import time
import urllib.parse
from xml.sax.saxutils import escape

from components import object_store

ACCESS_KEY, SECRET_KEY = "minio", "minio123"  # KFP's standalone install's MinIO keys


def _error(handler, status: int, code: str) -> None:
    body = f"<?xml version='1.0'?><Error><Code>{code}</Code></Error>".encode()
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class S3Server:
    """Serves `folder/<bucket>/<key>` to the holder of `access_key` and `secret_key` (KFP's
    MinIO's by default); `url` is its endpoint; `requests` counts GETs.
    Faults to set: `outage` (status, body) answers every request so (a proxy's error page);
    `cut_short` keys are sent with their whole length announced and half their bytes;
    `latency_s` waits before each answer (a store across a network)."""

    def __init__(
        self,
        folder: str,
        region: str = "minio",
        page_size: int = 2,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
    ):
        self.folder, self.region, self.page_size = folder, region, page_size
        self.access_key, self.secret_key = access_key, secret_key
        self.requests = 0
        self.outage: tuple[int, bytes] | None = None
        self.cut_short: set[str] = set()
        self.latency_s = 0.0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's API
                server.requests += 1
                if server.latency_s:
                    time.sleep(server.latency_s)
                if server.outage:
                    status, body = server.outage
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if not server._signed(self):
                    return
                parts = urllib.parse.urlsplit(self.path)
                bucket, _, key = urllib.parse.unquote(parts.path).lstrip("/").partition("/")
                query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
                if not os.path.isdir(os.path.join(server.folder, bucket)):
                    return _error(self, 404, "NoSuchBucket")
                if query.get("list-type") == "2":
                    return server._list(self, bucket, query)
                path = os.path.join(server.folder, bucket, *key.split("/"))
                if not key or not os.path.isfile(path):
                    return _error(self, 404, "NoSuchKey")
                with open(path, "rb") as f:
                    data = f.read()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if key in server.cut_short else data)
                self.close_connection = True

        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def _signed(self, handler) -> bool:
        auth = handler.headers.get("Authorization", "")
        fields = dict(
            item.strip().split("=", 1) for item in auth.partition(" ")[2].split(",") if "=" in item
        )
        access_key = fields.get("Credential", "").split("/")[0]
        if access_key != self.access_key:
            _error(handler, 403, "InvalidAccessKeyId")
            return False
        names = fields.get("SignedHeaders", "").split(";")
        headers = {n: handler.headers.get(n, "") for n in names if n not in _SIGNER_HEADERS}
        stamp = handler.headers.get("x-amz-date", "")
        now = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")
        expected = object_store.sign(
            "GET",
            f"http://{handler.headers['Host']}{handler.path}",
            headers,
            {"access_key": self.access_key, "secret_key": self.secret_key},
            self.region,
            now,
        )["Authorization"]
        if expected != auth:
            _error(handler, 403, "SignatureDoesNotMatch")
            return False
        return True

    def _list(self, handler, bucket: str, query: dict) -> None:
        base = os.path.join(self.folder, bucket)
        keys = []
        for folder, _, names in os.walk(base):
            for name in names:
                key = os.path.relpath(os.path.join(folder, name), base).replace(os.sep, "/")
                if key.startswith(query.get("prefix", "")):
                    keys.append(key)
        keys.sort(key=lambda k: k.encode())
        token = query.get("continuation-token")
        start = int(base64.b64decode(token[: -len(_TOKEN_TAIL)])) if token else 0
        page = keys[start : start + self.page_size]
        truncated = start + self.page_size < len(keys)
        body = "".join(f"<Contents><Key>{escape(k)}</Key></Contents>" for k in page)
        if truncated:  # opaque, with the characters a query string must escape
            token = base64.b64encode(str(start + self.page_size).encode()).decode() + _TOKEN_TAIL
            body += f"<NextContinuationToken>{escape(token)}</NextContinuationToken>"
        xml = (
            "<?xml version='1.0' encoding='UTF-8'?>"
            "<ListBucketResult xmlns='http://s3.amazonaws.com/doc/2006-03-01/'>"
            f"<Name>{bucket}</Name><IsTruncated>{str(truncated).lower()}</IsTruncated>{body}"
            "</ListBucketResult>"
        ).encode()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(xml)))
        handler.end_headers()
        handler.wfile.write(xml)


_TOKEN_TAIL = "/+="
_SIGNER_HEADERS = {"host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}
