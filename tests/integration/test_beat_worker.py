"""A real ``celeriac beat`` process and a real worker, on the embedded SQLite default and on
Redis: the schedule's tasks run, from beat_schedule and from add_periodic_task; ``worker -B``
runs its own beat; beat stops cleanly on SIGTERM and keeps its state file; a second beat is
a standby that takes over after kill -9 of the first, with no run sent twice."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.beat.store_backends import store_for
from tests.integration.broker_envs import make_env
from tests.integration.conftest import REPO, wait_until

PROJECT = """
import itertools
import json
import os

from celeriac import Celery

app = Celery("beatproj")
app.conf.update(json.loads(os.environ.get("BEAT_TEST_CONF", "{}")))
app.conf.beat_schedule = {
    "tick": {"task": "beatproj.record", "schedule": 0.3, "args": ["tick"]},
}


@app.on_after_configure.connect
def setup(sender, **kwargs):
    sender.add_periodic_task(0.4, record.s("added"), name="added")


@app.task
def record(what):
    with open("runs.log", "a") as out:
        out.write(what + "\\n")
"""


class Proc:
    def __init__(self, directory: Path, conf: dict[str, Any], *args: str) -> None:
        self.log = directory / f"{args[0]}-{os.urandom(3).hex()}.log"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(directory)]))
        env["BEAT_TEST_CONF"] = json.dumps(conf)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celeriac", "-A", "beatproj", *args, "-l", "info"],
                cwd=directory,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"did not stop on SIGTERM:\n{self.output()}") from None


@pytest.fixture(params=["sqlite-default", "redis"])
def project(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Path, dict[str, Any]]]:
    (tmp_path / "beatproj.py").write_text(textwrap.dedent(PROJECT))
    if request.param == "sqlite-default":
        yield tmp_path, {}  # no URL at all: the embedded SQLite files in the directory
        return
    env = make_env("redis", tmp_path)
    try:
        yield tmp_path, env.settings
    finally:
        env.cleanup()


def _runs(directory: Path) -> list[str]:
    path = directory / "runs.log"
    return path.read_text().split() if path.exists() else []


def _enough(directory: Path, procs: list[Proc]) -> bool:
    for proc in procs:
        if proc.process.poll() is not None:
            raise AssertionError(f"exited early:\n{proc.output()}")
    runs = _runs(directory)
    return runs.count("tick") >= 3 and runs.count("added") >= 2


def test_beat_and_worker(project: tuple[Path, dict[str, Any]]) -> None:
    directory, conf = project
    beat = Proc(directory, conf, "beat", "-s", "beat-state", "--max-interval", "0.2")
    worker = Proc(directory, conf, "worker", "-P", "solo")
    try:
        wait_until(lambda: _enough(directory, [beat, worker]), "beat's tasks to run")
        assert beat.stop() == 0
        assert "Sending due task tick (beatproj.record)" in beat.output()
    finally:
        beat.stop()
        worker.stop()
    with sqlite3.connect(directory / "beat-state") as db:
        counts = dict(db.execute("SELECT name, total_run_count FROM beat_entries").fetchall())
    assert counts["tick"] >= 3 and counts["added"] >= 2


def test_worker_with_embedded_beat(project: tuple[Path, dict[str, Any]]) -> None:
    directory, conf = project
    worker = Proc(directory, conf, "worker", "-P", "solo", "-B", "-s", "beat-state")
    try:
        wait_until(lambda: _enough(directory, [worker]), "worker -B's periodic tasks to run")
    finally:
        assert worker.stop() == 0
    assert (directory / "beat-state").exists()


def _sends(proc: Proc) -> list[float]:
    """When ``proc`` sent the 'tick' entry (from its log lines)."""
    times = []
    for line in proc.output().splitlines():
        if "Sending due task tick " in line:
            stamp = line[1:].split(": ", 1)[0]
            times.append(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return times


def test_second_beat_is_a_standby_and_takes_over_after_kill_9(
    project: tuple[Path, dict[str, Any]],
) -> None:
    directory, conf = project
    conf = {**conf, "beat_lease_ttl": 1.5}
    args = ("beat", "-s", "beat-state", "--max-interval", "0.2")
    first = Proc(directory, conf, *args)
    wait_until(lambda: "holding the lease" in first.output(), "the first beat to lead")
    second = Proc(directory, conf, *args)
    try:
        wait_until(lambda: "standby" in second.output(), "the second beat to stand by")
        wait_until(lambda: len(_sends(first)) >= 4, "the first beat to send")
        assert _sends(second) == []  # both alive: only the holder sends
        first.process.kill()  # kill -9: no release, the lease has to expire
        first.process.wait()
        killed = time.time()
        wait_until(lambda: len(_sends(second)) >= 3, "the standby to take over", timeout=20)
        took_over = _sends(second)[0] - killed
        assert took_over < 1.5 + 0.5 + 1.5, took_over  # ttl + one renewal + slack
        assert second.stop() == 0
    finally:
        if first.process.poll() is None:
            first.process.kill()
        second.stop()
    sends = sorted(_sends(first) + _sends(second))
    gaps = [b - a for a, b in itertools.pairwise(sends)]
    assert min(gaps) > 0.2, gaps  # every 0.3 s: never the same run from both beats


def test_schedule_store_edits_reach_a_running_beat(project: tuple[Path, dict[str, Any]]) -> None:
    directory, conf = project
    conf = {**conf, "beat_schedule_store": True}
    beat = Proc(directory, conf, "beat", "--max-interval", "0.2")
    worker = Proc(directory, conf, "worker", "-P", "solo")
    app = Celery("beatproj", set_as_current=False)
    app.conf.update(conf)
    app.conf.sqlite_broker_path = str(directory / "celeriac-broker.sqlite")
    store = store_for(app)
    assert store is not None
    try:
        wait_until(lambda: _enough(directory, [beat, worker]), "beat's tasks to run")
        store.add("late", "beatproj.record", 0.3, args=["late"])  # no restart
        store.pause("tick")
        wait_until(lambda: _runs(directory).count("late") >= 1, "the added entry to run")
        ticks = _runs(directory).count("tick")
        wait_until(lambda: _runs(directory).count("late") >= 4, "the added entry to run again")
        assert _runs(directory).count("tick") <= ticks + 1  # paused (one may be in flight)
        store.run_now("tick")
        wait_until(lambda: _runs(directory).count("tick") >= ticks + 1, "the run asked for")
    finally:
        store.close()
        app.close()
        beat.stop()
        worker.stop()


def test_beat_detach_with_pidfile_and_logfile(tmp_path: Path) -> None:
    (tmp_path / "beatproj.py").write_text(textwrap.dedent(PROJECT))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(tmp_path)]))
    env["BEAT_TEST_CONF"] = "{}"
    elsewhere = tmp_path / "elsewhere"  # relative paths are read from --workdir, as Celery
    elsewhere.mkdir()
    args = ["beat", "--detach", "--logfile", "beat.log", "--pidfile", "beat.pid", "-l", "info"]
    args += ["--workdir", str(tmp_path), "--max-interval", "0.2"]
    command = [sys.executable, "-m", "celeriac", "-A", "beatproj", *args]
    done = subprocess.run(command, cwd=elsewhere, env=env, timeout=60, capture_output=True)
    assert done.returncode == 0, done.stderr  # the command returns once beat holds its pidfile
    pidfile, log = tmp_path / "beat.pid", tmp_path / "beat.log"
    pid = int(pidfile.read_text())
    assert done.stdout.decode().strip() == f"Detached beat started (pid {pid})."
    try:
        again = subprocess.run(command, cwd=elsewhere, env=env, timeout=60, capture_output=True)
        assert again.returncode == 73 and b"already running" in again.stderr  # as Celery
        wait_until(
            lambda: log.exists() and "Sending due task tick" in log.read_text(), "a detached send"
        )
        assert (tmp_path / "celerybeat-schedule").exists() and not list(elsewhere.iterdir())
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not pidfile.exists(), "the detached beat to stop and remove its pidfile")


def test_beat_and_worker_on_rabbitmq(tmp_path: Path) -> None:
    """No lease on RabbitMQ: beat says so at start, and sends as Celery's beat does."""
    (tmp_path / "beatproj.py").write_text(textwrap.dedent(PROJECT))
    env = make_env("amqp", tmp_path)
    try:
        beat = Proc(tmp_path, env.settings, "beat", "-s", "beat-state", "--max-interval", "0.2")
        worker = Proc(tmp_path, env.settings, "worker", "-P", "solo")
        try:
            wait_until(lambda: _enough(tmp_path, [beat, worker]), "beat's tasks to run")
        finally:
            assert beat.stop() == 0
            worker.stop()
        assert "this broker keeps no beat lease" in beat.output()
    finally:
        env.cleanup()
