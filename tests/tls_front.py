"""TLS for the tests: a CA and a server certificate made with ``openssl`` and a TLS front,
an asyncio TLS server in a thread that relays every decrypted byte to a plain TCP server
(RabbitMQ, Redis) and back. The machine's servers have no TLS listeners, and their
configuration is not the tests' to change; the clients under test are the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class Certs:
    ca: Path  # signed the server's certificate
    other_ca: Path  # signed nothing this front presents
    cert: Path
    key: Path


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)


def _make_ca(directory: Path, name: str) -> None:
    _openssl(
        directory,
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
        "-subj", f"/CN=celeriac test {name}",
    )  # fmt: skip


def make_certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA, a certificate it signed for localhost / 127.0.0.1, and an unrelated CA."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make the test certificates")
    directory = tmp_path_factory.mktemp("tls")
    _make_ca(directory, "ca")
    _make_ca(directory, "other-ca")
    _openssl(
        directory,
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
    )  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl(
        directory,
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext",
    )  # fmt: skip
    return Certs(
        directory / "ca.pem", directory / "other-ca.pem", directory / "server.pem",
        directory / "server.key",
    )  # fmt: skip


class TLSFront:
    """Accepts TLS on a free port and relays the decrypted bytes to ``host:port``."""

    def __init__(self, certs: Certs, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(certs.cert, certs.key)
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(lambda loop, context: None)  # refused handshakes
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()  # both ends of every open session
        self._server: asyncio.Server | None = None
        self.sessions = 0  # TLS handshakes completed
        self.port = 0

    def start(self) -> None:
        self._thread.start()
        self._server = self._call(self._listen())
        self.port = int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._session, "127.0.0.1", 0, ssl=self._context)

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        # Connections clients still hold (pooled ones): cut them, no TLS goodbye to wait for.
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        for _ in range(3):  # the transports' connection_lost callbacks run now
            await asyncio.sleep(0)

    async def _session(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(client_w)
        self.sessions += 1
        try:
            broker_r, broker_w = await asyncio.open_connection(*self._upstream)
            self._writers.add(broker_w)
            try:
                await asyncio.gather(_relay(client_r, broker_w), _relay(broker_r, client_w))
            finally:
                broker_w.close()
                self._writers.discard(broker_w)
        finally:
            client_w.close()
            self._writers.discard(client_w)
            self._tasks.discard(task)


async def _relay(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    sink.close()


@contextlib.contextmanager
def running_front(certs: Certs, host: str, port: int) -> Iterator[TLSFront]:
    """A started :class:`TLSFront` before ``host:port``, stopped at the end."""
    front = TLSFront(certs, host, port)
    front.start()
    try:
        yield front
    finally:
        front.stop()


def round_trip_over_tls(front: TLSFront, settings: dict[str, Any], sessions: int) -> None:
    """Ten tasks and their results through an in-thread worker, on ``settings``; at least
    ``sessions`` new TLS sessions were made through ``front`` meanwhile."""
    from celeriac import Celery
    from celeriac.testing import start_worker

    app = Celery("tls", set_as_current=False)
    app.conf.update(settings)

    @app.task(name="tls.add")
    def add(x: int, y: int) -> int:
        return x + y

    before = front.sessions
    try:
        with start_worker(app, pool="threads", concurrency=2):
            results = [add.delay(i, i) for i in range(10)]
            assert [r.get(timeout=30) for r in results] == [2 * i for i in range(10)]
            assert results[0].state == "SUCCESS"
    finally:
        app.close()
    assert front.sessions - before >= sessions


def refused_certificate_error(settings: dict[str, Any]) -> str:
    """The error a client with ``settings`` (a CA that did not sign the front's certificate)
    gets for its first send (no publish retries)."""
    from celeriac import Celery
    from celeriac.exceptions import OperationalError

    app = Celery("tls-bad", set_as_current=False)
    app.conf.update(settings, task_publish_retry=False)
    try:
        with pytest.raises(OperationalError) as err:
            app.send_task("tls.add", (1, 2), ignore_result=True)
    finally:
        app.close()
    text = str(err.value)
    assert "CERTIFICATE_VERIFY_FAILED" in text
    return text


__all__ = [
    "Certs",
    "TLSFront",
    "make_certs",
    "refused_certificate_error",
    "round_trip_over_tls",
    "running_front",
]
