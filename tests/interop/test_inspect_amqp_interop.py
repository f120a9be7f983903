"""Remote control between real Celery 5.7 and celeriac on RabbitMQ, both ways round (the
reply exchange is declared as kombu declares it, so either side may create it first)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.amqp_fixtures import amqp_endpoint  # noqa: F401 - the `endpoint` fixture
from tests.interop.conftest import Endpoint, WorkerFactory

pytestmark = [
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.parametrize("endpoint", ["amqp+redis"], indirect=True, scope="module"),
]


def test_celeriac_inspect_is_answered_by_a_celery_worker_on_rabbitmq(
    celeriac_client: Any, celery_client: Any, start_worker: WorkerFactory, endpoint: Endpoint
) -> None:
    node = "amqp-celery@interop"
    start_worker("celery", "-P", "threads", "-c", "2", "-n", node)
    inspect = celeriac_client.control.inspect(destination=[node], timeout=10, limit=1)
    assert inspect.ping() == {node: {"ok": "pong"}}
    assert inspect.stats()[node]["pool"]["max-concurrency"] == 2
    # And a real Celery client's inspect on the same exchanges, after celeriac's.
    celery_inspect = celery_client.control.inspect(destination=[node], timeout=10, limit=1)
    assert celery_inspect.ping() == {node: {"ok": "pong"}}


def test_celery_inspect_is_answered_by_a_celeriac_worker_on_rabbitmq(
    celery_client: Any, start_worker: WorkerFactory, endpoint: Endpoint
) -> None:
    node = "amqp-celeriac@interop"
    start_worker("celeriac", "-P", "threads", "-c", "2", "-n", node)
    inspect = celery_client.control.inspect(destination=[node], timeout=10, limit=1)
    assert inspect.ping() == {node: {"ok": "pong"}}
    assert "interop.add" in inspect.registered()[node]
