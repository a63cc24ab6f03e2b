"""Kubernetes Services, as a pod reaches them: a ClusterIP of the service's own (here a loopback
address) on which each of the service's ports forwards to its target, a pod's address and
container port. A port the Service does not define refuses the connection, as on a cluster; so
a client that asks `seaweedfs.kubeflow:9000` on a release whose `seaweedfs` Service has no port
9000 fails here too."""

from __future__ import annotations

import socket
import socketserver
import threading

from tests.helpers.seaweedfs import loopback_address


class Service:
    """`name`'s ClusterIP (`address`), forwarding each port of `ports` ({port: (address,
    port)}) to its target."""

    def __init__(self, name: str, ports: dict[int, tuple[str, int]]):
        self.name, self.ports = name, dict(ports)
        self.address = loopback_address(*self.ports)
        self._servers = []
        for port, target in self.ports.items():
            server = _Forwarder((self.address, port), _Pipe)
            server.target = target
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


class _Forwarder(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    target: tuple[str, int]


class _Pipe(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            upstream = socket.create_connection(self.server.target, timeout=60)
        except OSError:
            return  # the connection closes: as a Service with no ready endpoint
        with upstream:
            back = threading.Thread(target=_copy, args=(upstream, self.request), daemon=True)
            back.start()
            _copy(self.request, upstream)
            back.join()


def _copy(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass
