"""``celeriac multi`` and ``worker --detach`` with real detached workers (issue 17).

The lifecycle: start two nodes, a round trip, start again (already running), stopwait while
a task runs (it waits, the task finishes), on the embedded SQLite default, Redis and
RabbitMQ; kill (the pid file goes stale), start again (the stale pid file is said and
replaced), restart; a range of prefork nodes with per-node options and per-process log
files, then stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.utils.pidfile import alive, read_pid
from tests.integration.broker_envs import BrokerEnv
from tests.integration.conftest import FIXTURE_APPS, REPO, wait_state, wait_until

NODES = ("w1", "w2")
OPTIONS = ("-P", "threads", "-c", "2", "-l", "info")


class Multi:
    """Runs ``celeriac -A worker_app multi ...`` against the test's broker namespace."""

    def __init__(self, directory: Path, conf: dict[str, object]) -> None:
        self.directory = directory
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(FIXTURE_APPS)])
        self.env["WORKER_TEST_DIR"] = str(directory)
        self.env["WORKER_TEST_CONF"] = json.dumps(conf)
        self.paths = [f"--pidfile={directory}/run/%n.pid", f"--logfile={directory}/log/%n%I.log"]

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "celeriac", "-A", "worker_app", *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def pidfile(self, node: str) -> Path:
        return self.directory / "run" / f"{node}.pid"

    def log(self, node: str) -> str:
        path = self.directory / "log" / f"{node}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def pid(self, node: str) -> int | None:
        return read_pid(str(self.pidfile(node)))

    def wait_ready(self, node: str, times: int = 1) -> None:
        wait_until(lambda: self.log(node).count(" ready.") >= times, f"{node} to be ready")

    def kill_all(self) -> None:
        for node in NODES:
            pid = self.pid(node)
            if pid and alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def multi(tmp_path: Path, broker: BrokerEnv, client: Celery) -> Iterator[Multi]:
    tool = Multi(tmp_path, broker.settings)
    yield tool
    tool.kill_all()


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["sqlite", "redis", "amqp"], indirect=True)
def test_multi_lifecycle(multi: Multi, client: Celery, tmp_path: Path) -> None:
    start = ("multi", "start", *NODES, *OPTIONS, *multi.paths)
    done = multi.run(*start)
    assert done.returncode == 0, done.stdout + done.stderr
    host = done.stdout.split("w1@")[1].split(":")[0]
    assert f"\t> w1@{host}: OK" in done.stdout and f"\t> w2@{host}: OK" in done.stdout
    pids = {node: multi.pid(node) for node in NODES}
    assert all(pid and alive(pid) for pid in pids.values()), pids
    for node in NODES:
        multi.wait_ready(node)
    assert client.send_task("tasks.add", (2, 3)).get(timeout=30) == 5

    again = multi.run(*start)
    assert again.returncode == 0
    assert f"w1@{host}: already running (pid {pids['w1']}); not started again" in again.stdout
    assert {node: multi.pid(node) for node in NODES} == pids

    # stopwait waits for the running task: it has not returned until the task is released.
    release = tmp_path / "release"
    running = client.send_task("tasks.block", (str(release),))
    wait_state(client, running.id, "STARTED")
    stopwait = subprocess.Popen(
        multi.command("multi", "stopwait", *NODES, *multi.paths),
        cwd=tmp_path,
        env=multi.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: all("Warm shutdown" in multi.log(node) for node in NODES), "warm shutdowns")
    assert stopwait.poll() is None  # a node still runs the task
    release.write_text("go")
    out, _ = stopwait.communicate(timeout=60)
    assert stopwait.returncode == 0
    assert "> Waiting for 2 nodes" in out and f"\t> w1@{host}: OK" in out
    assert running.get(timeout=10) == "released"
    assert not any(alive(pid) for pid in pids.values() if pid)
    assert not multi.pidfile("w1").exists() and not multi.pidfile("w2").exists()


@pytest.mark.slow
def test_multi_kill_leaves_a_stale_pidfile_then_start_and_restart(
    multi: Multi, client: Celery
) -> None:
    done = multi.run("multi", "start", "w1", *OPTIONS, *multi.paths)
    assert done.returncode == 0, done.stdout + done.stderr
    host = done.stdout.split("w1@")[1].split(":")[0]
    multi.wait_ready("w1")
    # kill leaves a stale pid file; start says so, removes it and starts the node.
    killed = multi.pid("w1")
    out = multi.run("multi", "kill", "w1", *multi.paths).stdout
    assert f"Sending KILL to node w1@{host} ({killed})" in out
    wait_until(lambda: killed and not alive(killed), "the killed node to be gone")
    assert multi.pid("w1") == killed  # stale
    done = multi.run("multi", "start", "w1", *OPTIONS, *multi.paths)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"stale pid file {multi.pidfile('w1')} (pid {killed} is gone): removed" in done.stdout
    fresh = multi.pid("w1")
    assert fresh and fresh != killed and alive(fresh)
    multi.wait_ready("w1", times=2)

    # restart: stop, wait, start again with a new process.
    done = multi.run("multi", "restart", "w1", *OPTIONS, *multi.paths)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"> Restarting node w1@{host}: OK" in done.stdout
    restarted = multi.pid("w1")
    assert restarted and restarted != fresh and alive(restarted) and not alive(fresh)
    multi.wait_ready("w1", times=3)
    assert client.send_task("tasks.add", (1, 1)).get(timeout=30) == 2
    done = multi.run("multi", "stopwait", *NODES, *multi.paths)
    assert f"> w2@{host}: DOWN" in done.stdout and f"\t> w1@{host}: OK" in done.stdout
    assert not alive(restarted)


