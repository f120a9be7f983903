"""The fault suite's engine: brokers to run on, worker processes, the ledger, the figures.

A scenario (``benchmarks/faults/scenarios.py``) sends tasks of ``benchmarks/faults/app.py``
to workers on a :class:`Target` broker, injects its fault, waits until every task ran (or
progress stops) and returns :class:`Figures`:

- sent: tasks whose ``delay()`` returned;
- completed: distinct task ids with a finished run in the ledger (and, where checked, a
  stored ``SUCCESS`` result);
- lost: sent minus completed;
- duplicated: finished runs beyond the first, per task id; ``explained`` of them are runs of
  a task that was running (or held unacknowledged) in a process the scenario killed or froze,
  which ``acks_late`` delivers again by design; the rest are unexplained;
- recover: seconds from the end of the fault (broker back, network back, disk freed) until a
  worker started a task again.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from celeriac import Celery

#: The tree these scripts belong to (its celeriac is the one exercised).
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests import servers  # noqa: E402 - after the path fix when run as a script
from tests.tcp_proxy import TcpProxy  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")
#: Redis databases of the fault suite on the shared server (keys under a per-run prefix).
REDIS_BROKER_DB = 10
REDIS_RESULTS_DB = 11

_names = itertools.count()


def run_name() -> str:
    return f"faults-{os.getpid()}-{next(_names)}-{int(time.time() * 1000) % 100000}"


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- figures ---------------------------------------------------------------------------------
@dataclass
class Figures:
    scenario: str
    broker: str
    sent: int = 0
    completed: int = 0
    lost: int = 0
    duplicated: int = 0
    explained: int = 0
    recover: float | None = None
    seconds: float = 0.0
    faults: int = 0
    notes: list[str] = field(default_factory=list)
    #: Scenario-specific facts the tests assert on.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def unexplained(self) -> int:
        return self.duplicated - self.explained

    def row(self) -> str:
        recover = "-" if self.recover is None else f"{self.recover:.2f} s"
        return (
            f"| {self.scenario} | {self.broker} | {self.sent} | {self.completed} | {self.lost} "
            f"| {self.duplicated} ({self.explained} at a fault) | {self.faults} | {recover} "
            f"| {self.seconds:.0f} s | {'; '.join(self.notes)} |"
        )


HEADER = (
    "| scenario | broker | sent | completed | lost | duplicated | faults | time to recover "
    "| wall | notes |\n|---|---|---|---|---|---|---|---|---|---|"
)


def table(rows: list[Figures]) -> str:
    return "\n".join([HEADER, *(row.row() for row in rows)])


# -- the ledger ------------------------------------------------------------------------------
@dataclass
class Run:
    kind: str  # "S" or "E"
    pid: int
    at: float


class Ledger:
    """Reads the ledger file the tasks append to, incrementally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()
        self._offset = 0
        self._rest = b""
        self.starts: dict[str, list[Run]] = defaultdict(list)
        self.ends: dict[str, list[Run]] = defaultdict(list)

    def poll(self) -> int:
        """Read what was appended; return the number of distinct finished task ids."""
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        self._offset += len(data)
        data = self._rest + data
        lines = data.split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            kind, task_id, pid, at = line.decode().split()
            run = Run(kind, int(pid), float(at))
            (self.starts if kind == "S" else self.ends)[task_id].append(run)
        return len(self.ends)

    def executions(self) -> int:
        return sum(len(runs) for runs in self.ends.values())

    def first_start_after(self, moment: float) -> float | None:
        later = [run.at for runs in self.starts.values() for run in runs if run.at >= moment]
        return min(later) - moment if later else None

    def running_in(self, pid: int) -> list[str]:
        """Task ids started in ``pid`` and not finished there."""
        ended = {tid for tid, runs in self.ends.items() if any(r.pid == pid for r in runs)}
        return [
            tid
            for tid, runs in self.starts.items()
            if tid not in ended and any(r.pid == pid for r in runs)
        ]

    def tally(
        self,
        figures: Figures,
        sent_ids: set[str],
        faulted: set[int],
        in_flight: set[str] | None = None,
    ) -> None:
        """Fill ``completed``, ``lost``, ``duplicated`` and ``explained`` of ``figures``.

        A duplicate is explained when a run of it other than the last one finished in a
        process in ``faulted`` (killed, orphaned by a kill, or frozen): its acknowledgement
        (``acks_late``) was lost with that process; or when its task id is in ``in_flight``
        (sent before the broker or network came back: held by a worker during the outage,
        its ack or its lease lost with the connection)."""
        in_flight = in_flight or set()
        self.poll()
        done = set(self.ends) & sent_ids
        figures.sent = len(sent_ids)
        figures.completed = len(done)
        figures.lost = len(sent_ids - done)
        figures.extra["lost_ids"] = sorted(sent_ids - done)[:10]
        figures.duplicated = sum(len(self.ends[tid]) - 1 for tid in done)
        figures.explained = sum(
            len(self.ends[tid]) - 1
            if tid in in_flight
            else min(len(self.ends[tid]) - 1, sum(r.pid in faulted for r in self.ends[tid][:-1]))
            for tid in done
            if len(self.ends[tid]) > 1
        )


