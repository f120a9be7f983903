"""Retries and acknowledgement policies through a real in-thread worker, on every broker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celery, states
from celeriac.app.task import Task
from celeriac.exceptions import Ignore, Reject
from celeriac.worker.worker import Worker
from tests.integration.broker_envs import ALL
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.parametrize("broker", ALL, indirect=True)


@pytest.fixture
def worker(app: Celery) -> Iterator[Worker]:
    w = Worker(
        app, pool="threads", concurrency=2, install_signal_handlers=False, without_banner=True
    )
    thread = threading.Thread(target=w.start, daemon=True)
    thread.start()
    yield w
    w.stop()
    thread.join(30)
    assert not thread.is_alive()


def queue_size(app: Celery) -> int:
    with app.connection() as conn:
        return conn.size("celery")


def test_retry_until_success_and_until_exhausted(app: Celery, worker: Worker) -> None:
    @app.task(bind=True, max_retries=3)
    def flaky(self: Task[Any, Any], succeed_at: int) -> int:
        if self.request.retries < succeed_at:
            raise self.retry(exc=OSError("not yet"), countdown=0.05)
        return self.request.retries

    @app.task(autoretry_for=(OSError,), max_retries=2, retry_backoff=False, default_retry_delay=0)
    def hopeless() -> None:
        raise OSError("never")

    assert flaky.delay(2).get(timeout=30) == 2
    result = hopeless.delay()
    with pytest.raises(OSError, match="never"):
        result.get(timeout=30)
    assert result.state == states.FAILURE


def test_reject_requeue_redelivers_and_ignore_stores_nothing(app: Celery, worker: Worker) -> None:
    runs: list[str] = []

    @app.task(acks_late=True)
    def picky() -> int:
        runs.append("picky")
        if runs.count("picky") == 1:
            raise Reject("try again", requeue=True)
        return runs.count("picky")

    @app.task
    def skipped() -> None:
        runs.append("skipped")
        raise Ignore()

    assert picky.delay().get(timeout=30) == 2
    ignored = skipped.delay()
    wait_until(lambda: "skipped" in runs and queue_size(app) == 0, "the ignored task to run")
    assert ignored.state == states.PENDING


def test_ignore_result_track_started_and_acks_late(app: Celery, worker: Worker) -> None:
    release = threading.Event()
    done = threading.Event()

    @app.task(track_started=True, acks_late=True)
    def slow() -> str:
        release.wait(30)
        return "ok"

    @app.task(ignore_result=True)
    def quiet() -> int:
        done.set()
        return 1

    result = slow.delay()
    wait_until(lambda: result.state == states.STARTED, "STARTED to be stored")
    with app.connection() as conn:  # acks_late: the running task's message is still held
        assert conn.size("celery") == 0
    release.set()
    assert result.get(timeout=30) == "ok"
    ignored = quiet.delay()
    assert done.wait(30)
    wait_until(lambda: queue_size(app) == 0, "the message to be acked")
    assert ignored.state == states.PENDING


def test_prefetch_multiplier_sets_the_window(app: Celery) -> None:
    app.conf.worker_prefetch_multiplier = 3
    w = Worker(
        app, pool="threads", concurrency=2, install_signal_handlers=False, without_banner=True
    )
    thread = threading.Thread(target=w.start, daemon=True)
    thread.start()
    try:
        w.ready.wait(30)
        assert w.consumer is not None and w.consumer.prefetch_limit == 6
    finally:
        w.stop()
        thread.join(30)


def test_retry_state_and_the_republished_message(app: Celery, worker: Worker) -> None:
    from celeriac import signals

    gate = threading.Event()
    sent: list[tuple[dict[str, Any], str]] = []

    def on_publish(sender: Any, headers: Any, routing_key: str, **kw: Any) -> None:
        sent.append((dict(headers), routing_key))

    @app.task(bind=True, max_retries=1)
    def flaky(self: Task[Any, Any]) -> int:
        if not self.request.retries:
            raise self.retry(exc=OSError("down"), countdown=0.2)
        gate.wait(30)  # hold the second run: RETRY stays visible until it ends
        return self.request.retries

    signals.before_task_publish.connect(on_publish)
    try:
        result = flaky.delay()
        wait_until(lambda: result.state == states.RETRY, "RETRY to be stored")
        assert isinstance(result.info, OSError)
        wait_until(lambda: len(sent) == 2, "the retry to be republished")
    finally:
        signals.before_task_publish.disconnect(on_publish)
        gate.set()
    assert result.get(timeout=30) == 1
    (first, _), (again, key) = sent
    assert (again["id"], again["task"], key) == (result.id, flaky.name, "celery")
    assert (first["retries"], again["retries"]) == (0, 1)
    assert first["eta"] is None and again["eta"] is not None
