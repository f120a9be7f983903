"""A real worker subprocess: results, shutdown, lost children, bad input (SQLite); the
issue-6 features (acks_late, reject_on_worker_lost, expires, ETA, -Q) on every broker a
subprocess can share (SQLite, Redis, RabbitMQ)."""

from __future__ import annotations

import os
import pickle
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, states
from celeriac.protocol import task_v2
from celeriac.protocol.message import Message, TaskCall
from celeriac.worker.pools.base import LONG_TASK
from tests.integration.broker_envs import PROCESS, BrokerEnv
from tests.integration.conftest import WorkerFactory, queue_size, state_of, wait_state, wait_until

pytestmark = pytest.mark.slow

POOLS = ["solo", "threads", "prefork"]


def count_states(app: Celery, ids: list[str], state: str) -> int:
    return sum(1 for task_id in ids if state_of(app, task_id) == state)


@pytest.mark.parametrize("pool", POOLS)
def test_results_logs_and_banner(pool: str, client: Celery, start_worker: WorkerFactory) -> None:
    worker = start_worker("-P", pool, "-c", "2", "-l", "info")
    adds = [client.send_task("tasks.add", (i, i)) for i in range(20)]
    boom = client.send_task("tasks.boom", ("kaput",))
    assert [r.get(timeout=30) for r in adds] == [2 * i for i in range(20)]
    with pytest.raises(ValueError, match="kaput"):
        boom.get(timeout=30)
    assert worker.stop() == 0
    out = worker.output()
    assert "[tasks]\n  . tasks.add" in out
    assert f".> concurrency: 2 ({pool})" in out
    assert "celery@" in out and " ready." in out
    first = adds[0].id
    assert f"Task tasks.add[{first}] received" in out
    assert f"Task tasks.add[{first}] succeeded in " in out
    assert f"Task tasks.boom[{boom.id}] raised unexpected: ValueError('kaput')" in out
    assert "worker: Warm shutdown (MainProcess)" in out


