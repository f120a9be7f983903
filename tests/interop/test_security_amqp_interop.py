"""Signed messages between real Celery 5.7 and celeriac on RabbitMQ (Redis results), both
ways round: the two tests of ``test_security_interop`` that cross packages, collected here
with a RabbitMQ endpoint (tasks, a retry, a chain's next step and signed remote control)."""

from __future__ import annotations

import pytest

from tests.interop.amqp_fixtures import amqp_endpoint  # noqa: F401 - the `endpoint` fixture
from tests.interop.test_security_interop import (  # the same fixtures and tests, collected here
    celeriac_signed,
    celeriac_worker,
    celery_signed,
    celery_worker,
    setup,
    test_a_celeriac_client_signs_tasks_a_celery_worker_runs,
    test_a_celery_client_signs_tasks_a_celeriac_worker_runs,
)

pytestmark = [
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.parametrize("endpoint", ["amqp+redis"], indirect=True, scope="module"),
]

__all__ = [
    "celeriac_signed",
    "celeriac_worker",
    "celery_signed",
    "celery_worker",
    "setup",
    "test_a_celeriac_client_signs_tasks_a_celery_worker_runs",
    "test_a_celery_client_signs_tasks_a_celeriac_worker_runs",
]
