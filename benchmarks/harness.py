"""Side-by-side benchmark runner: the same workload on celeriac and on real Celery.

A ``Scenario`` names a broker/backend pair for each system and says how to count stored
results and how to reset state. ``run_scenario`` measures, for each system and pool:

* enqueue: ``noop.delay(i)`` calls per second from one client process;
* drain: tasks per second a worker (``-c 2``) completes from a pre-filled queue, results
  stored, timed from the first stored result to the last;
* round trip (optional): ``noop.delay(i).get()`` latency p50 / p99 with the worker running.

Each is measured in ``rounds`` alternating rounds (every system and pool in turn, each round
with a fresh worker and ``1/rounds`` of the work) and summed over the rounds (latencies: over
all samples), so that a slow spell of this shared machine does not fall on one system only.

Both systems run from this venv (celery is a test dependency), each in its own processes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

#: The tree these scripts belong to: its celeriac is the one measured (not the venv's install).
REPO = Path(__file__).resolve().parents[1]

APP = textwrap.dedent(
    """
    from {package} import Celery
    app = Celery("benchtasks", broker={broker!r}, backend={backend!r})
    app.conf.update({settings!r})

    @app.task
    def noop(i):
        return i
    """
)


@dataclass
class System:
    """One side of the comparison: which package, which URLs, which extra settings."""

    label: str
    package: str  # "celeriac" or "celery"
    broker: str
    backend: str
    settings: dict[str, object] = field(default_factory=dict)

    @property
    def cli(self) -> list[str]:
        return [sys.executable, "-m", self.package]


@dataclass
class Scenario:
    """A broker/backend pair for both systems, a result counter and a reset."""

    name: str
    systems: list[System]
    count_done: Callable[[], int]
    reset: Callable[[], None] = lambda: None


@dataclass
class Row:
    scenario: str
    system: str
    pool: str
    enqueue: float | None = None
    drain: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None


@contextmanager
def workdir(system: System) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        path = Path(tmp)
        (path / "benchtasks.py").write_text(
            APP.format(
                package=system.package,
                broker=system.broker,
                backend=system.backend,
                settings=system.settings,
            )
        )
        yield path


def _env(path: Path) -> dict[str, str]:
    """The bench project first, then any PYTHONPATH given (to measure another checkout),
    then this checkout."""
    extra = os.environ.get("PYTHONPATH")
    paths = [str(path), *([extra] if extra else []), str(REPO)]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


def _client(path: Path, code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=path,
        capture_output=True,
        text=True,
        check=False,
        env=_env(path),
        timeout=900,
    )
    if out.returncode:
        raise RuntimeError(f"client failed:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]


@contextmanager
def worker(path: Path, system: System, pool: str, concurrency: int = 2) -> Iterator[None]:
    cmd = [*system.cli, "-A", "benchtasks", "worker", "-P", pool, "-c", str(concurrency)]
    proc = subprocess.Popen(
        [*cmd, "-l", "warning"],
        cwd=path,
        env=_env(path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def enqueue_time(path: Path, n: int) -> float:
    """Seconds one client takes for ``n`` calls of ``noop.delay``."""
    code = f"""
        import time
        from benchtasks import noop
        noop.delay(-1)
        t = time.perf_counter()
        for i in range({n}):
            noop.delay(i)
        print(time.perf_counter() - t)
    """
    return float(_client(path, code))


def drain_time(
    path: Path, system: System, scenario: Scenario, pool: str, n: int
) -> tuple[int, float]:
    """Queue ``n`` (+1 warm-up) tasks, start a worker, time first to last stored result:
    (results counted, seconds)."""
    enqueue_time(path, n)
    with worker(path, system, pool):
        deadline = time.monotonic() + 900
        while scenario.count_done() < 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{system.label} {pool}: worker never stored a result")
            time.sleep(0.005)
        start, first = time.perf_counter(), scenario.count_done()
        while (done := scenario.count_done()) < n + 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{system.label} {pool}: drained only {done} of {n + 1}")
            time.sleep(0.01)
        return done - first, time.perf_counter() - start


def round_trip_samples(path: Path, system: System, pool: str, n: int) -> list[float]:
    """``n`` round trips (after as many, up to 100, to warm up) against a fresh worker, in
    milliseconds."""
    code = f"""
        import time
        from benchtasks import noop
        noop.delay(-1).get(timeout=60)
        for i in range({min(100, n)}):
            noop.delay(i).get(timeout=30)
        samples = []
        for i in range({n}):
            t = time.perf_counter()
            noop.delay(i).get(timeout=30)
            samples.append(time.perf_counter() - t)
        print(" ".join(f"{{s * 1000:.4f}}" for s in samples))
    """
    with worker(path, system, pool):
        return [float(x) for x in _client(path, code).split()]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def run_scenario(
    scenario: Scenario,
    *,
    tasks: int,
    pools: tuple[str, ...] = ("prefork", "threads"),
    round_trips: int = 0,
    rounds: int = 3,
) -> list[Row]:
    """Every measure in ``rounds`` alternating rounds (each system and pool in turn, with a
    fresh worker); rates are totals over all rounds, latencies over all samples. With
    ``tasks=0`` only round trips are measured (a backend whose results cannot be counted)."""
    rounds = max(1, rounds)
    keys = [(system, pool) for system in scenario.systems for pool in pools]
    enqueued = {(s.label, p): [0, 0.0] for s, p in keys}  # calls, seconds
    drained = {(s.label, p): [0, 0.0] for s, p in keys}  # results, seconds
    samples: dict[tuple[str, str], list[float]] = {(s.label, p): [] for s, p in keys}
    per_round = max(1, tasks // rounds)
    for number in range(rounds):
        for system, pool in keys:
            key = (system.label, pool)
            scenario.reset()
            with workdir(system) as path:
                if tasks:
                    enqueued[key][0] += per_round
                    enqueued[key][1] += enqueue_time(path, per_round)
                    scenario.reset()
                    count, seconds = drain_time(path, system, scenario, pool, per_round)
                    drained[key][0] += count
                    drained[key][1] += seconds
                    scenario.reset()
                if round_trips:
                    n = max(1, round_trips // rounds)
                    samples[key] += round_trip_samples(path, system, pool, n)
                    scenario.reset()
        print(f"  {scenario.name}: round {number + 1} of {rounds} measured", file=sys.stderr)
    rows = []
    for system, pool in keys:
        key = (system.label, pool)
        row = Row(scenario.name, system.label, pool)
        row.enqueue = enqueued[key][0] / enqueued[key][1] if enqueued[key][1] else None
        row.drain = drained[key][0] / drained[key][1] if drained[key][1] else None
        if samples[key]:
            row.p50_ms = percentile(samples[key], 0.5)
            row.p99_ms = percentile(samples[key], 0.99)
        rows.append(row)
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_rows(rows: list[Row], title: str) -> None:
    """A table, then celeriac/celery ratios per scenario and pool."""
    print(title)
    header = f"{'scenario':<12}{'system':<12}{'pool':<9}{'enqueue/s':>11}{'drain/s':>10}"
    print(header + f"{'rt p50 ms':>11}{'rt p99 ms':>11}")
    for r in rows:
        print(
            f"{r.scenario:<12}{r.system:<12}{r.pool:<9}{_fmt(r.enqueue, ',.0f'):>11}"
            f"{_fmt(r.drain, ',.0f'):>10}{_fmt(r.p50_ms, '.2f'):>11}{_fmt(r.p99_ms, '.2f'):>11}"
        )
    ours = {(r.scenario, r.pool): r for r in rows if r.system == "celeriac"}
    theirs = {(r.scenario, r.pool): r for r in rows if r.system == "celery"}
    for key in sorted(ours.keys() & theirs.keys()):
        a, b = ours[key], theirs[key]
        parts = []
        for name, x, y in (
            ("enqueue", a.enqueue, b.enqueue),
            ("drain", a.drain, b.drain),
            ("rt p50", a.p50_ms, b.p50_ms),
        ):
            if x and y:
                parts.append(f"{name} {x / y:.2f}x")
        print(f"celeriac/celery {key[0]} {key[1]}: " + ", ".join(parts))


def add_arguments(parser: argparse.ArgumentParser, *, tasks: int, round_trips: int) -> None:
    """The options every side-by-side benchmark script takes."""
    parser.add_argument("--tasks", type=int, default=tasks)
    parser.add_argument("--round-trips", type=int, default=round_trips)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds every measure is split into"
    )
    parser.add_argument("--pools", default="prefork,threads")
    parser.add_argument("--no-celery", action="store_true")


def compare(
    args: argparse.Namespace,
    name: str,
    broker: str,
    backend: str,
    count_done: Callable[[], int],
    reset: Callable[[], None],
    title: str,
    *,
    tasks: int | None = None,
) -> list[Row]:
    """Run ``name`` on celeriac (and, unless ``--no-celery``, on Celery with the same URLs)
    and print the table with ratios."""
    systems = [System("celeriac", "celeriac", broker, backend)]
    if not args.no_celery:
        systems.append(System("celery", "celery", broker, backend))
    rows = run_scenario(
        Scenario(name, systems, count_done, reset),
        tasks=args.tasks if tasks is None else tasks,
        pools=tuple(args.pools.split(",")),
        round_trips=args.round_trips,
        rounds=args.rounds,
    )
    print_rows(rows, title)
    return rows
