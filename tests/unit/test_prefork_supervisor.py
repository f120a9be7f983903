"""The prefork supervisor's decisions, with a fake strategy and fake processes (no fork)."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import ForkContext
from multiprocessing.process import BaseProcess
from typing import cast

import pytest

from celeriac.worker.pools.prefork.messages import Running
from celeriac.worker.pools.prefork.supervisor import POLL, Child, ChildStrategy, Supervisor


class FakeProcess:
    """What the supervisor asks of a process; ``exit`` ends it."""

    _pids = iter(range(100_000, 200_000))

    def __init__(self) -> None:
        self.pid: int | None = next(self._pids)
        self.name = f"fake-{self.pid}"
        self.exitcode: int | None = None
        self.terminated = False
        self.killed = False

    def is_alive(self) -> bool:
        return self.exitcode is None

    def terminate(self) -> None:
        self.terminated = True
        self.exitcode = -signal.SIGTERM

    def kill(self) -> None:
        self.killed = True
        self.exitcode = -signal.SIGKILL

    def join(self, timeout: float | None = None) -> None:
        """A fake process has always ended by the time it is joined."""


@dataclass(eq=False)
class FakeChild(Child):
    busy: bool = False
    running: Running | None = None
    orders: list[bool] = field(default_factory=list)  # stop orders: warm?

    @property
    def fake(self) -> FakeProcess:
        assert isinstance(self.process, FakeProcess)
        return self.process


class FakeStrategy(ChildStrategy[FakeChild]):
    def __init__(self, replaces: bool = True) -> None:
        self.spawned: list[tuple[str, int]] = []  # name, inherited pipe ends
        self.settled: list[tuple[FakeChild, int | None]] = []
        self.read: list[FakeChild] = []
        self._replaces = replaces

    def spawn_child(self, ctx: ForkContext, name: str, inherited: list[Connection]) -> FakeChild:
        self.spawned.append((name, len(inherited)))
        return FakeChild(cast(BaseProcess, FakeProcess()))

    def parent_ends(self, child: FakeChild) -> list[Connection]:
        return []

    def listen(self, child: FakeChild) -> Connection:
        raise AssertionError("the loop is not run here")

    def read_child(self, child: FakeChild) -> None:
        self.read.append(child)

    def stop_child(self, child: FakeChild, warm: bool) -> None:
        child.orders.append(warm)

    def running_job(self, child: FakeChild) -> Running | None:
        return child.running

    def settle(self, child: FakeChild, exitcode: int | None) -> None:
        self.settled.append((child, exitcode))

    def may_retire(self, child: FakeChild) -> bool:
        return not child.busy

    def replaces(self, exitcode: int | None) -> bool:
        return self._replaces


def started(count: int, strategy: FakeStrategy | None = None) -> Supervisor[FakeChild]:
    supervisor = Supervisor(strategy or FakeStrategy())
    supervisor.start(count)
    return supervisor


def test_start_forks_the_children_each_closing_the_parents_pipe_ends() -> None:
    strategy = FakeStrategy()
    supervisor = started(3, strategy)
    assert supervisor.size == 3 and len(supervisor.pids()) == 3
    # Each closes the wake-up pipe's two ends (the fake children hold no pipes).
    assert strategy.spawned == [(f"ForkPoolWorker-{i}", 2) for i in (1, 2, 3)]


def test_stopped_before_start_forks_nothing() -> None:
    supervisor = Supervisor(FakeStrategy())
    supervisor.stop()
    supervisor.start(2)
    assert supervisor.children == []


def test_a_child_that_exits_is_replaced_and_its_work_settled() -> None:
    strategy = FakeStrategy()
    supervisor = started(2, strategy)
    dead = supervisor.children[0]
    dead.fake.exitcode = 1
    supervisor.reap(dead)
    assert dead not in supervisor.children and supervisor.size == 2
    assert strategy.read == [dead]  # what it said last is read before it is settled
    assert strategy.settled == [(dead, 1)]


def test_process_indexes_run_from_one_and_a_replacement_takes_the_free_one() -> None:
    """Celery's ``%i``: each child has the lowest index no living child has (billiard reuses
    a dead child's), so ``--logfile=%n%I.log`` keeps ``concurrency`` files."""
    supervisor = started(3)
    assert [c.index for c in supervisor.children] == [1, 2, 3]
    second = supervisor.children[1]
    second.fake.exitcode = 1
    supervisor.reap(second)
    assert sorted(c.index for c in supervisor.children) == [1, 2, 3]
    supervisor.grow(1)
    assert sorted(c.index for c in supervisor.children) == [1, 2, 3, 4]


