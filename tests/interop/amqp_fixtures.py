"""RabbitMQ endpoints for the interop fixtures: ``amqp+redis`` and ``amqp+rpc``.

A test module imports :func:`amqp_endpoint`, the fixture ``endpoint``: it overrides the
conftest fixture of that name (whose ``ENDPOINTS`` table lives in the conftest module pytest
loaded, not in the importable one). Both
use this run's vhost (``tests.servers.rabbitmq_url``) and queue names of their own, deleted
afterwards. Every other interop fixture (workers, clients) is reused as it is.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.amqp_helpers import delete_queues
from tests.interop.conftest import Endpoint
from tests.servers import REDIS_INTEROP_DB, delete_redis_keys, rabbitmq_url, redis_url


def _amqp_endpoint(name: str, backend: str, namespace: str) -> Endpoint:
    broker = rabbitmq_url()
    queue = f"{namespace}.q"
    conf = {
        "task_default_queue": queue,
        "result_backend_transport_options": {"global_keyprefix": f"{namespace}:"},
    }

    def cleanup() -> None:
        delete_queues(broker, [queue, f"{queue}.other", f"{queue}.prio"])
        if backend.startswith("redis"):
            delete_redis_keys(REDIS_INTEROP_DB, f"{namespace}:*")

    return Endpoint(name, broker, backend, conf=conf, cleanup=cleanup)


AMQP_ENDPOINTS: dict[str, Callable[[str], Endpoint]] = {
    "amqp+redis": lambda ns: _amqp_endpoint("amqp+redis", redis_url(REDIS_INTEROP_DB), ns),
    "amqp+rpc": lambda ns: _amqp_endpoint("amqp+rpc", "rpc://", ns),
}


@pytest.fixture(scope="module", name="endpoint")
def amqp_endpoint(request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    made = AMQP_ENDPOINTS[request.param](f"interop-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    yield made
    made.cleanup()
