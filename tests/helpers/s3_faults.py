"""A network between an S3 client and a real S3 server (tests/helpers/seaweedfs.py), with the
faults a network has: every request forwarded as it came (the client's Host header too, so the
server checks the signature the client made), and, when set, answered by a proxy's error page
(`outage`), cut short (`cut_short`: keys whose answer announces its whole length and sends
half), or delayed (`latency_s`, a store across a network). The answers, refusals included,
are the server's; `requests` counts them."""

from __future__ import annotations

import http.client
import http.server
import threading
import time
import urllib.parse


class FaultyNetwork:
    """Listens on 127.0.0.1 (`url`) and forwards to `server_url`."""

    def __init__(self, server_url: str):
        target = urllib.parse.urlsplit(server_url)
        self.requests = 0
        self.outage: tuple[int, bytes] | None = None
        self.cut_short: set[str] = set()
        self.latency_s = 0.0
        network = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's API
                network.requests += 1
                if network.latency_s:
                    time.sleep(network.latency_s)
                if network.outage:
                    status, body = network.outage
                    self._answer(status, {"Content-Length": str(len(body))}, body)
                    return
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                try:
                    upstream.request("GET", self.path, headers=dict(self.headers.items()))
                    answer = upstream.getresponse()
                    body = answer.read()
                    hop = ("connection", "transfer-encoding", "content-length", "date", "server")
                    headers = {k: v for k, v in answer.getheaders() if k.lower() not in hop}
                    headers["Content-Length"] = str(len(body))
                    key = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                    key = key.lstrip("/").partition("/")[2]
                    if key in network.cut_short:
                        body = body[: len(body) // 2]  # the whole length still announced
                    self._answer(answer.status, headers, body, close=key in network.cut_short)
                finally:
                    upstream.close()

            def _answer(self, status, headers, body, close=False):
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if close:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                if close:
                    self.close_connection = True

        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