# -- brokers ---------------------------------------------------------------------------------
@dataclass
class Target:
    """One broker for one scenario: the settings of the workers and of the client, and its
    faults (``stop``/``start`` of a private server, or the proxy between worker and broker)."""

    kind: str
    directory: Path
    worker_settings: dict[str, Any]
    client_settings: dict[str, Any]
    queue: str
    proxy: TcpProxy | None = None
    stop: Callable[[], None] | None = None
    start: Callable[[], None] | None = None
    how_restarted: str = ""
    _cleanups: list[Callable[[], None]] = field(default_factory=list)

    def client(self) -> Celery:
        app = Celery("faults-client", set_as_current=False)
        app.conf.update(self.client_settings)
        return app

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                cleanup()


def _common(queue: str) -> dict[str, Any]:
    return {
        "task_default_queue": queue,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_hijack_root_logger": True,
    }


class RedisServer:
    """A private ``redis-server`` on a free port, data in ``directory`` (AOF, fsync always, so
    a stop and a start keep every message, as a production Redis with AOF does)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory),
        ]  # fmt: skip
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: servers.port_open("127.0.0.1", self.port), "the private Redis")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: Redis flushes the AOF and exits
            self.process.wait(30)
        self.process = None


class PostgresServer:
    """A private PostgreSQL cluster (initdb in a temporary directory, run by the ``postgres``
    user when we are root, as initdb refuses root)."""

    def __init__(self) -> None:
        # A directory of its own: the postgres user cannot enter pytest's (mode 0700) ones.
        self.directory = Path(tempfile.mkdtemp(prefix="celeriac-faults-pg-"))
        self.port = free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.directory / "data"),
            "-A",
            "trust",
            "-U",
            "postgres",
        )

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self._as, *command], capture_output=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{command[0]} failed: {done.stderr.decode(errors='replace')}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"), "-l",
            str(self.directory / "log"), "-o", options, "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run(
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.directory / "data"),
                "-m",
                "fast",
                "-w",
                "stop",
            )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


def make_target(
    kind: str, directory: Path, *, restartable: bool = False, proxied: bool = False
) -> Target:
    """A fresh broker namespace of ``kind`` (``sqlite``, ``redis``, ``amqp``, ``postgres``).

    ``restartable``: a private server the scenario may stop and start (RabbitMQ: the proxy,
    cut and restored, stands in for a restart of the shared server). ``proxied``: the
    workers reach the broker through a :class:`TcpProxy` (the client does not)."""
    name = run_name()
    queue = name
    cleanups: list[Callable[[], None]] = []
    stop = start = None
    how = ""
    if kind == "sqlite":
        settings = {
            "broker_url": f"sqlite:///{directory}/broker.sqlite",
            "result_backend": f"db+sqlite:///{directory}/results.sqlite",
        }
        target = Target(kind, directory, dict(settings), dict(settings), queue)
        target.client_settings.update(_common(queue))
        target.worker_settings.update(_common(queue))
        return target
    host, port = "127.0.0.1", 0
    if kind == "redis":
        if restartable:
            server = RedisServer(directory)
            server.start()
            cleanups.append(server.stop)
            host, port, db = "127.0.0.1", server.port, 0
            stop, start, how = (
                server.stop,
                server.start,
                "private redis-server (AOF) stopped and started",
            )
            results = f"redis://127.0.0.1:{port}/1"
        else:
            servers.require_redis()
            host, port, db = servers.REDIS_HOST, servers.REDIS_PORT, REDIS_BROKER_DB
            results = servers.redis_url(REDIS_RESULTS_DB)
            prefix = f"{name}:"
            cleanups.append(lambda: servers.delete_redis_keys(REDIS_BROKER_DB, prefix + "*"))
            cleanups.append(lambda: servers.delete_redis_keys(REDIS_RESULTS_DB, prefix + "*"))
        options = {"global_keyprefix": f"{name}:"}
        client = {
            "broker_url": f"redis://{host}:{port}/{db}",
            "broker_transport_options": options,
            "result_backend": results,
            "result_backend_transport_options": options,
        }
    elif kind == "amqp":
        url = servers.rabbitmq_url()
        host, port = servers.RABBITMQ_HOST, servers.RABBITMQ_PORT
        servers.require_redis()
        prefix = f"{name}:"
        cleanups.append(lambda: servers.delete_redis_keys(REDIS_RESULTS_DB, prefix + "*"))
        client = {
            "broker_url": url,
            "result_backend": servers.redis_url(REDIS_RESULTS_DB),
            "result_backend_transport_options": {"global_keyprefix": prefix},
        }

        def drop_queue() -> None:
            from tests.amqp_helpers import delete_queues

            delete_queues(url, (queue, f"{queue}.dead"))

        cleanups.append(drop_queue)
        if restartable:
            proxied = True
            how = "RabbitMQ: the proxy between workers and the shared server cut and restored"
    elif kind == "postgres":
        schema = name.replace("-", "_")
        if restartable:
            pg = PostgresServer()
            pg.start()
            cleanups.append(pg.remove)
            url = pg.url
            host, port = "127.0.0.1", pg.port
            stop, start, how = (
                pg.stop,
                pg.start,
                "private PostgreSQL cluster stopped (fast) and started",
            )
        else:
            url = servers.run_database("postgres")
            host, port = servers.POSTGRES_HOST, servers.POSTGRES_PORT
        client = {
            "broker_url": url,
            "broker_transport_options": {"schema": schema},
            "result_backend": f"db+{url.replace('postgresql://', 'postgresql+psycopg://')}",
        }
    else:
        raise ValueError(f"unknown broker kind {kind!r}")
    client.update(_common(queue))
    worker = json.loads(json.dumps(client))
    proxy = None
    if proxied:
        proxy = TcpProxy((host, port))
        cleanups.append(proxy.close)
        worker["broker_url"] = client["broker_url"].replace(f"{host}:{port}", proxy.address, 1)
        if kind == "amqp":
            stop, start = proxy.cut, proxy.restore
    return Target(kind, directory, worker, client, queue, proxy, stop, start, how, cleanups)


# -- workers ---------------------------------------------------------------------------------
def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _copy(process: subprocess.Popen[bytes], out: BinaryIO) -> None:
    assert process.stdout is not None
    with out, process.stdout:
        while chunk := process.stdout.read1(65536):  # type: ignore[attr-defined]
            out.write(chunk)
            out.flush()


class Worker:
    """``python -m celeriac -A benchmarks.faults.app worker`` with its output in a log file."""

    def __init__(
        self,
        target: Target,
        ledger: Path,
        *args: str,
        settings: dict[str, Any] | None = None,
        preexec: Callable[[], None] | None = None,
        piped: bool = False,
    ) -> None:
        self.log = target.directory / f"worker-{time.monotonic_ns()}.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        env["FAULTS_CONF"] = json.dumps({**target.worker_settings, **(settings or {})})
        env["FAULTS_LEDGER"] = str(ledger)
        command = [
            sys.executable, "-m", "celeriac", "-A", "benchmarks.faults.app", "worker",
            "-l", "info", "-n", f"w{time.monotonic_ns()}@faults", *args,
        ]  # fmt: skip
        # A worker under a file size limit (a full disk) writes its log through a pipe: the
        # limit is for its broker and result files, not for the log the figures are read from.
        out = self.log.open("wb")
        self.process = subprocess.Popen(
            command, cwd=target.directory, env=env, stderr=subprocess.STDOUT, preexec_fn=preexec,
            stdout=subprocess.PIPE if piped else out,
        )  # fmt: skip
        if piped:
            threading.Thread(target=_copy, args=(self.process, out), daemon=True).start()
        else:
            out.close()
        self.pid = self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> Worker:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.output()[-3000:]}")
            return " ready." in self.output()

        wait_until(ready, "the worker to be ready", timeout)
        return self

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> list[int]:
        """SIGKILL the worker (not its children); the pids that lost their parent with it."""
        orphans = children_of(self.pid)
        self.process.kill()
        self.process.wait()
        return [self.pid, *orphans]

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Stage:
    """A scenario's directory, ledger, workers and client; kills whatever is left at exit."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.ledger_path = target.directory / "ledger"
        self.ledger = Ledger(self.ledger_path)
        self.workers: list[Worker] = []
        self.stray: set[int] = set()  # orphaned children of killed workers
        self.app = target.client()
        self.sent: set[str] = set()
        self.sent_at: dict[str, float] = {}

    def worker(self, *args: str, ready: bool = True, **kwargs: Any) -> Worker:
        worker = Worker(self.target, self.ledger_path, *args, **kwargs)
        self.workers.append(worker)
        return worker.wait_ready() if ready else worker

    def send(self, count: int, seconds: float = 0.0) -> None:
        for number in range(count):
            result = self.app.send_task("faults.record", (number, seconds))
            self.sent.add(result.id)
            self.sent_at[result.id] = time.time()

    def wait_done(self, stall: float = 60.0, limit: float = 3600.0) -> bool:
        """Until every sent task finished, or nothing new finished for ``stall`` seconds."""
        started = last_change = time.monotonic()
        done = -1
        while time.monotonic() - started < limit:
            self.ledger.poll()
            now_done = len(self.ledger.ends.keys() & self.sent)
            if now_done >= len(self.sent):
                return True
            if now_done != done:
                done, last_change = now_done, time.monotonic()
            elif time.monotonic() - last_change > stall:
                return False
            time.sleep(0.05)
        return False

    def stored(self, ids: list[str]) -> int:
        """How many of ``ids`` have a stored SUCCESS result."""
        return sum(1 for tid in ids if self.app.backend.get_state(tid) == "SUCCESS")

    def close(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.stop(10)
        for pid in self.stray:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.app.close()


@contextlib.contextmanager
def stage(kind: str, directory: Path | None = None, **target_options: Any) -> Iterator[Stage]:
    temporary = None
    if directory is None:
        temporary = tempfile.mkdtemp(prefix="celeriac-faults-")
        directory = Path(temporary)
    target = make_target(kind, directory, **target_options)
    scene = Stage(target)
    try:
        yield scene
    finally:
        scene.close()
        target.close()
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
