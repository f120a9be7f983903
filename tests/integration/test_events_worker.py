"""Events from real workers on every broker: worker-online / heartbeat / offline and the task
events with Celery's fields, received by celeriac's receiver into the cluster model."""

from __future__ import annotations

from typing import Any

import pytest

import celeriac
from celeriac import Celery, states
from celeriac.exceptions import Reject
from celeriac.testing import start_worker
from tests.integration.broker_envs import ALL
from tests.integration.conftest import wait_until
from tests.integration.events_helpers import watching

pytestmark = pytest.mark.parametrize("broker", ALL, indirect=True)

#: The fields Celery's events carry (celery-wire-protocol.md section 6.3-6.4).
COMMON = {"hostname", "utcoffset", "pid", "clock", "timestamp", "type", "local_received"}
WORKER = COMMON | {"freq", "active", "processed", "loadavg", "sw_ident", "sw_ver", "sw_sys"}
RECEIVED = COMMON | {
    "uuid",
    "name",
    "args",
    "kwargs",
    "root_id",
    "parent_id",
    "retries",
    "eta",
    "expires",
}


def test_a_worker_with_task_events_is_seen_with_its_tasks(app: Celery) -> None:
    app.conf.worker_send_task_events = True
    app.conf.task_send_sent_event = True

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def boom() -> None:
        raise ValueError("boom")

    with watching(app) as seen, start_worker(app, pool="threads", concurrency=2) as worker:
        node = worker.hostname
        wait_until(lambda: seen.of_type("worker-online", hostname=node), "worker-online")
        ok = add.delay(2, 3)
        bad = boom.delay()
        assert ok.get(timeout=10) == 5
        with pytest.raises(ValueError):
            bad.get(timeout=10)
        wait_until(lambda: seen.of_type("task-failed", uuid=bad.id), "task-failed")
        wait_until(lambda: seen.of_type("task-succeeded", uuid=ok.id), "task-succeeded")
        sent = seen.of_type("task-sent", uuid=ok.id)[0]
        assert sent["name"] == add.name and sent["args"] == "(2, 3)"
        assert sent["queue"] == "celery" and sent["routing_key"] == "celery"
        assert sent["hostname"].startswith("gen")
        received = seen.of_type("task-received", uuid=ok.id)[0]
        assert set(received) == RECEIVED
        assert received["hostname"] == node and received["kwargs"] == "{}"
        assert seen.of_type("task-started", uuid=ok.id)
        done = seen.of_type("task-succeeded", uuid=ok.id)[0]
        assert done["result"] == "5" and done["runtime"] >= 0
        failed = seen.of_type("task-failed", uuid=bad.id)[0]
        assert failed["exception"] == "ValueError('boom')"
        assert "Traceback" in failed["traceback"]
        online = seen.of_type("worker-online", hostname=node)[0]
        assert set(online) == WORKER and online["freq"] == 2.0
        assert (online["sw_ident"], online["sw_ver"]) == ("py-celeriac", celeriac.__version__)
        model = seen.state
        assert model.workers[node].alive
        task = model.tasks[ok.id]
        assert task.state == states.SUCCESS and task.worker is not None
        assert task.worker.hostname == node and task.name == add.name
        # In the order they arrived: task-sent comes over another connection.
        assert {s for s, _ in task.history} == {
            states.PENDING,
            states.RECEIVED,
            states.STARTED,
            states.SUCCESS,
        }
        assert model.tasks[bad.id].state == states.FAILURE
    wait_until(lambda: seen.of_type("worker-offline", hostname=node), "worker-offline")


