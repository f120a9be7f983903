"""The pools on their own: submit jobs, collect JobResults, lose a child."""

from __future__ import annotations

import itertools
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import states
from celeriac.app.base import Celery
from celeriac.protocol import task_v2
from celeriac.protocol.message import TaskCall
from celeriac.worker.pools import POOLS, pool_class
from celeriac.worker.pools.base import (
    CountsStarts,
    Job,
    JobResult,
    JobStarted,
    Pool,
    PoolReport,
)
from celeriac.worker.pools.prefork.pool import (
    BATCH,
    DEPTH,
    FAST_BATCH,
    QUICK_TASK,
    PreforkPool,
)

_names = itertools.count()


def make_app(backend: str | None = None) -> Celery:
    name = f"pools{next(_names)}"
    app = Celery("t", broker=f"memory://{name}", backend=backend or f"cache+memory://{name}")

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.sleep", track_started=True)
    def sleep(seconds: float) -> str:
        time.sleep(seconds)
        return "slept"

    @app.task(name="t.pid")
    def pid() -> int:
        return os.getpid()

    return app


def job(name: str, task_id: str, *args: Any) -> Job:
    call = TaskCall(name=name, id=task_id, args=args)
    message = task_v2.encode(call)
    return Job(task_id, task_id, name, message, {"routing_key": "celery"})


def collect(
    results: queue.SimpleQueue[JobResult], n: int, timeout: float = 20.0
) -> list[JobResult]:
    deadline = time.monotonic() + timeout
    out: list[JobResult] = []
    while len(out) < n:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(out)} of {n} results: {out}"
        try:
            out.append(results.get(timeout=remaining))
        except queue.Empty:
            continue
    return out


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


class Reports(queue.SimpleQueue[JobResult]):
    """The pool's reports: results queued, starts kept in order (``events``: both)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, str]] = []  # ("start", key) or ("end", key)
        self.lock = threading.Lock()

    def report(self, report: PoolReport) -> None:
        with self.lock:
            if isinstance(report, JobStarted):
                self.events.append(("start", report.key))
                return
            self.events.append(("end" if report.started else "unstarted", report.key))
        self.put(report)


def start(cls: type[Pool], app: Celery, concurrency: int = 2) -> tuple[Pool, Any]:
    results = Reports()
    pool = cls(app, concurrency, on_result=results.report, hostname="celery@test")
    pool.start()
    return pool, results


def test_pool_table() -> None:
    assert set(POOLS) >= {"prefork", "threads", "solo"}
    with pytest.raises(ValueError, match="unknown pool 'gevent'"):
        pool_class("gevent")


@pytest.mark.parametrize("name", ["solo", "threads"])
def test_in_process_pools_run_and_store(name: str) -> None:
    app = make_app()
    pool, results = start(pool_class(name), app)
    try:
        assert pool.free_slots() >= 1
        pool.submit(job("t.add", "a", 1, 2))
        (result,) = collect(results, 1)
        assert (result.task_id, result.state, result.summary) == ("a", states.SUCCESS, "")
        assert app.backend.get_result("a") == 3
        pool.submit(job("t.add", "b", 1, "x"))  # the report names what went wrong
        (failed,) = collect(results, 1)
        assert failed.state == states.FAILURE and failed.summary.startswith("TypeError(")
    finally:
        pool.shutdown(grace=5)


def test_threads_pool_slots_follow_running_jobs() -> None:
    app = make_app()
    pool, results = start(pool_class("threads"), app, concurrency=3)
    try:
        assert pool.free_slots() == 3
        pool.submit_many([job("t.sleep", "s1", 0.3), job("t.sleep", "s2", 0.3)])
        assert pool.free_slots() == 1
        collect(results, 2)
        wait_for(lambda: pool.free_slots() == 3)
    finally:
        pool.shutdown(grace=5)


@pytest.fixture
def prefork_app(tmp_path: Path) -> Celery:
    app = make_app(backend=f"db+sqlite:///{tmp_path}/results.db")
    # Create the file before two children race to switch a new file to WAL mode.
    app.backend.get_state("warm-up")
    return app


def test_prefork_runs_jobs_in_children(prefork_app: Celery) -> None:
    pool, results = start(PreforkPool, prefork_app)
    try:
        assert len(pool.pids()) == 2
        slots = pool.free_slots()
        jobs = [job("t.pid", f"p{i}") for i in range(slots)]
        pool.submit_many(jobs)
        got = collect(results, len(jobs))
        assert {r.state for r in got} == {states.SUCCESS}
        pids = {prefork_app.backend.get_result(j.task_id) for j in jobs}
        assert pids <= set(pool.pids()) and os.getpid() not in pids
    finally:
        pool.shutdown(grace=10)


def test_prefork_sends_larger_batches_while_the_work_is_quick(prefork_app: Celery) -> None:
    """A child takes BATCH jobs at a time (DEPTH batches); after FAST_STREAK results in a
    row under QUICK_TASK it takes FAST_BATCH, until a slower result."""
    pool, results = start(PreforkPool, prefork_app, concurrency=1)
    try:
        assert pool.free_slots() == BATCH * DEPTH
        quick = [job("t.add", f"q{i}", i, 1) for i in range(BATCH * DEPTH)]
        pool.submit_many(quick)
        collect(results, len(quick))
        wait_for(lambda: pool.free_slots() == FAST_BATCH * DEPTH)
        pool.submit_many([job("t.sleep", "slow", QUICK_TASK * 3)])
        (slow,) = collect(results, 1)
        assert slow.state == states.SUCCESS
        wait_for(lambda: pool.free_slots() == BATCH * DEPTH)
    finally:
        pool.shutdown(grace=10)


def test_prefork_children_run_the_call_the_consumer_decoded(
    prefork_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decode once: the consumer decoded the message; the child runs that call as it is."""
    call = TaskCall(name="t.add", id="d1", args=(2, 3))
    message = task_v2.encode(call)

    def decode_again(*args: Any, **kwargs: Any) -> TaskCall:
        raise AssertionError("the message was decoded again")

    monkeypatch.setattr(task_v2, "decode", decode_again)  # in the children too: they fork later
    pool, results = start(PreforkPool, prefork_app, concurrency=1)
    try:
        pool.submit(Job("d1", "d1", "t.add", message, {"routing_key": "celery"}, call))
        (result,) = collect(results, 1)
        assert (result.state, result.summary) == (states.SUCCESS, "")
        assert prefork_app.backend.get_result("d1") == 5
    finally:
        pool.shutdown(grace=10)


