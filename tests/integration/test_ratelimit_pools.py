"""A rate limit is per worker on every pool: ``120/m`` is one task every 0.5 s for the worker,
whichever of its processes runs the task (worker subprocesses of ``worker_app``, -c 2)."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from celeriac import Celery
from tests.integration.conftest import DEADLINE, WorkerFactory, wait_until

RATE = "120/m"
INTERVAL = 0.5  # seconds between two starts at RATE
#: Starts may come this much early (time.time() read in two processes).
EARLY = 0.05
#: ... and on average no later than this many intervals apart (per process buckets: 2).
SLOWEST = 1.5
LIMITED = 4
#: Brokers on which prefork children consume for themselves.
DIRECT = ["redis", "amqp"]

#: (pool, broker): prefork is fed by its parent on SQLite; its children consume for
#: themselves on Redis and RabbitMQ.
POOLS = [
    pytest.param("solo", "sqlite", id="solo"),
    pytest.param("threads", "sqlite", id="threads"),
    pytest.param("asyncio", "sqlite", id="asyncio"),
    pytest.param("prefork", "sqlite", id="prefork-fed"),
    pytest.param("prefork", "redis", id="prefork-direct-redis"),
    pytest.param("prefork", "amqp", id="prefork-direct-amqp"),
]


def _limited(rate: str) -> dict[str, Any]:
    """The seed's configuration: the limit set by ``task_annotations``."""
    return {"task_annotations": {"tasks.stamp": {"rate_limit": rate}}}


def _assert_per_worker(stamps: list[list[Any]]) -> None:
    """Consecutive starts, across every process, are one interval apart: not less, and on
    average not much more."""
    starts = sorted(s[0] for s in stamps)
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(starts)]
    pids = len({s[1] for s in stamps})
    assert min(gaps) >= INTERVAL - EARLY, f"faster than {RATE}: {gaps} ({pids} process(es))"
    pace = (starts[-1] - starts[0]) / len(gaps)
    assert pace <= SLOWEST * INTERVAL, f"slower than {RATE}: {gaps} ({pids} process(es))"


@pytest.mark.parametrize(("pool", "broker"), POOLS, indirect=["broker"])
def test_rate_limit_is_per_worker(pool: str, app: Celery, start_worker: WorkerFactory) -> None:
    start_worker("-P", pool, "-c", "2", conf=_limited(RATE))
    assert app.send_task("tasks.add", (1, 1)).get(timeout=DEADLINE) == 2  # the pool consumes
    sent = time.time()
    limited = [app.send_task("tasks.stamp") for _ in range(LIMITED)]
    free = [app.send_task("tasks.add", (i, i)) for i in range(4)]
    assert [r.get(timeout=DEADLINE) for r in free] == [0, 2, 4, 6]
    free_done = time.time()
    stamps = [r.get(timeout=DEADLINE) for r in limited]
    first = min(s[0] for s in stamps)
    assert first - sent < INTERVAL  # the bucket starts with its one token
    _assert_per_worker(stamps)
    assert free_done < max(s[0] for s in stamps)  # others did not wait behind the limited


@pytest.mark.parametrize("broker", DIRECT, indirect=True)
def test_rate_limit_command_reaches_every_process(app: Celery, start_worker: WorkerFactory) -> None:
    """``app.control.rate_limit`` changes the one limit of the worker in each of its processes:
    requests a process holds for the old rate ask again (else they would wait an hour)."""
    start_worker("-P", "prefork", "-c", "2", conf=_limited("1/h"))
    assert app.send_task("tasks.stamp").get(timeout=DEADLINE)[2] == "1/h"  # the free token
    held = [app.send_task("tasks.stamp") for _ in range(LIMITED)]
    transport = app.connection()
    transport.open()
    try:  # every message taken by the pool's processes: held there for an hour
        wait_until(lambda: transport.size("celery") == 0, "the pool to take the messages")
    finally:
        transport.close()
    replies = app.control.rate_limit("tasks.stamp", RATE, reply=True, timeout=5, limit=1)
    assert [list(r.values()) for r in replies] == [[{"ok": "new rate limit set successfully"}]]
    stamps = [r.get(timeout=DEADLINE) for r in held]  # an hour if a process missed the change
    assert {s[2] for s in stamps} == {RATE}  # each process that ran one knows it too
    _assert_per_worker(stamps)


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_held_requests_go_back_at_shutdown(app: Celery, start_worker: WorkerFactory) -> None:
    """Messages a prefork child holds for a token return to the broker at a warm shutdown."""
    worker = start_worker("-P", "prefork", "-c", "2", conf=_limited("1/h"))
    app.send_task("tasks.stamp").get(timeout=DEADLINE)
    held = [app.send_task("tasks.stamp") for _ in range(LIMITED)]
    transport = app.connection()
    transport.open()
    try:
        wait_until(lambda: transport.size("celery") == 0, "the pool to take the messages")
        assert worker.stop() == 0
        assert transport.size("celery") == len(held)
    finally:
        transport.close()
    assert {r.state for r in held} == {"PENDING"}
