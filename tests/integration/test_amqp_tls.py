"""``amqps://`` with ``broker_use_ssl`` for real: a TLS front before this run's RabbitMQ.

The machine's RabbitMQ listens only on 5672 (no TLS listener, and its configuration is not
ours to change), so each module run makes a CA and a server certificate with ``openssl``
and starts a TLS front in a thread (asyncio's TLS server; every byte it decrypts goes to
RabbitMQ unchanged, and back). The clients are the real ones: py-amqp's TLS transport with
the options a Celery user writes in ``broker_use_ssl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.exceptions import OperationalError
from celeriac.testing import start_worker
from tests.amqp_helpers import delete_queues
from tests.integration.conftest import WorkerFactory, wait_until
from tests.servers import RABBITMQ_HOST, RABBITMQ_PORT, rabbitmq_url


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


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
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
    """Accepts TLS on a free port and relays the decrypted bytes to RabbitMQ."""

    def __init__(self, certs: Certs) -> None:
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(certs.cert, certs.key)
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(lambda loop, context: None)  # refused handshakes
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._tasks: set[asyncio.Task[None]] = set()
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
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _session(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.sessions += 1
        try:
            broker_r, broker_w = await asyncio.open_connection(RABBITMQ_HOST, RABBITMQ_PORT)
            try:
                await asyncio.gather(_relay(client_r, broker_w), _relay(broker_r, client_w))
            finally:
                broker_w.close()
        finally:
            client_w.close()
            self._tasks.discard(task)


async def _relay(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    sink.close()


@pytest.fixture(scope="module")
def front(certs: Certs) -> Iterator[TLSFront]:
    rabbitmq_url()  # RabbitMQ is up (or the run says why not) and the run's vhost exists
    tls = TLSFront(certs)
    tls.start()
    yield tls
    tls.stop()


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"tls-{uuid.uuid4().hex[:8]}"
    yield name
    delete_queues(rabbitmq_url(), [name])


def _settings(front: TLSFront, queue: str, ca: Path) -> dict[str, Any]:
    vhost = rabbitmq_url().rsplit("/", 1)[1]
    return {
        "broker_url": f"amqps://guest:guest@127.0.0.1:{front.port}/{vhost}",
        # What a Celery user writes (py-amqp's names); the hostname is checked as well.
        "broker_use_ssl": {
            "ca_certs": str(ca),
            "cert_reqs": int(ssl.CERT_REQUIRED),
            "server_hostname": "localhost",
        },
        "result_backend": "rpc://",
        "task_default_queue": queue,
    }


def test_tasks_and_rpc_results_travel_over_tls(front: TLSFront, certs: Certs, queue: str) -> None:
    app = Celery("tls", set_as_current=False)
    app.conf.update(_settings(front, queue, certs.ca))

    @app.task(name="tls.add")
    def add(x: int, y: int) -> int:
        return x + y

    before = front.sessions
    try:
        with start_worker(app, pool="threads", concurrency=2):
            results = [add.delay(i, i) for i in range(10)]
            assert [r.get(timeout=30) for r in results] == [2 * i for i in range(10)]
    finally:
        app.close()
    # The client's producer and reply consumer, and the worker's connections: all through TLS.
    assert front.sessions - before >= 3


def test_a_prefork_worker_and_its_children_connect_over_tls(
    front: TLSFront, certs: Certs, queue: str, tmp_path: Path
) -> None:
    settings = _settings(front, queue, certs.ca)
    client = Celery("tls-client", set_as_current=False)
    client.conf.update(settings)
    factory = WorkerFactory(tmp_path, settings)
    before = front.sessions
    try:
        worker = factory("-P", "prefork", "-c", "2")
        results = [client.send_task("tasks.add", (i, 1)) for i in range(20)]
        assert [r.get(timeout=30) for r in results] == list(range(1, 21))
        assert worker.stop() == 0
        assert "amqps://guest:****@127.0.0.1" in worker.output()
        assert "guest:guest@" not in worker.output()
    finally:
        factory.cleanup()
        client.close()
    # The parent's connection, each child's own, the client's two.
    wait_until(lambda: front.sessions - before >= 5, "the TLS sessions to be counted")


def test_a_certificate_the_ca_did_not_sign_is_refused_with_a_clear_error(
    front: TLSFront, certs: Certs, queue: str
) -> None:
    app = Celery("tls-bad", set_as_current=False)
    app.conf.update(_settings(front, queue, certs.other_ca), task_publish_retry=False)
    try:
        with pytest.raises(OperationalError) as err:
            app.send_task("tls.add", (1, 2), ignore_result=True)
    finally:
        app.close()
    text = str(err.value)
    assert "amqps://guest:****@127.0.0.1" in text
    assert "CERTIFICATE_VERIFY_FAILED" in text
    assert "broker_use_ssl" in text  # the fix: which setting names the CA
