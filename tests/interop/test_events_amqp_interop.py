"""Events between real Celery 5.7 and celeriac on RabbitMQ (the ``celeryev`` topic exchange),
both ways round: a real Celery receiver follows a celeriac worker, and celeriac's receiver
follows a real ``celery worker -E``. The same checks as on Redis (``test_events_interop``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.amqp_fixtures import amqp_endpoint  # noqa: F401 - the `endpoint` fixture
from tests.interop.conftest import Endpoint, WorkerFactory
from tests.interop.test_events_interop import (
    celeriac_follows_celery,
    celery_receiver_follows_celeriac,
)

pytestmark = [
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.parametrize("endpoint", ["amqp+redis"], indirect=True, scope="module"),
]


def test_a_celery_receiver_follows_a_celeriac_worker_on_rabbitmq(
    celery_client: Any, start_worker: WorkerFactory, endpoint: Endpoint
) -> None:
    celery_receiver_follows_celeriac(celery_client, start_worker, "ev-amqp-celeriac@interop")


def test_celeriac_follows_a_celery_worker_on_rabbitmq(
    celeriac_client: Any, start_worker: WorkerFactory, endpoint: Endpoint
) -> None:
    celeriac_follows_celery(celeriac_client, start_worker, "ev-amqp-celery@interop")
