"""The rpc:// result backend with an in-thread worker, on RabbitMQ and on the SQLite broker.

Not in the backend conformance suite: rpc results are messages to the sender, so only the
process (and thread) that sent a task can read its result, and a result stored without a
request (no ``reply_to``) goes nowhere — the suite's store-then-read tests cannot apply.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.exceptions import OperationalError
from celeriac.worker.worker import Worker
from tests.integration.conftest import wait_until
from tests.servers import rabbitmq_url


def _broker(kind: str, tmp_path: Path) -> str:
    if kind == "amqp":
        return rabbitmq_url()
    return f"sqlite:///{tmp_path}/broker.sqlite"


@pytest.fixture(params=["amqp", "sqlite"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Celery]:
    queue = f"rpc-{uuid.uuid4().hex[:8]}"
    app = Celery(
        "rpctest",
        broker=_broker(request.param, tmp_path),
        backend="rpc://",
        task_default_queue=queue,
        task_track_started=True,
    )
    release = threading.Event()

    @app.task(name="rpctest.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="rpctest.fail")
    def fail(message: str) -> None:
        raise ValueError(message, 42)

    @app.task(name="rpctest.hold")
    def hold() -> str:
        assert release.wait(20)
        return "released"

    app.user_options["release"] = release
    worker = Worker(
        app, pool="threads", concurrency=2, install_signal_handlers=False, without_banner=True
    )
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    yield app
    release.set()
    worker.stop()
    thread.join(30)
    app.close()


def test_results_come_back_to_the_sender(app: Celery) -> None:
    results = [app.send_task("rpctest.add", (i, i)) for i in range(20)]
    assert [r.get(timeout=20) for r in results] == [2 * i for i in range(20)]
    assert all(r.ready() and r.successful() for r in results)


def test_failure_is_reraised_with_its_type(app: Celery) -> None:
    result = app.send_task("rpctest.fail", ("rpcboom",))
    with pytest.raises(ValueError) as err:
        result.get(timeout=20)
    assert err.value.args == ("rpcboom", 42)
    assert result.state == "FAILURE"
    assert "rpcboom" in (result.traceback or "")


def test_started_state_then_success(app: Celery) -> None:
    result = app.send_task("rpctest.hold")
    wait_until(lambda: result.state == "STARTED", "the STARTED reply")
    assert not result.ready()
    app.user_options["release"].set()
    assert result.get(timeout=20) == "released"
    result.forget()  # nothing server side: a no-op that must not fail


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("where", ["closed port", "wrong vhost"])
def test_delay_with_an_unreachable_broker_gives_up_as_a_publish_does(where: str) -> None:
    """The reply queue's declaration at send time follows the publish retry policy (as with
    any other result store), not the reconnect policy's minutes of retries (issue 18)."""
    if where == "closed port":
        url = f"amqp://guest:guest@127.0.0.1:{_closed_port()}//"
    else:
        url = rabbitmq_url().rsplit("/", 1)[0] + f"/no-such-vhost-{uuid.uuid4().hex[:8]}"
    app = Celery("rpcdown", broker=url, backend="rpc://")
    app.conf.task_publish_retry_policy = {"max_retries": 2, "interval_start": 0.1}
    began = time.monotonic()
    try:
        with pytest.raises(OperationalError):
            app.send_task("rpcdown.add", (1, 2))
    finally:
        app.close()
    assert time.monotonic() - began < 10
