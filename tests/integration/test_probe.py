"""Container probes (``celeriac check``) and broker reconnection, with real workers.

A worker whose process is frozen (SIGSTOP: alive, its connection open, consuming nothing) is
reported as not consuming, and as consuming again once it goes on; a stopped worker as not
running. A worker whose broker goes away (a TCP proxy in front of the shared Redis or
RabbitMQ, which the test cuts) logs it, fails the probe, and comes back consuming, and
answering remote control, on its own when the broker is back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.worker.liveness import probe_file, probe_pidfile
from celeriac.worker.worker import default_nodename
from tests.integration.broker_envs import BrokerEnv
from tests.integration.conftest import FIXTURE_APPS, REPO, WorkerFactory, wait_until
from tests.servers import RABBITMQ_HOST, RABBITMQ_PORT, REDIS_HOST, REDIS_PORT
from tests.tcp_proxy import TcpProxy, tcp_proxy

MAX_AGE = "2"


def _check(tmp_path: Path, conf: dict[str, object], *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(FIXTURE_APPS)])
    env["WORKER_TEST_DIR"] = str(tmp_path)
    env["WORKER_TEST_CONF"] = json.dumps(conf)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "celeriac",
            "-A",
            "worker_app",
            "check",
            "--max-age",
            MAX_AGE,
            *args,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_check_tells_a_consuming_worker_from_a_frozen_and_a_stopped_one(
    start_worker: WorkerFactory, broker: BrokerEnv, client: Celery, tmp_path: Path
) -> None:
    conf = broker.settings  # the path on the command lines: --liveness-file
    given = ("--liveness-file", f"{tmp_path}/%n.alive", "-n", "w1@%h")
    pidfile = tmp_path / "w1.pid"
    worker = start_worker("-P", "threads", *given, "--pidfile", str(pidfile), conf=conf)
    alive_file = str(tmp_path / "w1.alive")
    ok = _check(tmp_path, conf, *given)
    assert ok.returncode == 0, ok.stderr
    assert "w1@" in ok.stdout and "OK, consuming" in ok.stdout
    assert _check(tmp_path, conf, "--pidfile", str(pidfile)).returncode == 0
    assert client.send_task("tasks.add", (1, 2)).get(timeout=30) == 3

    worker.signal(signal.SIGSTOP)  # alive, connected, consuming nothing
    try:
        wait_until(lambda: not probe_file(alive_file, float(MAX_AGE)).ok, "a failing probe")
        frozen = _check(tmp_path, conf, *given)
        assert frozen.returncode == 1
        assert "not consuming (last seen consuming" in frozen.stderr
        assert not probe_pidfile(str(pidfile), float(MAX_AGE)).ok
    finally:
        worker.signal(signal.SIGCONT)
    wait_until(lambda: probe_file(alive_file, float(MAX_AGE)).ok, "the probe to pass again")
    assert _check(tmp_path, conf, "--pidfile", str(pidfile)).returncode == 0

    assert worker.stop() == 0
    gone = _check(tmp_path, conf, *given)
    assert gone.returncode == 1 and "not running: no liveness file" in gone.stderr
    assert "not running" in _check(tmp_path, conf, "--pidfile", str(pidfile)).stderr


#: broker kind -> (the shared server the proxy fronts, the worker's log line for the loss).
PROXIED = {
    "redis": ((REDIS_HOST, REDIS_PORT), "unreachable while consuming"),
    "amqp": ((RABBITMQ_HOST, RABBITMQ_PORT), "cannot reach"),
}


@pytest.fixture
def proxy(broker: BrokerEnv) -> Iterator[TcpProxy]:
    """A TCP proxy in front of the shared server (which is never stopped): the test cuts it."""
    (host, port), _ = PROXIED[broker.kind]
    with tcp_proxy(host, port) as front:
        yield front


@pytest.mark.slow
@pytest.mark.parametrize(
    ("broker", "pool"),
    [("redis", "threads"), ("redis", "prefork"), ("amqp", "threads")],  # prefork: children
    indirect=["broker"],  # that consume for themselves
)
def test_a_worker_that_loses_its_broker_logs_it_and_comes_back_consuming(
    start_worker: WorkerFactory,
    broker: BrokerEnv,
    client: Celery,
    tmp_path: Path,
    proxy: TcpProxy,
    pool: str,
) -> None:
    (host, port), loss = PROXIED[broker.kind]
    url = broker.broker_url.replace(f"{host}:{port}", proxy.address)
    conf = {"broker_url": url, "worker_liveness_file": f"{tmp_path}/%n.alive"}
    worker = start_worker("-P", pool, "-c", "2", "-n", "w1@%h", conf=conf)
    alive_file = str(tmp_path / "w1.alive")
    assert client.send_task("tasks.add", (1, 2)).get(timeout=30) == 3
    assert probe_file(alive_file, float(MAX_AGE)).ok

    proxy.cut()
    wait_until(lambda: loss in worker.output(), "the loss to be logged")
    wait_until(lambda: not probe_file(alive_file, float(MAX_AGE)).ok, "a failing probe")
    proxy.restore()
    wait_until(lambda: "reachable again" in worker.output(), "the worker to reconnect")
    wait_until(lambda: probe_file(alive_file, float(MAX_AGE)).ok, "the probe to pass again")
    assert client.send_task("tasks.add", (2, 2)).get(timeout=30) == 4
    node = default_nodename("w1@%h")
    wait_until(  # remote control came back too (its own subscription, its own connection)
        lambda: client.control.ping(destination=[node], timeout=1.0), "a ping answered"
    )
    assert worker.output().count("Remote control read failed") <= 1
    assert worker.process.poll() is None
    assert worker.stop() == 0


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["redis", "amqp"], indirect=True)
def test_a_worker_whose_connection_hangs_open_fails_the_probe_until_it_flows_again(
    start_worker: WorkerFactory,
    broker: BrokerEnv,
    client: Celery,
    tmp_path: Path,
    proxy: TcpProxy,
) -> None:
    """The known Celery failure: the process lives and its connection stays open, but
    nothing comes through it (a silent partition: the proxy holds every byte). The worker
    consumes nothing, so ``celeriac check`` fails; once bytes flow again it passes, and the
    task sent meanwhile runs. On Redis the consumer's wait for an answer hangs at once; an
    idle AMQP consumer waits quietly anyway, and notices only when two heartbeats are missed
    (``broker_heartbeat``, lowered here from Celery's 120 s)."""
    (host, port), _ = PROXIED[broker.kind]
    url = broker.broker_url.replace(f"{host}:{port}", proxy.address)
    given = ("--liveness-file", f"{tmp_path}/%n.alive", "-n", "w1@%h")
    conf = {**broker.settings, "broker_url": url}
    if broker.kind == "amqp":
        conf["broker_heartbeat"] = 2.0
    worker = start_worker("-P", "threads", "-c", "2", *given, conf=conf)
    assert client.send_task("tasks.add", (1, 2)).get(timeout=30) == 3
    assert _check(tmp_path, conf, *given).returncode == 0

    proxy.hold()
    try:
        waiting = client.send_task("tasks.add", (2, 2))  # the client's own connection
        wait_until(
            lambda: not probe_file(str(tmp_path / "w1.alive"), float(MAX_AGE)).ok,
            "a failing probe",
        )
        held = _check(tmp_path, conf, *given)
        assert held.returncode == 1 and "not consuming" in held.stderr
        assert worker.process.poll() is None  # alive all along
    finally:
        proxy.release()
    assert waiting.get(timeout=60) == 4
    wait_until(lambda: _check(tmp_path, conf, *given).returncode == 0, "the probe to pass again")
    assert worker.stop() == 0
