"""The fault scenarios: each runs on one broker kind and returns its :class:`Figures`.

Every scenario uses ``task_acks_late`` and ``task_reject_on_worker_lost`` (the settings under
which celeriac promises at-least-once) and short leases (``visibility_timeout``) so that a
message of a dead or frozen worker comes back within seconds instead of an hour.
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import signal
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.faults.harness import (
    Figures,
    Stage,
    Worker,
    children_of,
    stage,
    wait_until,
)

#: Leases short enough for a test: a dead worker's messages come back after this long.
LEASE = 2.0


def _lease_options(scene: Stage, lease: float = LEASE) -> dict[str, Any]:
    options = dict(scene.target.worker_settings.get("broker_transport_options") or {})
    options.update(visibility_timeout=lease, unacked_restore_interval=0.5, polling_interval=0.2)
    settings: dict[str, Any] = {"broker_transport_options": options}
    if scene.target.kind == "amqp":
        settings["broker_heartbeat"] = 2
    return settings


def soak(kind: str, tasks: int, workers: int = 2, directory: Path | None = None) -> Figures:
    """``tasks`` tasks through ``workers`` workers, nothing failing: exactly once each."""
    figures = Figures("soak", kind)
    with stage(kind, directory) as scene:
        started = time.monotonic()
        scene.send(tasks)
        for _ in range(workers):
            scene.worker("-c", "2")
        finished = scene.wait_done(stall=60)
        figures.seconds = time.monotonic() - started
        scene.ledger.tally(figures, scene.sent, set())
        sample = sorted(scene.sent)
        if len(sample) > 2000:
            sample = random.Random(7).sample(sample, 2000)
        stored = scene.stored(sample)
        figures.notes.append(f"{stored}/{len(sample)} results checked stored")
        if not finished:
            figures.notes.append("progress stopped")
        if stored != len(sample):
            figures.lost = max(figures.lost, len(sample) - stored)
    return figures


def kill(
    kind: str,
    tasks: int,
    kills: int,
    directory: Path | None = None,
    seconds: float = 0.01,
    lease: float = LEASE,
) -> Figures:
    """``kills`` SIGKILLs during a run of ``tasks`` (2 prefork workers of 2 children):
    alternately a worker's main process (a new worker replaces it) and one prefork child
    that is running a task."""
    figures = Figures("kill -9", kind)
    with stage(kind, directory) as scene:
        settings = _lease_options(scene, lease)
        started = time.monotonic()
        scene.send(tasks, seconds)
        live = [scene.worker("-c", "2", settings=settings) for _ in range(2)]
        faulted: set[int] = set()
        for number in range(kills):
            goal = tasks * (number + 1) // (kills + 2)
            wait_until(lambda goal=goal: scene.ledger.poll() >= goal, "progress", 600)  # type: ignore[misc]
            if number % 2 == 0:
                victim = live.pop(0)
                faulted.update(victim.kill())
                scene.stray.update(faulted - {victim.pid})
                live.append(scene.worker("-c", "2", settings=settings))
            else:
                child = _busy_child(scene, live)
                if child is None:
                    continue
                faulted.add(child)
                _kill(child)
            figures.faults += 1
        finished = scene.wait_done(stall=60)
        time.sleep(lease * 2)  # late redeliveries of expired leases show up as duplicates
        figures.seconds = time.monotonic() - started
        scene.ledger.tally(figures, scene.sent, faulted)
        if not finished:
            figures.notes.append("progress stopped")
    return figures


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _busy_child(scene: Stage, live: list[Worker]) -> int | None:
    """A prefork child running a task now (any child after 10 s without one)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        scene.ledger.poll()
        for worker in live:
            for child in children_of(worker.pid):
                if scene.ledger.running_in(child):
                    return child
        time.sleep(0.01)
    return next((child for worker in live for child in children_of(worker.pid)), None)


class Producer(threading.Thread):
    """Sends ``count`` tasks, one every ``gap`` seconds; times each ``delay()``."""

    def __init__(self, scene: Stage, count: int, gap: float) -> None:
        super().__init__(daemon=True)
        self.scene, self.count, self.gap = scene, count, gap
        self.longest = 0.0
        self.raised: list[str] = []

    def run(self) -> None:
        for number in range(self.count):
            began = time.monotonic()
            try:
                result = self.scene.app.send_task("faults.record", (number, 0.0))
                self.scene.sent.add(result.id)
                self.scene.sent_at[result.id] = time.time()
            except Exception as exc:  # the policy gave up: the caller was told
                self.raised.append(f"{type(exc).__name__}: {exc}")
            self.longest = max(self.longest, time.monotonic() - began)
            time.sleep(self.gap)


