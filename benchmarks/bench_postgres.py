"""PostgreSQL rows: celeriac's ``postgresql://`` broker and ``db+postgresql://`` results, side
by side with Celery on kombu's ``sqla+postgresql://`` transport and its database backend.

Run: ``.venv/bin/python benchmarks/bench_postgres.py [--tasks 2000] [--pools prefork,threads]
[--round-trips 200] [--prefetch-multiplier 8]``. A database ``celeriac_bench_<pid>`` is
created on the local server (``--server``) and dropped at the end.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import psycopg
from harness import Scenario, System, print_rows, run_scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--pools", default="prefork,threads")
    parser.add_argument("--round-trips", type=int, default=200)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--only", choices=["celeriac", "celery"], default=None)
    parser.add_argument(
        "--prefetch-multiplier",
        type=int,
        default=None,
        help="worker_prefetch_multiplier for both systems (default: theirs, 4)",
    )
    opts = parser.parse_args()
    name = f"celeriac_bench_{os.getpid()}"
    with psycopg.connect(f"{opts.server}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = f"{opts.server}/{name}"
    settings: dict[str, object] = {}
    if opts.prefetch_multiplier is not None:
        settings["worker_prefetch_multiplier"] = opts.prefetch_multiplier
    try:
        systems = [
            System("celeriac", "celeriac", url, f"db+{url}", dict(settings)),
            System(
                "celery",
                "celery",
                "sqla+" + url.replace("postgresql://", "postgresql+psycopg://"),
                "db+" + url.replace("postgresql://", "postgresql+psycopg://"),
                dict(settings),
            ),
        ]
        if opts.only:
            systems = [s for s in systems if s.label == opts.only]
        scenario = Scenario("postgres", systems, lambda: _count_done(url), lambda: _reset(url))
        rows = run_scenario(
            scenario,
            tasks=opts.tasks,
            pools=tuple(opts.pools.split(",")),
            round_trips=opts.round_trips,
        )
        window = (
            f", worker_prefetch_multiplier={opts.prefetch_multiplier}"
            if opts.prefetch_multiplier is not None
            else ""
        )
        print_rows(rows, f"PostgreSQL broker + results, {opts.tasks} no-op tasks{window}")
    finally:
        for conn in _counter.values():
            conn.close()
        with psycopg.connect(f"{opts.server}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


_counter: dict[str, psycopg.Connection[tuple[Any, ...]]] = {}


def _count_done(url: str) -> int:
    """Stored successes, read on one connection kept open: the drain is polled every 10 ms,
    and a new connection each time (a server process forked per poll) took CPU from the
    workers measured, both systems alike."""
    conn = _counter.get(url)
    if conn is None or conn.closed:
        conn = _counter[url] = psycopg.connect(url, autocommit=True)
    if conn.execute("SELECT to_regclass('celery_taskmeta')").fetchone() == (None,):
        return 0
    row = conn.execute("SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'")
    return int(row.fetchone()[0])  # type: ignore[index]


def _reset(url: str) -> None:
    """Empty every table both systems use (results, celeriac's and kombu's messages)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("celery_taskmeta", "celeriac.messages", "kombu_message"):
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() != (None,):
                conn.execute(f"TRUNCATE {table}")


if __name__ == "__main__":
    main()
