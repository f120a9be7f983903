"""Prefork children that consume for themselves (Redis, RabbitMQ): nothing is lost when one
dies, and remote control reaches them through their parent."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from celeriac import Celery, states
from celeriac.testing import start_worker as start_in_thread
from celeriac.worker.pools.prefork.direct import DirectPreforkPool
from celeriac.worker.pools.prefork.pool import PreforkPool
from tests.integration.broker_envs import BrokerEnv
from tests.integration.conftest import WorkerFactory, wait_state, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("broker", ["redis", "amqp"], indirect=True)]


def test_a_child_killed_mid_batch_loses_none_of_its_other_tasks(
    client: Celery, start_worker: WorkerFactory, tmp_path: Path, broker: BrokerEnv
) -> None:
    # Queued before the worker starts: the child's first batch is the killer and the tasks
    # behind it, and it holds the rest prefetched. Only a started task is acknowledged, so
    # the unstarted ones are still the broker's: RabbitMQ delivers them again when the
    # child's connection closes (nothing is published again); on Redis its parent gives them
    # back with the prefetched ones.
    killer = client.send_task("tasks.die_once", (str(tmp_path / "died"),))
    adds = [client.send_task("tasks.add", (i, 1)) for i in range(10)]
    worker = start_worker("-P", "prefork", "-c", "1", "-l", "info")
    assert [r.get(timeout=30) for r in adds] == list(range(1, 11))
    wait_state(client, killer.id, states.FAILURE)
    assert type(killer.result).__name__ == "WorkerLostError"
    assert "signal 9 (SIGKILL)" in str(killer.result)
    assert worker.stop() == 0
    assert client.backend.get_state(killer.id) == states.FAILURE  # never run a second time
    log = worker.output()
    assert "Sent again" not in log
    assert broker.kind == "amqp" or "Gave back" in log


def test_tasks_behind_a_long_one_go_to_an_idle_child(
    client: Celery, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    # Celery's -O fair: a child busy with a long task does not keep what the broker pushed
    # to it ahead (RabbitMQ prefetch) while the other child idles.
    start_worker("-P", "prefork", "-c", "2")
    release = tmp_path / "release"
    long = client.send_task("tasks.block", (str(release),))
    wait_state(client, long.id, states.STARTED)
    adds = [client.send_task("tasks.add", (i, 1)) for i in range(8)]
    assert [r.get(timeout=20) for r in adds] == list(range(1, 9))
    assert client.backend.get_state(long.id) == states.STARTED  # still running meanwhile
    release.touch()
    assert long.get(timeout=30) == "released"


def test_revoke_and_terminate_reach_the_children(
    client: Celery, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    start_worker("-P", "prefork", "-c", "2")
    later = client.send_task("tasks.add", (1, 1), countdown=3)  # held by a child for its ETA
    running = client.send_task("tasks.hang")
    wait_state(client, running.id, states.STARTED)
    client.control.revoke(later.id)
    pid = client.backend.get_task_meta(running.id)["result"]["pid"]
    client.control.revoke(running.id, terminate=True, signal="SIGKILL")
    wait_state(client, running.id, states.REVOKED)
    wait_state(client, later.id, states.REVOKED)
    wait_until(lambda: not _alive(pid), "the terminated child to be gone")
    assert client.send_task("tasks.add", (2, 2)).get(timeout=30) == 4  # the pool goes on


def _alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


def test_the_setting_chooses_children_that_consume_or_the_pipe_fed_pool(app: Celery) -> None:
    @app.task
    def pid() -> int:
        return os.getpid()

    with start_in_thread(app, pool="prefork", concurrency=1) as worker:
        assert isinstance(worker.pool, DirectPreforkPool)
        first = pid.delay().get(timeout=15)
        assert first != os.getpid() and first in worker.pool.pids()
    app.conf.worker_direct_consume = False
    with start_in_thread(app, pool="prefork", concurrency=1) as worker:
        assert isinstance(worker.pool, PreforkPool)
        assert pid.delay().get(timeout=15) in worker.pool.pids()


def test_children_stop_when_their_parent_is_killed(
    client: Celery, start_worker: WorkerFactory
) -> None:
    worker = start_worker("-P", "prefork", "-c", "2")
    assert client.send_task("tasks.add", (1, 1)).get(timeout=30) == 2
    children = _children_of(worker.process.pid)
    assert len(children) == 2
    worker.process.kill()
    worker.process.wait()
    for pid in children:  # no orphan goes on consuming (and taking other tests' messages)
        wait_until(lambda pid=pid: not _alive(pid), f"pool process {pid} to exit")


def _children_of(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if f"\nPPid:\t{pid}\n" in text:
            found.append(int(status.parent.name))
    return found


def test_a_child_killed_holding_an_eta_message_gives_it_back_at_once(
    client: Celery, start_worker: WorkerFactory, broker: BrokerEnv
) -> None:
    """A message a consuming child fetched and holds outside any batch (here one waiting for
    its ETA) is recorded as held when fetched: when the child dies, its parent gives it back
    at once (Redis) or the broker does (RabbitMQ), so it runs at its ETA, not a lease later."""
    start_worker("-P", "prefork", "-c", "1", "-l", "info")
    assert client.send_task("tasks.add", (1, 1)).get(timeout=30) == 2
    eta = client.send_task("tasks.add", (2, 2), countdown=6)

    def scheduled() -> list[str]:
        answers = client.control.inspect(timeout=1.0).scheduled() or {}
        return [e["request"]["id"] for entries in answers.values() for e in entries]

    wait_until(lambda: eta.id in scheduled(), "the child to hold the ETA task")
    stats = client.control.inspect(timeout=2.0).stats() or {}
    (pid,) = [p for s in stats.values() for p in s["pool"]["processes"]]
    os.kill(pid, signal.SIGKILL)
    assert eta.get(timeout=30) == 4
