"""Revoke on a real in-thread worker, on every broker."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.testing import start_worker
from tests.integration.broker_envs import ALL
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.parametrize("broker", ALL, indirect=True)


@pytest.fixture
def app(app: Celery) -> Celery:
    options = dict(app.conf.broker_transport_options or {})
    app.conf.broker_transport_options = {**options, "polling_interval": 0.05}
    return app


def _publish_like_celery(app: Celery, name: str, task_id: str, countdown: float) -> None:
    """A Celery client publishes ETA tasks at once (no broker delay): the worker holds them."""
    from celeriac.protocol import task_v2
    from celeriac.protocol.message import TaskCall

    eta = datetime.now(timezone.utc) + timedelta(seconds=countdown)
    call = TaskCall(name=name, id=task_id, args=(1,), eta=eta, root_id=task_id)
    with app.connection() as conn:
        conn.publish(task_v2.encode(call), routing_key="celery")


def test_revoked_eta_task_held_by_the_worker_is_discarded_at_once(app: Celery) -> None:
    ran: list[int] = []

    @app.task
    def work(x: int) -> int:
        ran.append(x)
        return x

    with start_worker(app, pool="threads", concurrency=2) as worker:
        _publish_like_celery(app, work.name, "held-eta", countdown=30)
        wait_until(lambda: worker.state.reserved, "the ETA task to be held")
        app.control.revoke("held-eta")
        wait_until(lambda: app.AsyncResult("held-eta").state == "REVOKED", "REVOKED stored")
        assert work.delay(2).get(timeout=10) == 2  # the worker keeps going
        assert not worker.state.reserved
    assert ran == [2]


def test_revoked_eta_task_parked_in_the_broker_never_runs(app: Celery) -> None:
    ran: list[int] = []

    @app.task
    def work(x: int) -> int:
        ran.append(x)
        return x

    with start_worker(app):
        waiting = work.apply_async((1,), countdown=1)
        waiting.revoke()
        wait_until(lambda: waiting.state == "REVOKED", "REVOKED when its ETA comes")
        assert work.delay(2).get(timeout=10) == 2
    assert ran == [2]


def test_app_control_revoke_list_before_arrival(app: Celery) -> None:
    @app.task
    def work(x: int) -> int:
        return x

    with start_worker(app) as worker:
        ids = ["rev-a", "rev-b"]
        replies = app.control.revoke(ids, reply=True, timeout=2.0, limit=1)
        assert replies == [{worker.hostname: {"ok": "tasks rev-a, rev-b flagged as revoked"}}]
        first = work.apply_async((1,), task_id="rev-a")
        second = work.apply_async((2,), task_id="rev-b")
        assert work.delay(3).get(timeout=10) == 3
        wait_until(lambda: second.state == "REVOKED", "rev-b REVOKED")
        assert first.state == "REVOKED"
        with pytest.raises(Exception, match="revoked"):
            first.get(timeout=1)


def test_revocation_reaches_a_worker_that_was_offline(app: Celery) -> None:
    """Beyond Celery: revoke() also records the id in the cluster store with a TTL."""
    if app.conf.broker_url.startswith("amqp"):
        # RabbitMQ has no store of its own: ``worker_cluster_store`` names one.
        app.conf.worker_cluster_store = f"memory://{id(app)}"

    @app.task
    def work(x: int) -> int:
        return x

    app.control.revoke("while-offline")  # no worker is running
    result = work.apply_async((1,), task_id="while-offline")
    with start_worker(app):
        assert work.delay(2).get(timeout=10) == 2
        wait_until(lambda: result.state == "REVOKED", "the offline revoke to be honoured")


def test_statedb_keeps_revoked_ids_across_restarts(app: Celery, tmp_path: Path) -> None:
    app.conf.worker_state_db = str(tmp_path / "%n.state")
    app.conf.worker_revoke_ttl = 0  # broadcast only, as Celery: the statedb must carry it

    @app.task
    def work(x: int) -> int:
        return x

    with start_worker(app) as worker:
        app.control.revoke("persisted", reply=True, timeout=2.0, limit=1)
        assert worker.state.is_revoked("persisted")
    assert (tmp_path / "celery.state").exists()
    result = work.apply_async((1,), task_id="persisted")
    with start_worker(app) as worker:
        assert worker.state.is_revoked("persisted")
        assert work.delay(2).get(timeout=10) == 2
        wait_until(lambda: result.state == "REVOKED", "the restarted worker to discard it")


def test_ping_and_destination(app: Celery) -> None:
    with start_worker(app, hostname="w1@test") as worker:
        assert app.control.ping(timeout=2.0, limit=1) == [{"w1@test": {"ok": "pong"}}]
        assert app.control.ping(destination=["other@x"], timeout=0.3) == []
        assert worker.hostname == "w1@test"


def test_terminate_is_refused_by_the_threads_pool(app: Celery) -> None:
    release = threading.Event()

    @app.task
    def block() -> str:
        release.wait(10)
        return "done"

    with start_worker(app, pool="threads", concurrency=1) as worker:
        result = block.delay()
        wait_until(lambda: worker.state.active, "the task to start")
        replies = app.control.revoke(result.id, terminate=True, reply=True, timeout=2, limit=1)
        assert replies == [{worker.hostname: {"ok": "terminate: tasks unknown"}}]
        release.set()
        assert result.get(timeout=10) == "done"
