"""Soft shutdown (Celery 5.5's ``worker_soft_shutdown_timeout``): SIGTERM lets running tasks
finish for at most the timeout, then cuts them short and their messages go back to the
broker; a second worker completes every task, each exactly once (early acks) or at least
once (acks_late, as Celery documents; here once too, since the cut-short run never
completed). Both prefork topologies (children fed by the parent, children that consume),
threads and solo; the embedded SQLite default, Redis and RabbitMQ."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from celeriac import Celery
from tests.integration.broker_envs import BrokerEnv
from tests.integration.conftest import WorkerFactory, wait_state, wait_until

TIMEOUT = 1.0
TASKS = 4


def _send(client: Celery, tmp_path: Path, acks_late: bool) -> tuple[list[str], Path, Path]:
    release, done = tmp_path / "release", tmp_path / "done"
    ids = [client.send_task("tasks.until", (str(release), str(done))).id for _ in range(TASKS)]
    return ids, release, done


@pytest.mark.slow
@pytest.mark.parametrize(
    ("broker", "pool", "conf"),
    [
        ("sqlite", "prefork", {}),
        ("sqlite", "threads", {"task_acks_late": True}),
        ("sqlite", "solo", {}),
        ("redis", "prefork", {}),  # children that consume
        ("redis", "prefork", {"worker_direct_consume": False, "task_acks_late": True}),
        ("amqp", "prefork", {}),  # children that consume
        ("amqp", "prefork", {"worker_direct_consume": False}),
        ("amqp", "threads", {"task_acks_late": True}),
    ],
    indirect=["broker"],
)
def test_sigterm_cuts_running_tasks_short_after_the_timeout_and_none_is_lost(
    start_worker: WorkerFactory,
    client: Celery,
    broker: BrokerEnv,
    tmp_path: Path,
    pool: str,
    conf: dict[str, object],
) -> None:
    settings = {"worker_soft_shutdown_timeout": TIMEOUT, "worker_prefetch_multiplier": 1, **conf}
    concurrency = "1" if pool == "solo" else "2"
    first = start_worker("-P", pool, "-c", concurrency, conf=settings)
    ids, release, done = _send(client, tmp_path, bool(conf.get("task_acks_late")))
    running = int(concurrency)
    # Running (STARTED: tasks.until tracks it), not only received: a solo worker signalled
    # between receiving and starting has nothing to cut short.
    wait_until(
        lambda: sum(client.backend.get_state(i) == "STARTED" for i in ids) >= running,
        "tasks to run",
    )
    began = time.monotonic()
    first.signal(signal.SIGTERM)
    assert first.wait_exit() == 0
    took = time.monotonic() - began
    log = first.output()
    assert "Initiating Soft Shutdown, terminating in 1.0 seconds" in log, log
    assert "Soft shutdown timeout (1.0s) reached" in log, log
    assert took < TIMEOUT + 15, took
    assert not done.exists()  # nothing completed: every task was cut short or never started

    release.write_text("go")
    second = start_worker("-P", "threads", "-c", "4", conf=conf)
    for task_id in ids:
        wait_state(client, task_id, "SUCCESS")
    second.stop()
    completed = Counter(done.read_text().split())
    assert completed == dict.fromkeys(ids, 1), completed


@pytest.mark.slow
def test_tasks_that_finish_within_the_timeout_are_not_cut_short(
    start_worker: WorkerFactory, client: Celery, tmp_path: Path
) -> None:
    worker = start_worker("-P", "threads", "-c", "2", conf={"worker_soft_shutdown_timeout": 30.0})
    ids, release, done = _send(client, tmp_path, False)
    # Running, not only received: a received task that has not started goes back at once.
    wait_until(
        lambda: sum(client.backend.get_state(i) == "STARTED" for i in ids) >= 2, "tasks to run"
    )
    worker.signal(signal.SIGTERM)
    wait_until(lambda: "Initiating Soft Shutdown" in worker.output(), "the soft shutdown")
    release.write_text("go")
    assert worker.wait_exit() == 0
    assert "reached" not in worker.output()
    finished = done.read_text().split()
    assert len(finished) >= 2 and set(finished) <= set(ids)


@pytest.mark.slow
@pytest.mark.parametrize("on_idle", [True, False])
def test_sigquit_is_soft_too_and_waits_on_idle_only_when_asked(
    start_worker: WorkerFactory, on_idle: bool
) -> None:
    conf = {"worker_soft_shutdown_timeout": 3.0, "worker_enable_soft_shutdown_on_idle": on_idle}
    worker = start_worker("-P", "threads", "-c", "1", conf=conf)
    began = time.monotonic()
    worker.signal(signal.SIGQUIT)  # Celery: a cold shutdown, soft first when the timeout is set
    assert worker.wait_exit() == 0
    took = time.monotonic() - began
    assert "Initiating Soft Shutdown, terminating in 3.0 seconds" in worker.output()
    if on_idle:
        assert took >= 3.0, took
    else:
        assert took < 3.0, took


@pytest.mark.slow
def test_remap_sigterm_makes_sigterm_cold_as_in_celery(
    start_worker: WorkerFactory, client: Celery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMAP_SIGTERM", "SIGQUIT")  # billiard's switch, read by Celery too
    worker = start_worker("-P", "threads", "-c", "1")
    running = client.send_task("tasks.block", (str(tmp_path / "never"),))
    wait_state(client, running.id, "STARTED")
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit() == 0  # it did not wait for the task, which never ends
    assert "Cold shutdown" in worker.output()