@pytest.mark.slow
def test_detach_refuses_a_live_pidfile_and_reports_a_failed_start(
    multi: Multi, tmp_path: Path
) -> None:
    pidfile = f"--pidfile={tmp_path}/run/%n.pid"
    logfile = f"--logfile={tmp_path}/log/%n.log"
    (tmp_path / "run").mkdir()
    (tmp_path / "log").mkdir()
    done = multi.run(
        "worker", "--detach", "-n", "w1@%h", "-P", "solo", pidfile, logfile, "-l", "info"
    )
    assert done.returncode == 0, done.stderr
    assert "Detached worker started (pid" in done.stdout
    pid = multi.pid("w1")
    assert pid and alive(pid)
    multi.wait_ready("w1")

    again = multi.run("worker", "--detach", "-n", "w1@%h", pidfile, logfile)
    assert again.returncode == 73
    assert f"Pidfile ({tmp_path}/run/w1.pid) already exists." in again.stderr
    assert f"Seems we're already running? (pid: {pid})" in again.stderr
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not alive(pid), "the detached worker to exit")
    assert not multi.pidfile("w1").exists()

    bad = multi.run("worker", "--detach", "-n", "w2@%h", "-P", "nonsense", pidfile, logfile)
    assert bad.returncode == 1
    assert f"exited before it started; see {tmp_path}/log/w2.log" in bad.stderr
    assert "nonsense" in multi.log("w2")
    assert not multi.pidfile("w2").exists()


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["sqlite", "redis"], indirect=True)  # fed / consuming children
def test_multi_range_with_per_node_options_and_per_process_logs_then_stop(
    multi: Multi, client: Celery, tmp_path: Path
) -> None:
    """``multi start 2`` (nodes w1, w2) of prefork workers, ``-c:2 1`` for the second;
    ``--logfile=%n%I.log``: each main process logs to ``w1.log``, each child to its own
    ``w1-1.log`` (Celery's ``%I``); plain ``stop`` (TERM, no wait) stops them both."""
    common = ("2", "--range-prefix=w", *multi.paths)
    done = multi.run(
        "multi", "start", *common, "-P", "prefork", "-c", "2", "-c:2", "1", "-l", "info"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    host = done.stdout.split("w1@")[1].split(":")[0]
    pids = {node: multi.pid(node) for node in NODES}
    for node in NODES:
        multi.wait_ready(node)
    inspect = client.control.inspect(timeout=5.0)
    stats = wait_until(lambda: (s := inspect.stats() or {}) and len(s) == 2 and s, "two nodes")
    assert {n: s["pool"]["max-concurrency"] for n, s in stats.items()} == {
        f"w1@{host}": 2,
        f"w2@{host}": 1,
    }
    results = [client.send_task("tasks.add", (i, i)) for i in range(8)]
    assert [r.get(timeout=30) for r in results] == [2 * i for i in range(8)]

    logs = tmp_path / "log"
    children = sorted(p.name for p in logs.glob("*-*.log"))
    assert children == ["w1-1.log", "w1-2.log", "w2-1.log"]

    def succeeded_where(task_id: str) -> list[str]:
        return [
            p.name
            for p in sorted(logs.glob("*.log"))
            if f"[{task_id}] succeeded in" in p.read_text(errors="replace")
        ]

    # Each task's "succeeded" line is in the file of the child that ran it, and only there.
    wait_until(lambda: all(succeeded_where(r.id) for r in results), "every task's log line")
    assert all(len(where := succeeded_where(r.id)) == 1 and "-" in where[0] for r in results)
    assert "ready." in multi.log("w1") and "ready." not in (logs / "w1-1.log").read_text()

    stopped = multi.run("multi", "stop", *common)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "> Stopping nodes..." in stopped.stdout
    assert f"\t> w1@{host}: TERM -> {pids['w1']}" in stopped.stdout
    wait_until(lambda: not any(pid and alive(pid) for pid in pids.values()), "both nodes gone")
    wait_until(lambda: not multi.pidfile("w1").exists(), "w1's pid file removed")
    assert not multi.pidfile("w2").exists()
