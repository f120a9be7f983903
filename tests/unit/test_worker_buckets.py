"""The worker's token buckets: capacity 1, shared with forked children, robust to a holder's
death, one rate per task for every process."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from celeriac.worker.buckets import WorkerBuckets


@pytest.fixture
def buckets() -> Iterator[WorkerBuckets]:
    made = WorkerBuckets()
    yield made
    made.close()


def _exit_status(pid: int) -> int:
    """Wait for the forked child ``pid``; its exit code (-N: killed by signal N)."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_one_token_at_most(buckets: WorkerBuckets) -> None:
    assert buckets.take("t.a", 10.0) == 0.0  # the first task runs at once
    assert 0 < buckets.take("t.a", 10.0) <= 0.1  # the next one 1/rate later: no burst
    assert buckets.take("t.b", 10.0) == 0.0  # one bucket per task name


def test_a_forked_child_takes_from_the_same_bucket(buckets: WorkerBuckets) -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0 if buckets.take("t.a", 1.0) == 0.0 else 1)
    assert _exit_status(pid) == 0
    assert buckets.take("t.a", 1.0) > 0.5  # the child had the token


def test_a_process_killed_holding_the_lock_blocks_no_one(buckets: WorkerBuckets) -> None:
    pid = os.fork()
    if pid == 0:
        with buckets._locked():
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(1)
    assert _exit_status(pid) == -signal.SIGKILL
    assert buckets.take("t.a", 1.0) == 0.0  # would hang if the lock had died with it


def test_a_new_rate_starts_full_and_wins_over_the_callers(buckets: WorkerBuckets) -> None:
    assert buckets.take("t.a", 1 / 3600) == 0.0
    buckets.set_rate("t.a", 1 / 3600)  # the same rate: no new token
    assert buckets.take("t.a", 1 / 3600) > 3000
    buckets.set_rate("t.a", 100.0)  # another process's remote control change
    assert buckets.take("t.a", 1 / 3600) == 0.0
    assert buckets.take("t.a", 1 / 3600) <= 0.01  # its old idea of the rate does not count
    buckets.set_rate("t.a", 0.0)
    assert [buckets.take("t.a", 100.0) for _ in range(3)] == [0.0] * 3  # no limit now


def test_a_full_table_leaves_new_names_unlimited(caplog: pytest.LogCaptureFixture) -> None:
    small = WorkerBuckets(slots=2)
    try:
        assert small.take("t.a", 1.0) == small.take("t.b", 1.0) == 0.0
        assert small.take("t.c", 1.0) == small.take("t.c", 1.0) == 0.0
        assert small.take("t.a", 1.0) > 0  # the names it holds keep their limit
    finally:
        small.close()
    assert "not limited" in caplog.text
