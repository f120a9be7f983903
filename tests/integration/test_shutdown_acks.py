"""What a worker's stop costs, on every broker and prefork topology (issue 18).

One worker (two slots) gets a few tasks that finish at once, then more that block until
the test lets them go, so that when the worker stops two of them run and the
rest wait, received but not started (in the consumer, a child's pipe, or a consuming
child's batch). The worker is then stopped warm (one SIGTERM), cold (SIGINT twice, as a
user's two Ctrl-C) or killed outright (SIGKILL of every one of its processes), and a
second worker runs what the broker gives back. From the tasks' own log (``start``/``end``
lines) the test counts:

* lost: tasks that never finished, beyond those running when the worker stopped (an early
  ack covers only a task that has started, so at most the running ones may be lost; with
  ``acks_late`` none may be);
* run again: tasks that had finished and started a second time (after a warm or cold stop;
  a kill may come between a task's end and its ack);
* and for a warm stop, tasks the stopping worker started that had not started before it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from tests.integration.broker_envs import BrokerEnv
from tests.integration.conftest import WorkerFactory, WorkerProcess, queue_size, wait_until

QUICK = 2  # finish at once (they must never run again)
BLOCKED = 6  # two run when the worker stops; the rest wait
SLOTS = 2
#: Leases (SQLite, PostgreSQL, Redis) come back this soon after a killed worker (seconds).
VISIBILITY = 3.0

#: (broker, topology): pipe-fed prefork everywhere, children that consume where the broker
#: supports it, and the threads pool on the default broker.
CASES = [
    ("sqlite", "prefork"),
    ("sqlite", "threads"),
    ("redis", "prefork"),
    ("redis", "direct"),
    ("amqp", "prefork"),
    ("amqp", "direct"),
    ("postgres", "prefork"),
]
#: "kill-late": the same kill with ``task_acks_late`` (then even the running tasks come back).
STOPS = ["warm", "cold", "kill", "kill-late"]
#: The default run's short form: every broker, topology and kind of stop at least once.
#: ``CELERIAC_SHUTDOWN_MATRIX=1`` runs every combination (28, about four minutes).
SHORT = {
    ("sqlite", "prefork", "warm"),
    ("sqlite", "prefork", "cold"),
    ("sqlite", "threads", "kill"),
    ("redis", "direct", "cold"),
    ("redis", "direct", "kill-late"),
    ("amqp", "direct", "kill"),
    ("amqp", "prefork", "warm"),
    ("postgres", "prefork", "cold"),
}
FULL = os.environ.get("CELERIAC_SHUTDOWN_MATRIX") == "1"
MATRIX = [
    pytest.param(broker, topology, how, id=f"{broker}-{topology}-{how}")
    for broker, topology in CASES
    for how in STOPS
    if FULL or (broker, topology, how) in SHORT
]


@dataclass
class Run:
    """What the task log says after both workers."""

    first: list[tuple[str, str]]  # (event, task id) while the first worker ran
    second: list[tuple[str, str]]

    def ids(self, event: str, part: list[tuple[str, str]]) -> set[str]:
        return {task_id for e, task_id in part if e == event}


def _events(log: Path) -> list[tuple[str, str]]:
    if not log.exists():
        return []
    return [(line.split()[0], line.split()[1]) for line in log.read_text().splitlines()]


def _ended(log: Path) -> set[str]:
    return {task_id for event, task_id in _events(log) if event == "end"}


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process under it (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _conf(broker: BrokerEnv, topology: str) -> tuple[list[str], dict[str, Any]]:
    options = dict(broker.settings.get("broker_transport_options") or {})
    options["visibility_timeout"] = VISIBILITY
    conf: dict[str, Any] = {"broker_transport_options": options}
    if topology == "prefork":
        conf["worker_direct_consume"] = False
    pool = "threads" if topology == "threads" else "prefork"
    return ["-P", pool, "-c", str(SLOTS)], conf


@pytest.fixture
def scenario(
    start_worker: WorkerFactory, client: Celery, broker: BrokerEnv, tmp_path: Path
) -> Iterator[Any]:
    def run(topology: str, how: str) -> tuple[Run, set[str], set[str]]:
        log, hold = tmp_path / "tasks.log", tmp_path / "hold"
        args, conf = _conf(broker, topology)
        if how == "kill-late":
            conf["task_acks_late"] = True
        client.conf.broker_transport_options = conf["broker_transport_options"]
        first = start_worker(*args, conf=conf)
        quick = [client.send_task("tasks.logged", (str(log),)).id for _ in range(QUICK)]
        wait_until(lambda: set(quick) <= _ended(log), "the quick tasks to end")
        blocked = [
            client.send_task("tasks.logged", (str(log), str(hold))).id for _ in range(BLOCKED)
        ]
        # Children that consume may hold nothing but the task they run (an idle child takes
        # one message; what the broker pushed it goes back while a task runs long).
        holding = 0 if topology == "direct" else 1

        def settled() -> bool:
            started = {t for e, t in _events(log) if e == "start"} & set(blocked)
            received = sum(f"[{t}] received" in first.output() for t in blocked)
            return len(started) == SLOTS and received >= SLOTS + holding

        wait_until(settled, "two slow tasks to run and more to wait")
        running = {t for e, t in _events(log) if e == "start"} & set(blocked)
        _stop(first, how, hold)
        first_part = _events(log)
        hold.write_text("go")  # (after a kill)
        second = start_worker("-P", "threads", "-c", "4", conf=conf)
        expected = set(blocked) - (running if how in ("cold", "kill") else set())

        def finished() -> bool:
            ended = {t for e, t in _events(log) if e == "end"}
            return expected <= ended and queue_size(client) == 0

        with contextlib.suppress(AssertionError):  # what never comes is counted as lost
            wait_until(finished, "the second worker to run what was given back", 20.0)
        second.stop()
        events = _events(log)
        return Run(first_part, events[len(first_part) :]), {*quick, *blocked}, running

    yield run


def _stop(worker: WorkerProcess, how: str, hold: Path) -> None:
    if how.startswith("kill"):
        for pid in _descendants(worker.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        worker.process.wait()
        return
    first = signal.SIGTERM if how == "warm" else signal.SIGINT
    worker.signal(first)
    wait_until(lambda: "Warm shutdown" in worker.output(), "the warm shutdown to begin")
    # The running tasks may finish now; a cold stop comes at once (a user's second Ctrl-C
    # while the warm shutdown lets them end).
    hold.write_text("go")
    if how == "cold":
        worker.signal(signal.SIGINT)
    worker.wait_exit()


def _counts(run: Run, sent: set[str], running: set[str], how: str) -> dict[str, int]:
    ended_first = run.ids("end", run.first)
    ended = ended_first | run.ids("end", run.second)
    may_lose = running if how in ("cold", "kill") else set()  # early acks: as in Celery
    return {
        "lost": len(sent - ended - may_lose),
        "run again": len(ended_first & run.ids("start", run.second)),
        # a warm stop lets the running tasks end and starts nothing else
        "started while stopping": len(run.ids("start", run.first) - running) - QUICK
        if how == "warm"
        else 0,
    }


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize(("broker", "topology", "how"), MATRIX, indirect=["broker"])
def test_a_stopped_worker_loses_only_running_tasks_and_reruns_none(
    scenario: Any, broker: BrokerEnv, topology: str, how: str
) -> None:
    run, sent, running = scenario(topology, how)
    counts = _counts(run, sent, running, how)
    if how.startswith(
        "kill"
    ):  # a kill may come before a finished task's ack is sent: only loss counts
        counts["run again"] = 0
    assert counts == {"lost": 0, "run again": 0, "started while stopping": 0}, (
        f"{broker.kind}/{topology}/{how}: {counts}"
    )


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("broker", ["sqlite"], indirect=True)
def test_a_fast_tasks_message_is_acknowledged_when_it_starts(
    start_worker: WorkerFactory, client: Celery, broker: BrokerEnv, tmp_path: Path
) -> None:
    """A pipe-fed prefork child reports every start, a task's that ran fast before too: its
    message is acknowledged while it runs, so a cold stop (which kills the child at any
    point) cannot give back the message of a task that has finished. Before, a fast task's
    ack followed its result: a cold stop after its end and before its report ran it again."""
    log, hold = tmp_path / "tasks.log", tmp_path / "hold"
    start_worker("-P", "prefork", "-c", "1")
    quick = client.send_task("tasks.logged", (str(log),)).id
    wait_until(lambda: quick in _ended(log), "the quick run (the task is fast now)")
    slow = client.send_task("tasks.logged", (str(log), str(hold))).id
    wait_until(lambda: ("start", slow) in _events(log), "the slow run to start")
    wait_until(lambda: _rows(client) == 0, "its message to be acknowledged while it runs")
    assert slow not in _ended(log)
    hold.write_text("go")
    wait_until(lambda: slow in _ended(log), "the slow run to end")


def _rows(app: Celery) -> int:
    """Messages in the SQLite broker file, held or not."""
    import sqlite3

    path = str(app.conf.broker_url).removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])
