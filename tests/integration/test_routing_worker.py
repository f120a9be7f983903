"""Routing end to end: a misbehaving task sent to its own queue, served by ``-Q``."""

from __future__ import annotations

import pytest

from celeriac import Celery
from celeriac.testing import start_worker
from tests.integration.broker_envs import ALL
from tests.integration.conftest import queue_size

pytestmark = pytest.mark.parametrize("broker", ALL, indirect=True)


def test_routes_and_worker_queues(app: Celery) -> None:
    app.conf.task_routes = {"t.slow.*": {"queue": "slow"}}

    @app.task(name="t.slow.crunch")
    def crunch() -> str:
        return "slow"

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    with start_worker(app, queues=["slow"]):
        assert crunch.delay().get(timeout=10) == "slow"
        result = add.delay(1, 2)
        misbehaving = add.apply_async((2, 2), queue="slow")  # sent to its own queue
        assert misbehaving.get(timeout=10) == 4
        assert queue_size(app, "celery") == 1  # not consumed by a -Q slow worker
    with start_worker(app):
        assert result.get(timeout=10) == 3