def test_prefork_sends_the_message_when_the_decoded_call_does_not_pickle(
    prefork_app: Celery,
) -> None:
    message = task_v2.encode(TaskCall(name="t.add", id="u1", args=(2, 3)))
    unpicklable = TaskCall(name="t.add", id="u1", args=(threading.Lock(), 3))
    pool, results = start(PreforkPool, prefork_app, concurrency=1)
    try:
        pool.submit(Job("u1", "u1", "t.add", message, {"routing_key": "celery"}, unpicklable))
        (result,) = collect(results, 1)
        assert result.state == states.SUCCESS  # the child decoded the message: add(2, 3)
        assert prefork_app.backend.get_result("u1") == 5
    finally:
        pool.shutdown(grace=10)


def test_prefork_replaces_a_killed_child(prefork_app: Celery) -> None:
    pool, results = start(PreforkPool, prefork_app, concurrency=1)
    try:
        (old_pid,) = pool.pids()
        # One long job and two queued behind it in the same child.
        pool.submit_many(
            [job("t.sleep", "long", 30), job("t.add", "q1", 1, 1), job("t.add", "q2", 2, 2)]
        )
        wait_for(lambda: prefork_app.backend.get_state("long") == states.STARTED)
        os.kill(old_pid, signal.SIGKILL)
        got = {r.task_id: r for r in collect(results, 3)}
        assert got["long"].lost and got["long"].exitcode == -signal.SIGKILL
        assert "signal 9 (SIGKILL)" in got["long"].summary
        assert not got["q1"].started and not got["q2"].started
        wait_for(lambda: len(pool.pids()) == 1 and pool.pids()[0] != old_pid)
        wait_for(lambda: pool.free_slots() > 0)
        pool.submit(job("t.add", "after", 5, 5))
        (after,) = collect(results, 1)
        assert after.state == states.SUCCESS
    finally:
        pool.shutdown(grace=10)


