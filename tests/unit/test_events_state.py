"""The in-memory cluster model (``celeriac.events.state.State``): bounded memory, clearing and
out-of-order events, each checked against real Celery's ``celery.events.state.State`` fed
the same events."""

from __future__ import annotations

import time
from typing import Any

import pytest
from celery.events.state import State as CeleryState  # type: ignore[import-untyped]

from celeriac import states
from celeriac.events.state import HEARTBEAT_HISTORY, State

NOW = time.time()


def task_event(type_: str, uuid: str, at: float, **fields: Any) -> dict[str, Any]:
    return {
        "type": f"task-{type_}",
        "uuid": uuid,
        "hostname": "w1@host",
        "timestamp": at,
        "local_received": at,
        "clock": int(at - NOW) + 1,
        **fields,
    }


def worker_event(type_: str, hostname: str, at: float) -> dict[str, Any]:
    return {
        "type": f"worker-{type_}",
        "hostname": hostname,
        "timestamp": at,
        "local_received": at,
        "freq": 2.0,
        "active": 0,
        "processed": 0,
    }


def feed(events: list[dict[str, Any]], *models: Any) -> None:
    for event in events:
        for model in models:
            model.event(dict(event))


def test_memory_is_bounded_keeping_the_most_recently_updated() -> None:
    model = State(max_workers_in_memory=2, max_tasks_in_memory=3)
    feed([worker_event("online", f"w{i}@host", NOW + i) for i in range(4)], model)
    assert list(model.workers) == ["w2@host", "w3@host"]
    events = [task_event("received", f"t{i}", NOW + i, name="tasks.add") for i in range(5)]
    feed(events, model)
    assert list(model.tasks) == ["t2", "t3", "t4"]
    feed([task_event("started", "t2", NOW + 6)], model)  # t2 updated: t3 is now the oldest
    feed([task_event("received", "t5", NOW + 7, name="tasks.add")], model)
    assert list(model.tasks) == ["t4", "t2", "t5"]
    assert model.task_count == 6 and model.event_count == 4 + 7
    # Heartbeats kept per worker are bounded too.
    feed([worker_event("heartbeat", "w3@host", NOW + 10 + i) for i in range(10)], model)
    assert len(model.workers["w3@host"].heartbeats) == HEARTBEAT_HISTORY


@pytest.mark.parametrize("ready", [True, False])
def test_clear_forgets_what_celerys_clear_forgets(ready: bool) -> None:
    ours, celerys = State(), CeleryState()
    feed(
        [
            worker_event("online", "w1@host", NOW),
            task_event("received", "done", NOW + 1, name="tasks.add"),
            task_event("succeeded", "done", NOW + 2, result="3", runtime=0.1),
            task_event("received", "failed", NOW + 3, name="tasks.boom"),
            task_event("failed", "failed", NOW + 4, exception="ValueError()"),
            task_event("received", "running", NOW + 5, name="tasks.block"),
            task_event("started", "running", NOW + 6),
            task_event("received", "waiting", NOW + 7, name="tasks.add"),
        ],
        ours,
        celerys,
    )
    ours.clear(ready=ready)
    celerys.clear(ready=ready)
    assert set(ours.tasks) == set(celerys.tasks)
    assert set(ours.tasks) == ({"running", "waiting"} if ready else set())
    assert not ours.workers and not celerys.workers
    assert ours.event_count == celerys.event_count == 0


def test_clear_tasks_keeps_the_workers() -> None:
    ours, celerys = State(), CeleryState()
    feed(
        [
            worker_event("online", "w1@host", NOW),
            task_event("received", "done", NOW + 1, name="tasks.add"),
            task_event("succeeded", "done", NOW + 2, result="3"),
            task_event("received", "waiting", NOW + 3, name="tasks.add"),
        ],
        ours,
        celerys,
    )
    ours.clear_tasks()
    celerys.clear_tasks()
    assert set(ours.tasks) == set(celerys.tasks) == {"waiting"}
    assert list(ours.workers) == list(celerys.workers) == ["w1@host"]


def test_an_earlier_event_arriving_late_only_fills_in_fields() -> None:
    ours, celerys = State(), CeleryState()
    feed(
        [
            task_event("succeeded", "t1", NOW + 2, result="5", runtime=0.2),
            task_event("received", "t1", NOW + 1, name="tasks.add", args="(2, 3)"),
        ],
        ours,
        celerys,
    )
    task, theirs = ours.tasks["t1"], celerys.tasks["t1"]
    assert task.state == theirs.state == states.SUCCESS
    assert (task.name, task.args, task.result) == (theirs.name, theirs.args, theirs.result)
    assert task.worker is not None and task.worker.hostname == "w1@host"
