"""Real `python -m celeriac` processes: a worker, `call` and `result` on one SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "cli_apps"
DEADLINE = 30.0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(APPS), env.get("PYTHONPATH", "")])
    env.pop("CELERIAC_APP", None)
    env.pop("CELERY_BROKER_URL", None)
    env.pop("CELERY_RESULT_BACKEND", None)
    return env


def celeriac(cwd: Path, *args: str, timeout: float = DEADLINE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celeriac", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class WorkerProcess:
    """A worker subprocess whose stdout and stderr go to one log file (no pipe to fill up)."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.log = cwd / "worker.log"
        self._handle = self.log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celeriac", *args],
            cwd=cwd,
            env=_env(),
            stdout=self._handle,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(DEADLINE)
        self._handle.close()
        return code


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(
        tmp_path,
        "-A",
        "roundtrip_app",
        "worker",
        "-l",
        "info",
        "-P",
        "solo",
        "--pidfile",
        str(tmp_path / "worker.pid"),
    )
    yield process
    process.stop()


@pytest.mark.slow
def test_call_and_result_round_trip(tmp_path: Path, worker: WorkerProcess) -> None:
    wait_for(lambda: "ready" in worker.output() or worker.process.poll() is not None, "ready")
    assert worker.process.poll() is None, worker.output()
    pid = (tmp_path / "worker.pid").read_text().strip()
    assert pid == str(worker.process.pid)

    sent = celeriac(tmp_path, "-A", "roundtrip_app", "call", "roundtrip_app.add", "--args=[2, 3]")
    assert sent.returncode == 0, sent.stderr
    task_id = sent.stdout.strip()
    got = celeriac(tmp_path, "-A", "roundtrip_app", "result", task_id)
    assert (got.returncode, got.stdout, got.stderr) == (0, "5\n", "")

    wait_for(lambda: "succeeded in" in worker.output(), "the succeeded line")
    output = worker.output()
    assert "[queues]" in output  # the banner
    assert f"roundtrip_app.add[{task_id}] received" in output
    assert f"roundtrip_app.add[{task_id}] succeeded in" in output

    assert worker.stop() == 0
    assert not (tmp_path / "worker.pid").exists()


@pytest.mark.slow
def test_result_of_a_failed_task(tmp_path: Path, worker: WorkerProcess) -> None:
    sent = celeriac(tmp_path, "-A", "roundtrip_app", "call", "roundtrip_app.fail")
    assert sent.returncode == 0, sent.stderr
    task_id = sent.stdout.strip()
    got = celeriac(tmp_path, "-A", "roundtrip_app", "result", task_id)
    assert got.returncode == 1
    assert got.stderr == (
        f"Error: Task {task_id} raised ValueError('expected failure') "
        "(use --traceback to see its traceback)\n"
    )
    shown = celeriac(tmp_path, "-A", "roundtrip_app", "result", task_id, "--traceback")
    assert shown.returncode == 0
    assert "ValueError: expected failure" in shown.stdout


@pytest.mark.slow
def test_missing_app_module_exits_2_with_one_line(tmp_path: Path) -> None:
    done = celeriac(tmp_path, "-A", "no_such_module_here", "worker", "-l", "info", "-P", "solo")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(
        "Error: Unable to load celery application. The module no_such_module_here was not found."
    )
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_version_and_help(tmp_path: Path) -> None:
    version = celeriac(tmp_path, "--version")
    assert version.returncode == 0
    assert version.stdout.startswith("celeriac ")
    helped = celeriac(tmp_path, "help", "worker")
    assert helped.returncode == 0
    assert "Usage: celeriac worker" in helped.stdout
