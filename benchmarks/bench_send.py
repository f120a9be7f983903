"""The client's publish path: ``delay()`` against a bare LPUSH, and bulk sends.

    .venv/bin/python benchmarks/bench_send.py [--calls 20000] [--bulk 20000] [--rounds 3]
        [--brokers redis,sqlite,postgresql,amqp] [--no-celery]

Per broker, in one client process each (alternating rounds, summed):

* ``delay/s``: ``noop.delay(i)`` calls per second;
* ``bare LPUSH/s`` (Redis only): redis-py ``LPUSH`` of the very bytes ``delay()`` sent, from
  the same process, and the ratio ``delay / LPUSH``;
* ``bulk/s``: messages per second of one bulk send of ``--bulk`` tasks: celeriac's
  ``app.send_many`` of signatures, Celery's ``group(...).apply_async()`` (Celery has no bulk
  send; a group is its closest).

Redis uses database 8 on 127.0.0.1:6379 (its keys are deleted after each round); SQLite a
temporary file; PostgreSQL a database of its own (dropped at the end); RabbitMQ a vhost of its
own (deleted at the end). Nothing consumes: only the sending side is measured.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import System, _client, workdir

REDIS = "redis://127.0.0.1:6379/8"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"

DELAY = """
    import time
    from benchtasks import noop, app
    noop.delay(-1)
    t = time.perf_counter()
    for i in range({n}):
        noop.delay(i)
    elapsed = time.perf_counter() - t
    bare = 0.0
    if {bare!r}:
        import redis
        client = redis.Redis.from_url({url!r})
        raw = client.lindex("celery", 0)
        t = time.perf_counter()
        for i in range({n}):
            client.lpush("bench-bare", raw)
        bare = time.perf_counter() - t
        client.delete("bench-bare")
    print(elapsed, bare)
"""

BULK = """
    import time
    from benchtasks import noop, app
    from {package} import group
    noop.delay(-1)
    sigs = [noop.s(i) for i in range({n})]
    t = time.perf_counter()
    if {package!r} == "celeriac" and hasattr(app, "send_many"):  # (older trees: a group)
        app.send_many(sigs)
    else:
        group(sigs).apply_async()
    print(time.perf_counter() - t)
"""


def _redis_reset() -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        keys = list(client.scan_iter(count=5000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


def _brokers(
    names: list[str],
) -> dict[str, tuple[str, str, Callable[[], None], Callable[[], None]]]:
    """name -> (celeriac broker URL, Celery broker URL, reset, teardown)."""
    found: dict[str, tuple[str, str, Callable[[], None], Callable[[], None]]] = {}
    if "redis" in names:
        found["redis"] = (REDIS, REDIS, _redis_reset, _redis_reset)
    if "sqlite" in names:
        tmp = Path(tempfile.mkdtemp(prefix="bench-send-"))

        def sqlite_reset() -> None:
            for path in tmp.iterdir():
                path.unlink()

        sqlite_url = f"sqlite:///{tmp}/broker.sqlite"
        found["sqlite"] = (sqlite_url, f"sqla+{sqlite_url}", sqlite_reset, sqlite_reset)
    if "postgresql" in names:
        import psycopg

        name = f"celeriac_bench_send_{os.getpid()}"
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        pg_url = f"{PG_SERVER}/{name}"

        def pg_reset() -> None:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                for table in ("celeriac.messages", "kombu_message"):
                    if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() != (None,):
                        conn.execute(f"TRUNCATE {table}")

        def pg_drop() -> None:
            with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

        celery_url = "sqla+" + pg_url.replace("postgresql://", "postgresql+psycopg://")
        found["postgresql"] = (pg_url, celery_url, pg_reset, pg_drop)
    if "amqp" in names:
        vhost = f"bench-send-{os.getpid()}"
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
        subprocess.run(
            ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
            check=True,
        )

        def amqp_reset() -> None:
            subprocess.run(
                ["rabbitmqctl", "-q", "purge_queue", "-p", vhost, "celery"],
                check=False,
                capture_output=True,
            )

        def amqp_drop() -> None:
            subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)

        amqp_url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
        found["amqp"] = (amqp_url, amqp_url, amqp_reset, amqp_drop)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--bulk", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--brokers", default="redis,sqlite,postgresql,amqp")
    parser.add_argument("--no-celery", action="store_true")
    args = parser.parse_args()
    brokers = _brokers(args.brokers.split(","))
    packages = ["celeriac"] + ([] if args.no_celery else ["celery"])
    per_round = max(1, args.calls // args.rounds)
    bulk_round = max(1, args.bulk // args.rounds)
    rows = []
    try:
        for broker, (ours, theirs, reset, _drop) in brokers.items():
            totals = {p: [0.0, 0.0, 0.0] for p in packages}  # delay s, bare s, bulk s
            for _ in range(args.rounds):
                for package in packages:
                    url = ours if package == "celeriac" else theirs
                    system = System(package, package, url, "disabled://")
                    system.settings = {"task_ignore_result": True}
                    with workdir(system) as path:
                        reset()
                        code = DELAY.format(n=per_round, bare=broker == "redis", url=url)
                        delay_s, bare_s = map(float, _client(path, code).split())
                        reset()
                        bulk_s = float(_client(path, BULK.format(n=bulk_round, package=package)))
                        reset()
                    totals[package][0] += delay_s
                    totals[package][1] += bare_s
                    totals[package][2] += bulk_s
                print(f"  {broker}: round measured", file=sys.stderr)
            for package in packages:
                delay_s, bare_s, bulk_s = totals[package]
                calls = per_round * args.rounds
                rows.append(
                    (
                        broker,
                        package,
                        calls / delay_s,
                        calls / bare_s if bare_s else None,
                        bulk_round * args.rounds / bulk_s,
                    )
                )
    finally:
        for _ours, _theirs, _reset, drop in brokers.values():
            drop()
    print(f"{args.calls} delay() calls, bulk sends of {args.bulk} tasks ({args.rounds} rounds)")
    print(f"{'broker':<12}{'system':<10}{'delay/s':>10}{'LPUSH/s':>10}{'ratio':>8}{'bulk/s':>10}")
    for broker, package, delay, bare, bulk in rows:
        bare_text = f"{bare:>10,.0f}{delay / bare:>8.2f}" if bare else f"{'-':>10}{'-':>8}"
        print(f"{broker:<12}{package:<10}{delay:>10,.0f}{bare_text}{bulk:>10,.0f}")


if __name__ == "__main__":
    main()
