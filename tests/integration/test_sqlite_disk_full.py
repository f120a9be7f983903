"""A worker on the embedded SQLite default when its disk is full (RLIMIT_FSIZE on the worker
process: every write that grows its broker or result file fails as on a full disk; Python
ignores SIGXFSZ, so the write fails with EFBIG instead of killing the process)."""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

import pytest

from benchmarks.faults.harness import stage, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def test_a_worker_waits_out_a_full_disk_and_acks_nothing_unstored(tmp_path: Path) -> None:
    tasks = 40
    with stage("sqlite", tmp_path) as scene:
        settings = {"broker_transport_options": {"polling_interval": 0.2}}
        scene.send(tasks, 0.02)
        scene.stored(["warm-up"])  # the result store's file exists and has its tables
        broker, results = (tmp_path / name for name in ("broker.sqlite", "results.sqlite"))

        def full_disk() -> None:
            limit = max(broker.stat().st_size, results.stat().st_size) + 4096
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

        refused = scene.worker(
            "-P", "solo", ready=False, preexec=full_disk, settings=settings, piped=True
        )
        assert refused.process.wait(60) != 0
        said = refused.output().strip().splitlines()[-1]
        # It names the file that could not grow and the problem.
        assert "disk is full" in said and "File too large" in said, said
        assert tempfile.gettempdir() in said or str(tmp_path) in said, said

        worker = scene.worker("-P", "solo", settings=settings, piped=True)
        wait_until(lambda: scene.ledger.poll() >= 5, "progress", 60)
        limit = max(broker.stat().st_size, results.stat().st_size) + 4096
        resource.prlimit(worker.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

        def complained() -> bool:
            return "disk is full" in worker.output()

        wait_until(complained, "the full disk to be logged", 60)
        # The worker waits, however long the disk stays full.
        stored_while_full = scene.stored(sorted(scene.sent))
        time.sleep(1.0)  # the outage lasts a while: the worker must not exit meanwhile
        assert worker.alive()
        unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        resource.prlimit(worker.pid, resource.RLIMIT_FSIZE, unlimited)
        wait_until(lambda: scene.stored(sorted(scene.sent)) == tasks, "every result", 60)
        assert worker.alive()
        assert stored_while_full < tasks
        output = worker.output()
        errors = [line for line in output.splitlines() if "ERROR" in line or "CRITICAL" in line]
        # One error per outage (per file), naming the file.
        assert 1 <= len(errors) <= 2, errors
        assert all("disk is full" in line and str(tmp_path) in line for line in errors), errors
        assert "written again" in output
        assert "Unrecoverable" not in output