def test_without_task_events_only_the_worker_is_seen_until_enabled(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with watching(app) as seen, start_worker(app, pool="threads") as worker:
        node = worker.hostname
        wait_until(lambda: seen.of_type("worker-online", hostname=node), "worker-online")
        first = add.delay(1, 1)
        assert first.get(timeout=10) == 2
        replies = app.control.broadcast("enable_events", reply=True, timeout=5, limit=1)
        assert replies == [{node: {"ok": "task events enabled"}}]
        second = add.delay(2, 2)
        assert second.get(timeout=10) == 4
        wait_until(lambda: seen.of_type("task-succeeded", uuid=second.id), "task-succeeded")
        assert not seen.of_type("task-received", uuid=first.id)
        app.control.broadcast("disable_events", reply=True, timeout=5, limit=1)
        third = add.delay(3, 3)
        assert third.get(timeout=10) == 6
        app.control.broadcast("heartbeat")  # a heartbeat now: it follows the task's events
        beats = len(seen.of_type("worker-heartbeat", hostname=node))
        wait_until(
            lambda: len(seen.of_type("worker-heartbeat", hostname=node)) > beats, "a heartbeat"
        )
        assert not seen.of_type("task-received", uuid=third.id)


def test_task_send_event_reaches_the_receiver(app: Celery) -> None:
    app.conf.worker_send_task_events = True

    @app.task(bind=True)
    def progress(self: object) -> str:
        self.send_event("task-progress", done=3, total=4)  # type: ignore[attr-defined]
        return "ok"

    with watching(app) as seen, start_worker(app, pool="threads"):
        result = progress.delay()
        assert result.get(timeout=10) == "ok"
        event = wait_until(lambda: seen.of_type("task-progress", uuid=result.id), "custom event")
        assert event[0]["done"] == 3 and event[0]["total"] == 4
        wait_until(lambda: seen.of_type("task-succeeded", uuid=result.id), "succeeded")
        assert "PROGRESS" in {s for s, _ in seen.state.tasks[result.id].history}


def test_retried_rejected_and_revoked_tasks_send_their_events(app: Celery) -> None:
    """task-retried (Celery's fields: the cause's repr, the traceback), task-rejected
    (``requeue``), task-revoked (a task revoked before it arrived: not terminated, not
    expired); the cluster model follows each."""
    app.conf.worker_send_task_events = True
    tries: list[int] = []

    @app.task(bind=True, name="t.flaky", max_retries=3)
    def flaky(self: Any) -> str:
        tries.append(self.request.retries)
        if not self.request.retries:
            raise self.retry(exc=KeyError("first try"), countdown=0)
        return "second try"

    @app.task(name="t.refuse")
    def refuse() -> None:
        raise Reject("not for me", requeue=False)

    @app.task(name="t.never")
    def never() -> None:
        raise AssertionError("a revoked task ran")

    # One thread: the retry's message is published by the first run before that run's
    # task-retried event is sent (as in Celery); a second thread could run it and send
    # task-succeeded first, and a late RETRY overwrites SUCCESS in the model, as in Celery's.
    with watching(app) as seen, start_worker(app, pool="threads", concurrency=1) as worker:
        node = worker.hostname
        retried = flaky.delay()
        assert retried.get(timeout=10) == "second try" and tries == [0, 1]
        (event,) = wait_until(lambda: seen.of_type("task-retried", uuid=retried.id), "retried")
        assert event["exception"] == "KeyError('first try')" and "Traceback" in event["traceback"]
        assert event["hostname"] == node
        wait_until(lambda: seen.of_type("task-succeeded", uuid=retried.id), "then succeeded")
        assert len(seen.of_type("task-received", uuid=retried.id)) == 2  # the retry's message
        assert states.RETRY in {s for s, _ in seen.state.tasks[retried.id].history}
        assert seen.state.tasks[retried.id].state == states.SUCCESS

        rejected = refuse.delay()
        (event,) = wait_until(lambda: seen.of_type("task-rejected", uuid=rejected.id), "rejected")
        assert event["requeue"] is False and event["hostname"] == node
        # As in Celery's State, REJECTED ranks before STARTED: the state stays, the time is kept.
        task = seen.state.tasks[rejected.id]
        assert task.state == states.STARTED and task.rejected == event["timestamp"]

        app.control.revoke("revoked-before", reply=True, timeout=5, limit=1)
        never.apply_async(task_id="revoked-before")
        (event,) = wait_until(
            lambda: seen.of_type("task-revoked", uuid="revoked-before"), "revoked"
        )
        assert (event["terminated"], event["signum"], event["expired"]) == (False, None, False)
        assert seen.state.tasks["revoked-before"].state == states.REVOKED
