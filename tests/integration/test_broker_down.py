"""A broker that cannot be reached (a closed port), on each networked broker: who waits how
long, and what the error names."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from celeriac import Celery
from celeriac.exceptions import OperationalError
from celeriac.transports.amqp.transport import AMQPTransport
from celeriac.transports.base import Transport
from celeriac.transports.redis.transport import RedisTransport
from tests.integration.conftest import wait_until


@dataclass(frozen=True)
class DownBroker:
    url: str  # with a password, which no message may show
    transport: Callable[[str, dict[str, object]], Transport]
    logger: str
    retry_line: str  # in the log line of each reconnect wait


DOWN = {
    "amqp": DownBroker(
        "amqp://guest:hunter2@127.0.0.1:1//", AMQPTransport, "celeriac.transports.amqp",
        "cannot reach",
    ),
    "redis": DownBroker(
        "redis://:hunter2@127.0.0.1:1/0", RedisTransport, "celeriac.transports.redis",
        "unreachable",
    ),
}  # fmt: skip


@pytest.fixture(params=sorted(DOWN))
def down(request: pytest.FixtureRequest) -> DownBroker:
    return DOWN[request.param]


def test_a_producer_gives_up_as_its_publish_retry_policy_says(down: DownBroker) -> None:
    # send_task declares (AMQP) or binds (Redis) the default queue first. That is part of the
    # publish (kombu's declare=): it must not wait out the worker's reconnect policy (100
    # tries, up to 30 s apart).
    app = Celery("down", broker=down.url, set_as_current=False)
    app.conf.task_publish_retry_policy = {"max_retries": 2, "interval_start": 0}
    started = time.monotonic()
    try:
        with pytest.raises(OperationalError, match=r":\*\*@127.0.0.1:1") as err:
            app.send_task("anything", (1,))
    finally:
        app.close()
    assert time.monotonic() - started < 10
    assert "hunter2" not in str(err.value)


def test_abandon_ends_a_reconnect_wait_at_once(
    down: DownBroker, caplog: pytest.LogCaptureFixture
) -> None:
    # An orphaned prefork child: its parent is gone, the broker unreachable, and the
    # reconnect policy would keep it waiting for many minutes.
    transport = down.transport(down.url, {"broker_connection_max_retries": None})
    failed: list[BaseException] = []

    def consume() -> None:
        try:
            transport.get(["q"], timeout=1)
        except OperationalError as exc:
            failed.append(exc)

    caplog.set_level(logging.WARNING, down.logger)
    thread = threading.Thread(target=consume)
    thread.start()
    wait_until(lambda: down.retry_line in caplog.text, "the first reconnect wait")
    # The consumer's reconnect line names the broker, password masked.
    assert ":**@127.0.0.1:1" in caplog.text and "hunter2" not in caplog.text
    transport.abandon()
    thread.join(10)
    assert not thread.is_alive() and len(failed) == 1
    with pytest.raises(OperationalError):  # later operations do not wait either
        transport.get(["q"], timeout=1)
