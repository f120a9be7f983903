"""Throughput of the embedded SQLite broker: enqueue rate and drain rate (results stored).

    .venv/bin/python benchmarks/bench.py [--tasks 10000] [--celery]

Prints one row per measurement. With ``--celery`` the same workload runs on real Celery
(SQLAlchemy/SQLite broker ``sqla+sqlite://`` and ``db+sqlite://`` results, the closest Celery
has to an embedded default), installed into ``.bench-celery-venv`` on first use, so the two
are measured side by side on this machine in one run.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASKS_MODULE = textwrap.dedent(
    """
    from {pkg} import Celery
    app = Celery("benchtasks", broker={broker!r}, backend={backend!r})
    app.conf.worker_prefetch_multiplier = {prefetch}

    @app.task
    def noop(i):
        return i
    """
)


def _write_app(workdir: Path, pkg: str, prefetch: int) -> None:
    if pkg == "celeriac":
        broker, backend = f"sqlite:///{workdir}/broker.sqlite", f"db+sqlite:///{workdir}/r.sqlite"
    else:
        broker, backend = (
            f"sqla+sqlite:///{workdir}/broker.sqlite",
            f"db+sqlite:///{workdir}/r.sqlite",
        )
    (workdir / "benchtasks.py").write_text(
        TASKS_MODULE.format(pkg=pkg, broker=broker, backend=backend, prefetch=prefetch)
    )


def _count_done(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            row = conn.execute(
                "SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'"
            ).fetchone()
            return int(row[0])
    except sqlite3.OperationalError:
        return 0


def run(pkg: str, python: str, cli: list[str], pool: str, n: int) -> tuple[float, float]:
    """Enqueue ``n`` tasks, then start a worker and time until every result is stored."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        _write_app(workdir, pkg, prefetch=16 if pkg == "celeriac" else 4)
        enqueue = textwrap.dedent(
            f"""
            import time
            from benchtasks import noop
            noop.delay(-1)
            t = time.perf_counter()
            for i in range({n}):
                noop.delay(i)
            print(time.perf_counter() - t)
            """
        )
        out = subprocess.run(
            [python, "-c", enqueue], cwd=workdir, capture_output=True, text=True, check=True
        )
        enqueue_rate = n / float(out.stdout.strip().splitlines()[-1])
        env = dict(os.environ, PYTHONPATH=str(workdir))
        worker = subprocess.Popen(
            [*cli, "-A", "benchtasks", "worker", "-P", pool, "-c", "2", "-l", "warning"],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            db = workdir / "r.sqlite"
            deadline = time.monotonic() + 600
            while _count_done(db) < 1:  # the worker is up once the first result lands
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError(f"{pkg} worker did not start")
                time.sleep(0.01)
            start, first = time.perf_counter(), _count_done(db)
            while (done := _count_done(db)) < n + 1:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{pkg} drained only {done} of {n + 1}")
                time.sleep(0.02)
            drain_rate = (done - first) / (time.perf_counter() - start)
        finally:
            worker.terminate()
            worker.wait(60)
    return enqueue_rate, drain_rate


def _celery_python() -> str:
    venv = ROOT / ".bench-celery-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "celery==5.7.0", "sqlalchemy"],
            check=True,
        )
    return str(python)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--celery", action="store_true", help="also measure real Celery")
    args = parser.parse_args()
    rows: list[tuple[str, str, float, float]] = []
    ours = [sys.executable, "-m", "celeriac"]
    for pool in ("prefork", "threads"):
        enq, drain = run("celeriac", sys.executable, ours, pool, args.tasks)
        rows.append(("celeriac (SQLite)", pool, enq, drain))
    if args.celery:
        python = _celery_python()
        for pool in ("prefork", "threads"):
            enq, drain = run("celery", python, [python, "-m", "celery"], pool, args.tasks)
            rows.append(("celery (sqla+sqlite)", pool, enq, drain))
    print(f"{args.tasks} no-op tasks, -c 2, results stored; 2-core machine")
    print(f"{'system':<22}{'pool':<10}{'enqueue/s':>12}{'drain/s':>12}")
    for system, pool, enq, drain in rows:
        print(f"{system:<22}{pool:<10}{enq:>12,.0f}{drain:>12,.0f}")


if __name__ == "__main__":
    main()