#: The publish retry policy the producer runs under in the outage scenarios.
PUBLISH_POLICY = {
    "max_retries": 3,
    "interval_start": 0.2,
    "interval_step": 0.5,
    "interval_max": 1.0,
}


def outage(
    kind: str,
    mode: str,
    tasks: int,
    down: float,
    directory: Path | None = None,
    lease: float = LEASE,
) -> Figures:
    """A fault between workers and broker for ``down`` seconds while a producer sends:

    - ``restart``: the broker stops and starts (private Redis / PostgreSQL; RabbitMQ: the
      proxy is cut, every connection closed, and restored);
    - ``cut``: the proxy between workers and broker closes every connection and refuses new
      ones (the client still reaches the broker);
    - ``hold``: the proxy stops relaying, connections stay open (a silent partition);
    - ``slow``: every relayed chunk waits 50 ms.
    """
    name = {"restart": "broker restart", "cut": "network cut", "hold": "silent partition",
            "slow": "slow network"}[mode]  # fmt: skip
    figures = Figures(name, kind)
    with stage(kind, directory, restartable=mode == "restart", proxied=mode != "restart") as scene:
        scene.app.conf.task_publish_retry_policy = PUBLISH_POLICY
        settings = _lease_options(scene, lease)
        started, started_at = time.monotonic(), time.time()
        scene.send(tasks // 2)
        for _ in range(2):
            scene.worker("-c", "2", settings=settings)
        wait_until(lambda: scene.ledger.poll() >= tasks // 8, "progress before the fault", 120)
        producer = Producer(scene, tasks - tasks // 2, gap=down / max(1, tasks // 2) * 2)
        producer.start()
        proxy = scene.target.proxy
        fault = time.time()
        if mode == "restart":
            assert scene.target.stop is not None and scene.target.start is not None
            scene.target.stop()
            time.sleep(down)  # the outage itself
            scene.target.start()
            figures.notes.append(scene.target.how_restarted)
        else:
            assert proxy is not None
            if mode == "cut":
                proxy.cut()
            elif mode == "hold":
                proxy.hold()
            else:
                proxy.latency = 0.05
            time.sleep(down)  # the outage itself
            if mode == "cut":
                proxy.restore()
            elif mode == "hold":
                proxy.release()
            else:
                proxy.latency = 0.0
        back = time.time()
        figures.faults = 1
        producer.join(600)
        finished = scene.wait_done(stall=60)
        time.sleep(lease * 2)
        figures.seconds = time.monotonic() - started
        before = {tid for tid, at in scene.sent_at.items() if at < back}
        scene.ledger.tally(figures, scene.sent, set(), before)
        figures.notes.append(f"fault at +{fault - started_at:.0f} s")
        figures.recover = scene.ledger.first_start_after(back)
        figures.notes.append(f"longest delay() {producer.longest:.1f} s")
        figures.extra.update(
            longest=producer.longest, hung=producer.is_alive(), raised=producer.raised
        )
        if producer.raised:
            figures.notes.append(
                f"{len(producer.raised)} delay() raised: {producer.raised[0][:80]}"
            )
        if producer.is_alive():
            figures.notes.append("a delay() HUNG")
        if not finished:
            figures.notes.append("progress stopped")
        logs = "".join(worker.output() for worker in scene.workers)
        figures.extra["logged_loss"] = _logged_loss(logs)
        figures.notes.append(f"workers logged the loss: {_logged_loss(logs)}")
    return figures


def _logged_loss(logs: str) -> bool:
    words = ("connection", "reconnect", "unreachable", "cannot reach", "lost")
    return any(
        word in line.lower()
        for line in logs.splitlines()
        for word in words
        if "WARNING" in line or "ERROR" in line
    )


def freeze(kind: str, tasks: int, directory: Path | None = None, lease: float = LEASE) -> Figures:
    """Two workers; one is stopped (SIGSTOP) for three leases with tasks in hand, then
    continued. Its messages must go to the other worker; when it wakes it must not run a
    task the other worker already ran."""
    figures = Figures("SIGSTOP past the lease", kind)
    with stage(kind, directory) as scene:
        settings = _lease_options(scene, lease)
        started = time.monotonic()
        scene.send(tasks, 0.05)
        frozen = scene.worker("-P", "solo", settings=settings)
        scene.worker("-P", "solo", settings=settings)
        wait_until(lambda: scene.ledger.poll() >= tasks // 10, "progress", 120)
        frozen.process.send_signal(signal.SIGSTOP)
        stopped = time.time()
        time.sleep(lease * 3 + (6 if kind == "amqp" else 0))  # the freeze itself
        frozen.process.send_signal(signal.SIGCONT)
        woke = time.time()
        figures.faults = 1
        finished = scene.wait_done(stall=60)
        time.sleep(lease * 2)
        figures.seconds = time.monotonic() - started
        scene.ledger.tally(figures, scene.sent, {frozen.pid})
        # Runs the frozen worker started after waking, of tasks the other worker ran too.
        after_wake = sum(
            1
            for runs in scene.ledger.starts.values()
            if len(runs) > 1 and any(r.pid == frozen.pid and r.at >= woke for r in runs)
        )
        figures.notes.append(f"{after_wake} re-run by the frozen worker after it woke")
        figures.extra["after_wake"] = after_wake
        # Every duplicate has a run in the frozen worker (whose leases lapsed).
        figures.explained = sum(
            len(runs) - 1
            for runs in scene.ledger.ends.values()
            if len(runs) > 1 and any(r.pid == frozen.pid for r in runs)
        )
        figures.notes.append(f"frozen {woke - stopped:.0f} s, lease {lease:.0f} s")
        if not finished:
            figures.notes.append("progress stopped")
    return figures


def disk_full(tasks: int, directory: Path | None = None, lease: float = LEASE) -> Figures:
    """The embedded default's disk fills up under a running worker (its file size limit,
    RLIMIT_FSIZE, lowered to the size of its files: every write that grows one fails as on a
    full disk), then frees up (the limit lifted). Every task must end with a stored result:
    nothing acknowledged that was not stored. A worker that starts on a full disk must fail
    with a clear error."""
    figures = Figures("disk full", "sqlite")
    with stage("sqlite", directory) as scene:
        started = time.monotonic()
        settings = _lease_options(scene, lease)
        scene.send(tasks, 0.02)
        scene.stored(["warm-up"])  # the result store's file exists and has its tables
        files = [scene.target.directory / name for name in ("broker.sqlite", "results.sqlite")]

        def full_disk() -> None:
            limit = max(path.stat().st_size for path in files) + 4096
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

        # A worker started on a full disk.
        refused = scene.worker(
            "-P", "solo", ready=False, preexec=full_disk, settings=settings, piped=True
        )
        refused.process.wait(60)
        said = refused.output().strip().splitlines()
        figures.extra["startup_error"] = last = said[-1] if said else ""
        code = refused.process.returncode
        figures.notes.append(f"started on a full disk: exit {code}, said {last[:90]!r}")
        # The disk fills up under a running worker.
        worker = scene.worker("-P", "solo", settings=settings, piped=True)
        wait_until(lambda: scene.ledger.poll() >= tasks // 10, "progress", 60)
        limit = max(path.stat().st_size for path in files) + 4096
        resource.prlimit(worker.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        filled = time.time()
        time.sleep(lease * 2)  # the full disk lasts a while
        errors = [line.strip() for line in worker.output().splitlines() if "ERROR" in line]
        first = errors[0][:100] if errors else "none"
        figures.notes.append(f"{len(errors)} error lines while full, first: {first!r}")
        freed = time.time()
        if worker.alive():
            unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
            resource.prlimit(worker.pid, resource.RLIMIT_FSIZE, unlimited)
        else:
            figures.notes.append(
                f"the worker exited on the full disk ({freed - filled:.1f} s); a new one started"
            )
            scene.worker("-P", "solo", settings=settings)
        figures.faults = 1
        finished = scene.wait_done(stall=30)
        time.sleep(lease * 2)
        figures.seconds = time.monotonic() - started
        scene.ledger.tally(figures, scene.sent, {worker.pid})
        figures.recover = scene.ledger.first_start_after(freed)
        stored = scene.stored(sorted(scene.sent))
        figures.notes.append(f"{stored}/{tasks} results stored at the end")
        figures.lost = max(figures.lost, tasks - stored)
        figures.extra["stored"] = stored
        if not finished:
            figures.notes.append("progress stopped")
    return figures