@pytest.mark.parametrize("pool", POOLS)
def test_warm_shutdown_gives_back_prefetched_messages(
    pool: str, client: Celery, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    release = str(tmp_path / "release")
    concurrency = "1" if pool == "solo" else "2"
    worker = start_worker("-P", pool, "-c", concurrency, "--prefetch-multiplier", "2")
    ids = [client.send_task("tasks.block", (release,)).id for _ in range(12)]
    wait_until(lambda: count_states(client, ids, states.STARTED), "a task to start")
    worker.signal(signal.SIGTERM)
    # Reserved messages go back at once, while the running tasks still block.
    wait_until(lambda: "Warm shutdown" in worker.output(), "the warm shutdown")
    Path(release).touch()
    assert worker.wait_exit() == 0
    done = count_states(client, ids, states.SUCCESS)
    left = queue_size(client)
    assert done >= 1 and left >= 1
    assert done + left == len(ids), f"lost messages: {done} done, {left} left"
    assert count_states(client, ids, states.STARTED) == 0


@pytest.mark.parametrize("pool", POOLS)
def test_cold_shutdown_gives_back_unacked_messages(
    pool: str, client: Celery, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    release = str(tmp_path / "never")
    concurrency = "1" if pool == "solo" else "2"
    worker = start_worker("-P", pool, "-c", concurrency, conf={"task_acks_late": True})
    ids = [client.send_task("tasks.block", (release,)).id for _ in range(6)]
    wait_until(lambda: count_states(client, ids, states.STARTED), "a task to start")
    worker.signal(signal.SIGTERM)
    wait_until(lambda: "Warm shutdown" in worker.output(), "the warm shutdown")
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit() == 0
    assert "worker: Cold shutdown (MainProcess)" in worker.output()
    assert queue_size(client) == len(ids)  # acks_late: every message is still there


@pytest.mark.parametrize("pool", POOLS)
def test_two_signals_at_once_still_shut_down(
    pool: str, client: Celery, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    """A second signal may land while the first one's handler still runs: no deadlock.
    (Distinct signals, as a signal sent again before its handler ran is delivered once.)"""
    release = str(tmp_path / "never")
    worker = start_worker("-P", pool, "-c", "1", conf={"task_acks_late": True})
    task_id = client.send_task("tasks.block", (release,)).id
    wait_state(client, task_id, states.STARTED)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        worker.signal(signum)
    assert worker.wait_exit() == 0
    assert "worker: Cold shutdown (MainProcess)" in worker.output()
    assert queue_size(client) == 1  # acks_late: the message is still there


def test_sigusr1_prints_every_threads_stack(client: Celery, start_worker: WorkerFactory) -> None:
    worker = start_worker("-P", "threads", "-c", "2")
    worker.signal(signal.SIGUSR1)
    wait_until(lambda: "most recent call first" in worker.output(), "the stack dump")
    assert worker.process.poll() is None  # it goes on working
    assert client.send_task("tasks.add", (1, 2)).get(timeout=30) == 3
    assert worker.stop() == 0


def _holds_exactly(client: Celery, release: str, ids: list[str], held: int) -> None:
    """The worker keeps exactly ``held`` of the queued messages (never more), then all run."""

    def sizes_settle() -> bool:
        size = queue_size(client)
        assert size >= len(ids) - held, f"the worker took {len(ids) - size}; it may hold {held}"
        return size == len(ids) - held

    wait_until(sizes_settle, f"the worker to hold exactly {held} messages")
    Path(release).touch()
    for task_id in ids:
        wait_state(client, task_id, states.SUCCESS)


def test_prefetch_limit_is_respected(
    client: Celery, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    release = str(tmp_path / "release")
    # Queued before the worker starts: a solo worker runs its first task in the thread that
    # fetches, so a worker woken by the first send could start it holding nothing more.
    ids = [client.send_task("tasks.block", (release,)).id for _ in range(10)]
    start_worker("-P", "solo", "-c", "1", "--prefetch-multiplier", "3")
    wait_state(client, ids[0], states.STARTED)
    _holds_exactly(client, release, ids, 3)


def test_running_tasks_do_not_count_against_the_prefetch_window(
    client: Celery, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    # As in Celery: -c 2 with multiplier 1 runs two tasks and reserves two more.
    release = str(tmp_path / "release")
    start_worker("-P", "threads", "-c", "2", "--prefetch-multiplier", "1")
    ids = [client.send_task("tasks.block", (release,)).id for _ in range(10)]
    wait_until(lambda: count_states(client, ids, states.STARTED) == 2, "two tasks to start")
    _holds_exactly(client, release, ids, 4)


@pytest.mark.parametrize("direct", [True, False], ids=["children-consume", "pipe-fed"])
@pytest.mark.parametrize("broker", PROCESS, indirect=True)
def test_prefork_queues_nothing_behind_a_long_task(
    client: Celery, start_worker: WorkerFactory, tmp_path: Path, direct: bool
) -> None:
    # Celery's -O fair: once a task runs long, the tasks that come after it go to the idle
    # child, not into the busy one's prefetch or pipe.
    start_worker("-P", "prefork", "-c", "2", conf={"worker_direct_consume": direct})
    release = tmp_path / "release"
    long = client.send_task("tasks.block", (str(release),))
    wait_state(client, long.id, states.STARTED)
    known_long = time.monotonic() + LONG_TASK + 0.1  # a timing precondition, not a wait
    wait_until(lambda: time.monotonic() >= known_long, "the task to count as long")
    adds = [client.send_task("tasks.add", (i, 1)) for i in range(8)]
    assert [r.get(timeout=20) for r in adds] == list(range(1, 9))
    assert state_of(client, long.id) == states.STARTED  # still running meanwhile
    release.touch()
    assert long.get(timeout=30) == "released"


@pytest.mark.parametrize("broker", PROCESS, indirect=True)
def test_prefork_child_killed_fails_with_worker_lost(
    client: Celery, start_worker: WorkerFactory
) -> None:
    worker = start_worker("-P", "prefork", "-c", "2", "-l", "info")
    result = client.send_task("tasks.hang")
    wait_state(client, result.id, states.STARTED)
    pid = client.backend.get_task_meta(result.id)["result"]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_state(client, result.id, states.FAILURE)
    assert type(result.result).__name__ == "WorkerLostError"
    assert "signal 9 (SIGKILL)" in str(result.result)
    # The child was replaced: the pool still runs two tasks at once.
    assert [client.send_task("tasks.add", (i, 1)).get(timeout=30) for i in range(4)] == [1, 2, 3, 4]
    assert worker.stop() == 0


@pytest.mark.parametrize("broker", PROCESS, indirect=True)
def test_acks_late_reject_on_worker_lost_redelivers(
    client: Celery, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    start_worker("-P", "prefork", "-c", "1")
    marker = str(tmp_path / "marker")
    result = client.send_task("tasks.once_slow", (marker,))
    wait_until(lambda: os.path.exists(marker), "the first run to start")
    pid = client.backend.get_task_meta(result.id)["result"]["pid"]
    os.kill(pid, signal.SIGKILL)
    assert result.get(timeout=30) == "second run"


@pytest.mark.parametrize("broker", PROCESS, indirect=True)
def test_acks_late_without_reject_fails_and_acks(
    client: Celery, start_worker: WorkerFactory, broker: BrokerEnv
) -> None:
    conf = {"task_acks_late": True, "task_reject_on_worker_lost": False}
    if broker.kind == "amqp":
        # Children that consume for themselves cannot ack for a dead one on RabbitMQ (the
        # broker delivers its message again): Celery's rule holds with the pipe-fed pool.
        conf["worker_direct_consume"] = False
    start_worker("-P", "prefork", "-c", "1", conf=conf)
    result = client.send_task("tasks.hang")
    wait_state(client, result.id, states.STARTED)
    os.kill(client.backend.get_task_meta(result.id)["result"]["pid"], signal.SIGKILL)
    wait_state(client, result.id, states.FAILURE)
    assert type(result.result).__name__ == "WorkerLostError"
    assert queue_size(client) == 0  # acked (task_acks_on_failure_or_timeout), not redelivered


def _publish(app: Celery, message: Message, queue: str = "celery") -> None:
    with app.connection() as conn:
        conn.publish(message, exchange="", routing_key=queue)


def _add_message(task_id: str, name: str = "tasks.add", **kw: Any) -> Message:
    return task_v2.encode(TaskCall(name=name, id=task_id, args=(1, 2)), **kw)


@pytest.mark.parametrize("broker", PROCESS, indirect=True)
def test_unknown_task_is_failed_and_worker_goes_on(
    client: Celery, start_worker: WorkerFactory
) -> None:
    worker = start_worker("-P", "solo", "-l", "info")
    bad_id = str(uuid.uuid4())
    _publish(client, _add_message(bad_id, name="tasks.nope"))
    assert client.send_task("tasks.add", (2, 2)).get(timeout=30) == 4
    assert state_of(client, bad_id) == states.FAILURE
    assert type(client.AsyncResult(bad_id).result).__name__ == "NotRegistered"
    assert queue_size(client) == 0
    worker.stop()
    out = worker.output()
    assert "Received unregistered task of type 'tasks.nope'" in out
    assert bad_id in out and "The message has been ignored and discarded." in out
    assert "-A" in out


def test_refused_content_type_is_rejected_and_worker_goes_on(
    client: Celery, start_worker: WorkerFactory
) -> None:
    worker = start_worker("-P", "solo", "-l", "info")
    bad_id = str(uuid.uuid4())
    good = _add_message(bad_id)
    pickled = Message(
        pickle.dumps(((1, 2), {}, {})),
        "application/x-python-serialize",
        "binary",
        good.headers,
        good.properties,
    )
    _publish(client, pickled)
    assert client.send_task("tasks.add", (3, 3)).get(timeout=30) == 6
    assert queue_size(client) == 0
    worker.stop()
    out = worker.output()
    assert "'application/x-python-serialize' is not accepted" in out
    assert "accept_content" in out and bad_id in out


def test_malformed_json_is_rejected_and_worker_goes_on(
    client: Celery, start_worker: WorkerFactory
) -> None:
    worker = start_worker("-P", "solo", "-l", "info")
    bad_id = str(uuid.uuid4())
    good = _add_message(bad_id)
    broken = Message(b'[[1, 2], {"oops', "application/json", "utf-8", good.headers, good.properties)
    _publish(client, broken)
    assert client.send_task("tasks.add", (4, 4)).get(timeout=30) == 8
    assert queue_size(client) == 0
    worker.stop()
    out = worker.output()
    assert "Rejected malformed message" in out and bad_id in out


@pytest.mark.parametrize("broker", PROCESS, indirect=True)
def test_two_queues_with_q(client: Celery, start_worker: WorkerFactory) -> None:
    start_worker("-P", "threads", "-c", "2", "-Q", "q1,q2")
    one = client.send_task("tasks.add", (1, 1), queue="q1")
    two = client.send_task("tasks.add", (2, 2), queue="q2")
    other = client.send_task("tasks.add", (3, 3), queue="q3")
    assert (one.get(timeout=30), two.get(timeout=30)) == (2, 4)
    assert queue_size(client, "q3") == 1
    assert state_of(client, other.id) == states.PENDING


@pytest.mark.parametrize("broker", PROCESS, indirect=True)
def test_expired_task_is_revoked(client: Celery, start_worker: WorkerFactory) -> None:
    start_worker("-P", "solo")
    late = client.send_task("tasks.add", (1, 1), expires=-1)
    assert client.send_task("tasks.add", (5, 5)).get(timeout=30) == 10
    wait_state(client, late.id, states.REVOKED)


@pytest.mark.parametrize("broker", PROCESS, indirect=True)
def test_eta_task_is_held_until_due(client: Celery, start_worker: WorkerFactory) -> None:
    start_worker("-P", "threads", "-c", "1", "--prefetch-multiplier", "1")
    later = client.send_task("tasks.add", (1, 1), countdown=3.0)
    now = client.send_task("tasks.add", (2, 2))
    # The held ETA message does not use up the prefetch window of one.
    assert now.get(timeout=30) == 4
    assert state_of(client, later.id) == states.PENDING
    assert later.get(timeout=30) == 2
