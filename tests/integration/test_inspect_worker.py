"""Inspect and control through app.control against a real in-thread worker, on every broker,
with Celery's reply shapes (pidbox_replies_redis)."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from celeriac import Celery
from celeriac.protocol import task_v2
from celeriac.protocol.message import TaskCall
from celeriac.testing import start_worker
from tests.integration.broker_envs import ALL
from tests.integration.conftest import wait_until
from tests.vectors import load_vector

pytestmark = pytest.mark.parametrize("broker", ALL, indirect=True)

CELERY = load_vector("pidbox_replies_redis")["python_level_results (decoded by celery client)"]
ACTIVE_KEYS = set(CELERY["inspect_active"]["w1@cap"][0])
QUEUE_KEYS = set(CELERY["inspect_active_queues"]["w1@cap"][0])
STATS_KEYS = set(CELERY["inspect_stats_keys"]["w1@cap"])


def publish_like_celery(app: Celery, name: str, countdown: float) -> str:
    """A Celery client publishes ETA tasks at once (no broker delay): the worker holds them."""
    call = TaskCall(name=name, id=str(uuid.uuid4()), args=(3, 4), eta=_in(countdown))
    with app.connection() as conn:
        conn.publish(task_v2.encode(call), routing_key="celery")
    return call.id


def _in(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def test_inspect_answers_with_celerys_shapes(app: Celery) -> None:
    release = threading.Event()

    @app.task(name="t.block")
    def block() -> str:
        release.wait(30)
        return "done"

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    with start_worker(app, pool="threads", concurrency=1) as worker:
        node = worker.hostname
        inspect = app.control.inspect(timeout=2.0, limit=1)
        assert inspect.ping() == {node: {"ok": "pong"}}
        running = block.delay()
        waiting = add.delay(1, 2)
        later = publish_like_celery(app, "t.add", countdown=30)
        wait_until(lambda: (inspect.active() or {}).get(node), "the task to be active")
        (active,) = inspect.active()[node]
        assert set(active) == ACTIVE_KEYS
        assert active["id"] == running.id and active["name"] == "t.block"
        assert active["hostname"] == node and active["time_start"] > 0
        assert active["delivery_info"]["routing_key"] == "celery"
        wait_until(lambda: (inspect.reserved() or {}).get(node), "a reserved task")
        assert [r["id"] for r in inspect.reserved()[node]] == [waiting.id]
        wait_until(lambda: (inspect.scheduled() or {}).get(node), "a scheduled task")
        (scheduled,) = inspect.scheduled()[node]
        assert scheduled["request"]["id"] == later and scheduled["eta"]
        query = inspect.query_task(running.id, waiting.id, later)[node]
        assert query[running.id][0] == "active" and query[waiting.id][0] == "reserved"
        assert query[later][0] == "scheduled"
        assert inspect.registered()[node] == ["t.add", "t.block"]
        assert "t.add [rate_limit=" not in inspect.registered("rate_limit")[node][0]
        (queue,) = inspect.active_queues()[node]
        assert set(queue) == QUEUE_KEYS and queue["name"] == "celery"
        stats = inspect.stats()[node]
        assert set(stats) >= STATS_KEYS and stats["pool"]["max-concurrency"] == 1
        conf = inspect.conf()[node]
        assert conf["broker_url"] and "result_backend" in conf
        app.control.revoke(later)
        wait_until(lambda: later in (inspect.revoked() or {}).get(node, []), "revoked")
        assert "celeriac" in inspect.report()[node]["ok"]
        assert inspect.clock()[node]["clock"] > 0
        assert isinstance(inspect.memdump()[node], str)
        release.set()
        assert running.get(timeout=10) == "done" and waiting.get(timeout=10) == 3
        totals = {"t.block": 1, "t.add": 1}
        wait_until(lambda: inspect.stats()[node]["total"] == totals, "the counters")
        only = app.control.inspect(destination=node, timeout=2.0, limit=1)
        assert only.ping() == {"ok": "pong"}
        assert app.control.inspect(destination=["nobody@nowhere"], timeout=0.3).ping() is None


def test_control_commands_change_the_worker(app: Celery) -> None:
    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    with start_worker(app, pool="threads", concurrency=1) as worker:
        node = worker.hostname
        replies = app.control.add_consumer("extraq", reply=True, timeout=5, limit=1)
        assert replies == [{node: {"ok": "add consumer extraq"}}]
        assert add.apply_async((2, 2), queue="extraq").get(timeout=10) == 4
        names = [q["name"] for q in app.control.inspect(timeout=2, limit=1).active_queues()[node]]
        assert names == ["celery", "extraq"]
        replies = app.control.cancel_consumer("extraq", reply=True, timeout=5, limit=1)
        assert replies == [{node: {"ok": "no longer consuming from extraq"}}]
        names = [q["name"] for q in app.control.inspect(timeout=2, limit=1).active_queues()[node]]
        assert names == ["celery"]
        left = add.apply_async((3, 3), queue="extraq")  # after the reply: never taken
        assert add.delay(4, 4).get(timeout=10) == 8
        assert left.state == "PENDING"
        replies = app.control.pool_grow(1, reply=True, timeout=5, limit=1)
        assert replies == [{node: {"ok": "pool will grow"}}]
        stats = app.control.inspect(timeout=2, limit=1).stats()[node]
        assert stats["pool"]["max-concurrency"] == 2
        replies = app.control.pool_shrink(1, reply=True, timeout=5, limit=1)
        assert replies == [{node: {"ok": "pool will shrink"}}]
        replies = app.control.shutdown(reply=True, timeout=5, limit=1)
        assert replies == [{node: {"ok": "shutting down"}}]
        wait_until(lambda: not worker.ready.is_set() or worker.exitcode == 0, "stopping")


def test_threads_of_one_app_waiting_at_once_each_get_their_replies(app: Celery) -> None:
    """Requests from several threads share the app's one reply queue: a reply that one thread
    reads for another's ticket reaches that thread (it was dropped, and the other timed out)."""
    with start_worker(app, pool="threads", concurrency=1) as worker:
        node = worker.hostname
        answers: list[object] = []

        def ask() -> None:
            answers.append(app.control.ping(destination=[node], timeout=10))

        threads = [threading.Thread(target=ask) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert answers == [[{node: {"ok": "pong"}}]] * 6
