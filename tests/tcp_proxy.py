"""A TCP proxy for the tests: relays a local port to a server (Redis, RabbitMQ, PostgreSQL) so
a test can cut the connection (every open connection closed, new ones refused) and let it
back, as a network partition looks to a worker; :attr:`TcpProxy.latency` delays every chunk
(a slow network) and :meth:`TcpProxy.hold` stops relaying without closing anything (a silent
partition: only heartbeats and timeouts notice it)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator


class TcpProxy:
    """``127.0.0.1:<port>`` relayed to ``target``; :meth:`cut` and :meth:`restore`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        #: Seconds each relayed chunk waits before it is forwarded (0: none).
        self.latency = 0.0
        #: Bytes that arrived while :meth:`hold` kept them back (what a cut would drop).
        self.held = 0
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._stopped = False
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.restore()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def restore(self) -> None:
        """Accept connections again (on the same port)."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Close every relayed connection and stop listening: connecting is refused."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def hold(self) -> None:
        """Stop relaying in both directions; connections stay open (bytes wait)."""
        self._flowing.clear()

    def release(self) -> None:
        """Relay again what :meth:`hold` kept back."""
        self._flowing.set()

    def close(self) -> None:
        self._stopped = True
        self.release()
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(src, dst, self), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket, proxy: TcpProxy) -> None:
    try:
        while data := src.recv(65536):
            if not proxy._flowing.is_set():
                with proxy._lock:
                    proxy.held += len(data)
            proxy._flowing.wait()
            if proxy.latency:
                time.sleep(proxy.latency)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def tcp_proxy(host: str, port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy((host, port))
    try:
        yield proxy
    finally:
        proxy.close()


__all__ = ["TcpProxy", "tcp_proxy"]