def test_no_replacement_when_stopping_retiring_or_refused() -> None:
    stopping = started(2)
    stopping.stop()
    stopping.reap(stopping.children[0])
    assert stopping.size == 1

    retiring = started(2)
    retiring.shrink(1)
    (gone,) = [c for c in retiring.children if c.retiring]
    retiring.reap(gone)
    assert retiring.size == 1 and len(retiring.children) == 1

    refused = started(2, FakeStrategy(replaces=False))
    refused.reap(refused.children[0])
    assert refused.size == 1


def test_shrink_retires_idle_children_first_and_never_the_last() -> None:
    supervisor = started(3)
    busy, idle1, idle2 = supervisor.children
    busy.busy = True
    assert supervisor.shrink(5) == 2
    assert (busy.retiring, idle1.retiring, idle2.retiring) == (False, True, True)
    assert idle1.orders == [True] and idle2.orders == [True]  # a warm stop each
    assert supervisor.size == 1
    assert supervisor.shrink(1) == 0  # the last one stays


def test_grow_adds_children() -> None:
    supervisor = started(1)
    supervisor.grow(2)
    assert supervisor.size == 3


def test_stop_warm_then_cold() -> None:
    supervisor = started(2)
    supervisor.stop(warm=True)
    assert supervisor.closing and not supervisor.cold
    supervisor.stop(warm=False)
    assert supervisor.cold
    assert [c.orders for c in supervisor.children] == [[True, False], [True, False]]


def test_terminate_all_ends_every_child() -> None:
    supervisor = started(2)
    supervisor.terminate_all()
    assert supervisor.terminated
    assert all(c.fake.terminated and not c.fake.is_alive() for c in supervisor.children)


def test_the_loop_wakes_for_the_first_hard_limit() -> None:
    supervisor = started(2)
    assert supervisor.next_wakeup(supervisor.children) == POLL  # nothing is limited
    now = time.monotonic()
    supervisor.children[0].running = Running("a", now, 0.2)
    supervisor.children[1].running = Running("b", now, None)
    assert 0.0 < supervisor.next_wakeup(supervisor.children) <= 0.2
    supervisor.children[0].running = Running("a", now - 10, 0.2)  # overdue: at once
    assert supervisor.next_wakeup(supervisor.children) == 0.0
    supervisor.children[0].killed_for = 0.2  # killed already: no reason to spin
    assert supervisor.next_wakeup(supervisor.children) == POLL


def test_a_child_past_its_hard_limit_is_killed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    kills: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, signum: kills.append((pid, signum)))
    supervisor = started(2)
    late, young = supervisor.children
    now = time.monotonic()
    late.running = Running("late", now - 5, 2.0)
    young.running = Running("young", now, 60.0)
    supervisor.enforce_hard_limits()
    supervisor.enforce_hard_limits()
    assert kills == [(late.pid, signal.SIGKILL)]
    assert late.killed_for == 2.0 and young.killed_for is None


def test_terminate_job_signals_the_child_running_it(monkeypatch: pytest.MonkeyPatch) -> None:
    kills: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, signum: kills.append((pid, signum)))
    supervisor = started(2)
    idle, running = supervisor.children
    running.running = Running("t1", time.monotonic(), None)
    assert supervisor.terminate_job("t1", signal.SIGUSR1)
    assert kills == [(running.pid, signal.SIGUSR1)]
    assert not supervisor.terminate_job("unknown")
    assert [r.task_id for r in supervisor.running()] == ["t1"]
    assert idle.running is None