def test_prefork_terminate_job_and_cold_shutdown(prefork_app: Celery) -> None:
    pool, results = start(PreforkPool, prefork_app, concurrency=1)
    pool.submit(job("t.sleep", "t1", 30))
    wait_for(lambda: pool.terminate_job("t1"))
    (lost,) = collect(results, 1)
    assert lost.lost and lost.task_id == "t1"
    wait_for(lambda: pool.free_slots() > 0)
    pool.submit(job("t.sleep", "t2", 30))
    wait_for(lambda: prefork_app.backend.get_state("t2") == states.STARTED)
    (pid,) = pool.pids()
    started = time.monotonic()
    pool.shutdown(grace=0.2)  # the job cannot finish: its child is terminated
    assert time.monotonic() - started < 10
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize("name", ["solo", "threads", "prefork"])
def test_a_job_is_reported_started_as_it_starts_and_held_back_jobs_never_start(
    name: str, prefork_app: Celery
) -> None:
    """Early acks follow JobStarted: every job's start is reported, in order, each before its
    result; after hold_back() the jobs not started come back unstarted."""
    pool, results = start(pool_class(name), prefork_app, concurrency=1)
    try:
        # Not fast (over FAST_TASK): a pool reports no start for a job that runs in
        # microseconds (its ack follows its result).
        jobs = [job("t.sleep", f"a{n}", 0.01) for n in range(3)][: pool.accepts()]
        pool.submit_many(jobs)
        collect(results, len(jobs))
        starts = [key for event, key in results.events if event == "start"]
        assert starts == [j.key for j in jobs]
        for j in jobs:
            assert results.events.index(("start", j.key)) < results.events.index(("end", j.key))
        results.events.clear()
        if name == "solo":  # it runs in this thread: hold back from the first job's start
            pool.on_job_start = lambda _job: pool.hold_back()
        blocker = [job("t.sleep", "slow", 0.5)] if name != "solo" else []
        held = [job("t.sleep", f"b{n}", 0.01) for n in range(2)]
        pool.submit_many([*blocker, *held])
        if blocker:
            wait_for(lambda: ("start", "slow") in results.events)
            pool.hold_back()
        collect(results, len(blocker) + len(held))
        if name == "solo":
            assert results.events == [("start", "b0"), ("end", "b0"), ("unstarted", "b1")]
        else:
            assert results.events == [
                ("start", "slow"),
                ("end", "slow"),
                ("unstarted", "b0"),
                ("unstarted", "b1"),
            ]
    finally:
        pool.shutdown(grace=5)


@pytest.fixture
def gated_child(prefork_app: Celery, tmp_path: Path) -> Iterator[tuple[Pool, Any, Path]]:
    """A prefork pool of one child and a task ``t.gate(path, entered)`` that touches
    ``entered``, then waits while ``path`` exists: the task has run once (it is fast now),
    the report log is empty, and the gate (the path yielded) is closed."""
    gate = tmp_path / "gate"

    @prefork_app.task(name="t.gate")
    def gated(path: str, entered: str) -> str:
        Path(entered).touch()
        while os.path.exists(path):
            time.sleep(0.005)
        return "through"

    pool, results = start(PreforkPool, prefork_app, concurrency=1)
    try:
        pool.submit_many([job("t.gate", "warm", str(gate), str(tmp_path / "warm"))])
        collect(results, 1)  # the task is fast now
        results.events.clear()
        gate.write_text("closed")
        yield pool, results, gate
    finally:
        gate.unlink(missing_ok=True)
        pool.shutdown(grace=5)


def test_a_killed_prefork_child_has_its_quiet_starts_reported(
    gated_child: tuple[Pool, Any, Path], tmp_path: Path
) -> None:
    """A job of a task known to be fast sends no start message (its ack follows its result),
    but the child counts it started where the parent reads it: killed after running one such
    job (its result still held) and while running the next, both are reported started
    before the dead child's jobs are settled, so their early acks go and neither is given
    back to run again."""
    pool, results, gate = gated_child
    first, second = tmp_path / "first", tmp_path / "second"
    pool.submit_many(
        [
            job("t.gate", "first", str(tmp_path / "no-gate"), str(first)),
            job("t.gate", "second", str(gate), str(second)),
        ]
    )
    wait_for(second.exists)
    (pid,) = pool.pids()
    os.kill(pid, signal.SIGKILL)
    collect(results, 2)
    events = list(results.events)
    for key in ("first", "second"):
        ended = [n for n, (kind, k) in enumerate(events) if k == key and kind != "start"]
        assert ("start", key) in events and events.index(("start", key)) < ended[0], events


def test_a_prefork_pool_counts_the_jobs_not_started(
    gated_child: tuple[Pool, Any, Path], tmp_path: Path
) -> None:
    """``unstarted()`` (CountsStarts, what the consumer's prefetch window counts): a child's
    jobs less those it has started, read from its shared counter, though a fast task's start
    and result are not reported yet. Here one fast job has run (its result held for the
    batch), the next runs (held at a gate) and one waits behind it: one not started, not
    the two a count of jobs less one per process would give."""
    pool, results, gate = gated_child
    assert isinstance(pool, CountsStarts)
    assert pool.unstarted() == 0
    second = tmp_path / "second"
    pool.submit_many(
        [
            job("t.gate", "first", str(tmp_path / "no-gate"), str(tmp_path / "first")),
            job("t.gate", "second", str(gate), str(second)),
            job("t.gate", "third", str(tmp_path / "no-gate"), str(tmp_path / "third")),
        ]
    )
    wait_for(second.exists)
    assert pool.unstarted() == 1
    assert not any(kind == "end" for kind, _ in results.events)  # no result reported yet
    gate.unlink()
    collect(results, 3)
    assert pool.unstarted() == 0
