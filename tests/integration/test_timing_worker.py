"""ETA, priority and unique tasks through a real in-thread worker, on every broker."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from celeriac import Celery
from celeriac.exceptions import ImproperlyConfigured
from celeriac.protocol import task_v2
from celeriac.protocol.message import TaskCall
from celeriac.testing import start_worker
from celeriac.transports.capabilities import Defers
from tests.integration.broker_envs import ALL, BrokerEnv
from tests.integration.conftest import wait_until


@pytest.mark.parametrize("broker", ALL, indirect=True)
def test_far_eta_is_parked_by_brokers_that_can_defer_and_held_by_the_others(
    app: Celery, broker: BrokerEnv
) -> None:
    """A Celery client delivers ETA tasks at once: Redis/SQLite/memory get the far ones back
    (``Transport.defer``); RabbitMQ cannot delay, so the worker holds them (Celery's way)."""
    app.conf.worker_eta_defer_after = 5.0

    @app.task(name="t.far")
    def far() -> str:
        return "ran"

    eta = datetime.now(timezone.utc) + timedelta(seconds=120)
    with app.connection() as conn:
        conn.publish(
            task_v2.encode(TaskCall(name="t.far", id="far-1", eta=eta)), routing_key="celery"
        )
        defers = isinstance(conn, Defers)
    with start_worker(app, pool="threads", concurrency=2) as worker:
        consumer = worker.consumer
        assert consumer is not None
        assert far.delay().get(timeout=10) == "ran"  # the worker is not blocked by it
        if defers:
            wait_until(lambda: not worker.state.reserved, "the ETA message to be parked")
            assert not consumer.eta
        else:
            wait_until(lambda: consumer.eta, "the ETA message to be held")
        assert app.AsyncResult("far-1").state == "PENDING"
        app.control.revoke("far-1")
    if defers:
        with app.connection() as conn:
            assert conn.get(["celery"], timeout=0.1) == []  # parked, not ready


@pytest.mark.parametrize("broker", ALL, indirect=True)
def test_higher_priority_runs_first(app: Celery) -> None:
    app.conf.task_queue_max_priority = 9  # RabbitMQ honours priority on such queues only
    app.conf.worker_prefetch_multiplier = 1
    order: list[str] = []

    @app.task
    def job(name: str) -> None:
        order.append(name)

    with app.connection() as conn:
        first, last = (9, 0) if conn.priority_higher_first else (0, 9)
    results = [job.apply_async((f"low{i}",), priority=last) for i in range(3)]
    results.append(job.apply_async(("high",), priority=first))
    with start_worker(app, pool="solo"):
        for result in results:
            result.get(timeout=10)
    assert order[0] == "high", order


@pytest.mark.parametrize("broker", [*ALL, "amqp-rpc"], indirect=True)
def test_unique_call_returns_the_queued_result_and_runs_once(
    app: Celery, broker: BrokerEnv
) -> None:
    release = threading.Event()
    ran: list[int] = []

    @app.task
    def sync_user(user: int) -> int:
        release.wait(10)
        ran.append(user)
        return user

    if broker.kind == "amqp-rpc":  # the claim needs a store every client can write
        with pytest.raises(ImproperlyConfigured, match="RPCBackend cannot"):
            sync_user.apply_async((1,), unique_for=30)
        return
    with start_worker(app, pool="threads", concurrency=2):
        first = sync_user.apply_async((1,), unique_for=30)
        again = sync_user.apply_async((1,), unique_for=30)
        other = sync_user.apply_async((2,), unique_for=30)
        assert again.id == first.id and other.id != first.id
        release.set()
        assert (first.get(timeout=10), other.get(timeout=10)) == (1, 2)
    assert sorted(ran) == [1, 2]
