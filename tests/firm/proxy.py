"""A TCP proxy the test controls, between a gateway and PostgreSQL: cut (every connection
closed, new ones refused), hang (connections kept, nothing forwarded) and restore."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class TcpProxy:
    def __init__(self, target: tuple[str, int]):
        self._target = target
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._mode = "open"
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping = True
        self.cut()
        self._server.close()

    def cut(self) -> None:
        """Every connection closed; new ones closed as soon as they arrive."""
        with self._lock:
            self._mode = "cut"
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets = []

    def hang(self) -> None:
        """Connections stay up but carry nothing, either way: a silent network."""
        with self._lock:
            self._mode = "hang"

    def restore(self) -> None:
        with self._lock:
            self._mode = "open"

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                if self._mode == "cut":
                    client.close()
                    continue
                try:
                    upstream = socket.create_connection(self._target, timeout=5)
                except OSError:
                    client.close()
                    continue
                upstream.settimeout(None)
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
                return
            while self._mode == "hang" and not self._stopping:
                threading.Event().wait(0.05)  # hold the bytes: nothing gets through
            if self._mode == "cut":
                return
            try:
                dst.sendall(data)
            except OSError:
                return
