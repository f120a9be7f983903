"""Events between real Celery 5.7 and celeriac on Redis, both ways round: a real Celery
receiver (``app.events.Receiver`` into ``celery.events.state.State``) follows a celeriac
worker, and celeriac's receiver follows a real ``celery worker -E``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.integration.events_helpers import watching
from tests.interop.conftest import Endpoint, WorkerFactory

pytestmark = [
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.parametrize("endpoint", ["redis"], indirect=True, scope="module"),
]
TIMEOUT = 30.0


def _wait(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def celery_watching(app: Any) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """A real Celery receiver in a thread, feeding a real Celery State."""
    state = app.events.State()
    seen: list[dict[str, Any]] = []
    ready = threading.Event()

    def on_event(event: dict[str, Any]) -> None:
        seen.append(event)
        state.event(event)

    with app.connection_for_read() as conn:
        receiver = app.events.Receiver(conn, handlers={"*": on_event})

        def run() -> None:
            for _ in receiver.consume(limit=None, timeout=None, safety_interval=0.2):
                ready.set()

        receiver.on_consume_ready = lambda *args, **kwargs: ready.set()  # subscribed
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        assert ready.wait(TIMEOUT), "the Celery receiver did not subscribe"
        try:
            yield state, seen
        finally:
            receiver.should_stop = True
            thread.join(10)


def test_a_celery_receiver_follows_a_celeriac_worker(
    celery_client: Any, start_worker: WorkerFactory, endpoint: Endpoint
) -> None:
    celery_receiver_follows_celeriac(celery_client, start_worker, "ev-celeriac@interop")


def test_celeriac_follows_a_celery_worker(
    celeriac_client: Any, start_worker: WorkerFactory, endpoint: Endpoint
) -> None:
    celeriac_follows_celery(celeriac_client, start_worker, "ev-celery@interop")


def celery_receiver_follows_celeriac(
    celery_client: Any, start_worker: WorkerFactory, node: str
) -> None:
    """A real Celery receiver and State see a celeriac worker and its task (shared with the
    RabbitMQ module)."""
    with celery_watching(celery_client) as (state, seen):
        start_worker("celeriac", "-P", "threads", "-E", "-n", node)
        result = celery_client.send_task("interop.add", (2, 3))
        assert result.get(timeout=TIMEOUT) == 5
        _wait(
            lambda: any(e["type"] == "task-succeeded" and e["uuid"] == result.id for e in seen),
            "task-succeeded in the Celery receiver",
        )
        task = state.tasks[result.id]
        assert task.state == "SUCCESS" and task.result == "5"
        assert task.name == "interop.add" and task.worker.hostname == node
        worker = state.workers[node]
        assert worker.alive and worker.sw_ident == "py-celeriac"


def celeriac_follows_celery(celeriac_client: Any, start_worker: WorkerFactory, node: str) -> None:
    """celeriac's receiver and cluster model see a real ``celery worker -E`` and its task."""
    with watching(celeriac_client) as seen:
        start_worker("celery", "-P", "threads", "-E", "-n", node, "--heartbeat-interval", "2")
        result = celeriac_client.send_task("interop.add", (4, 5))
        assert result.get(timeout=TIMEOUT) == 9
        _wait(lambda: seen.of_type("task-succeeded", uuid=result.id), "task-succeeded")
        (received,) = seen.of_type("task-received", uuid=result.id)
        assert received["hostname"] == node and received["args"] == "(4, 5)"
        task = seen.state.tasks[result.id]
        assert task.state == "SUCCESS" and task.result == "9"
        assert task.worker is not None and task.worker.hostname == node
        (online,) = seen.of_type("worker-online", hostname=node)
        assert online["sw_ident"] == "py-celery" and online["freq"] == 2.0
        assert seen.state.workers[node].alive
