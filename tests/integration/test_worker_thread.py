"""A worker running in a thread of the test process (solo and threads pools)."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from celeriac import Celery
from celeriac.worker.worker import Worker
from tests.integration.conftest import wait_until
from tests.servers import REDIS_BROKER_DB, redis_namespace


@pytest.fixture
def running(sqlite_app: Celery) -> Iterator[Worker]:
    worker = Worker(
        sqlite_app,
        pool="threads",
        concurrency=2,
        install_signal_handlers=False,
        without_banner=True,
    )
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    yield worker
    worker.stop()
    thread.join(30)
    assert not thread.is_alive()


def _age_result(path: Path, task_id: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE celery_taskmeta SET date_done = '2000-01-01 00:00:00' WHERE task_id = ?",
            (task_id,),
        )


def test_worker_removes_expired_results_at_start(sqlite_app: Celery, tmp_path: Path) -> None:
    sqlite_app.backend.mark_as_done("old-result", 1)
    sqlite_app.backend.mark_as_done("fresh-result", 2)
    _age_result(tmp_path / "results.sqlite", "old-result")
    worker = Worker(sqlite_app, pool="solo", install_signal_handlers=False, without_banner=True)
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    try:
        wait_until(
            lambda: sqlite_app.AsyncResult("old-result").state == "PENDING",
            "the expired result to be removed",
        )
        assert sqlite_app.AsyncResult("fresh-result").get(timeout=1) == 2
    finally:
        worker.stop()
        thread.join(30)


def test_in_thread_worker_runs_tasks(sqlite_app: Celery, running: Worker) -> None:
    @sqlite_app.task
    def mult(x: int, y: int) -> int:
        return x * y

    results = [mult.delay(i, 3) for i in range(20)]
    assert [r.get(timeout=20) for r in results] == [i * 3 for i in range(20)]


def test_far_eta_from_a_foreign_client_is_parked_in_the_broker(
    memory_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Celery client delivers ETA tasks at once; the worker parks far ones in the broker."""
    from datetime import datetime, timedelta, timezone

    from celeriac.protocol import task_v2
    from celeriac.protocol.message import TaskCall
    from celeriac.transports.memory import MemoryTransport

    parked: list[float] = []
    real_defer = MemoryTransport.defer

    def spy(self: MemoryTransport, delivery: Any, until: float) -> None:
        real_defer(self, delivery, until)
        parked.append(until)

    monkeypatch.setattr(MemoryTransport, "defer", spy)

    @memory_app.task(name="t.far")
    def far() -> None:
        return None

    eta = datetime.now(timezone.utc) + timedelta(seconds=120)
    message = task_v2.encode(TaskCall(name="t.far", id="far-1", eta=eta))
    producer = memory_app.connection()
    producer.publish(message, routing_key="celery")  # no not_before: as a Celery client sends
    worker = Worker(memory_app, pool="solo", install_signal_handlers=False, without_banner=True)
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    try:
        wait_until(lambda: parked, "the ETA task to be parked")
        assert parked == [eta.timestamp()]
        assert worker.consumer is not None and not worker.consumer.eta
        assert producer.size("celery") == 1
        assert producer.get(["celery"], timeout=0.1) == []
    finally:
        worker.stop()
        thread.join(30)


def test_an_eta_task_whose_lease_another_worker_took_is_dropped_unrun(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A held ETA message (Redis: the worker holds it until due) that another consumer took
    meanwhile (its lease ran out while this worker was stalled, and the message was recorded
    again with that consumer's score) is dropped at the next lease check, not run at its ETA."""
    prefix = f"thread-{uuid.uuid4().hex[:8]}:"
    url = redis_namespace(REDIS_BROKER_DB, "thread-*")
    app = Celery("t", broker=url, backend="cache+memory://")
    app.conf.broker_transport_options = {"visibility_timeout": 4, "global_keyprefix": prefix}

    @app.task(name="t.later")
    def later() -> str:
        return "ran"

    later.apply_async(countdown=60)
    worker = Worker(app, pool="solo", install_signal_handlers=False, without_banner=True)
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    caplog.set_level("INFO", "celeriac.worker")
    try:
        wait_until(lambda: worker.consumer is not None and worker.consumer.eta, "the ETA hold")
        client = redis.Redis.from_url(url)
        index = prefix + "unacked_index"
        [tag] = client.zrange(index, 0, -1)
        client.zadd(index, {tag: 1.5})  # another consumer's lease now
        wait_until(lambda: "dropped unrun" in caplog.text, "the lease check (every second)")
        assert worker.consumer is not None and not worker.consumer.eta
    finally:
        worker.stop()
        thread.join(30)
        app.close()
