"""Redis broker + Redis results: celeriac and Celery 5.7 side by side, same Redis, same tasks.

    .venv/bin/python benchmarks/bench_redis.py [--tasks 20000] [--round-trips 1000] [--rounds 3]
        [--pools prefork,threads] [--no-celery]

Uses Redis databases 8 (broker) and 9 (results) on 127.0.0.1:6379; only their keys are
deleted between runs. Drain counts stored results with DBSIZE on the results database.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import add_arguments, compare

HOST, PORT, BROKER_DB, RESULTS_DB = "127.0.0.1", 6379, 8, 9


def _clear(db: int) -> None:
    client = redis.Redis(host=HOST, port=PORT, db=db)
    try:
        keys = list(client.scan_iter(count=5000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser, tasks=20_000, round_trips=1_000)
    args = parser.parse_args()
    broker = f"redis://{HOST}:{PORT}/{BROKER_DB}"
    backend = f"redis://{HOST}:{PORT}/{RESULTS_DB}"
    results = redis.Redis(host=HOST, port=PORT, db=RESULTS_DB)

    def count_done() -> int:
        return int(results.dbsize())

    def reset() -> None:
        _clear(BROKER_DB)
        _clear(RESULTS_DB)

    compare(
        args,
        "Redis",
        broker,
        backend,
        count_done,
        reset,
        f"{args.tasks} no-op tasks, -c 2, results stored in Redis; 2-core machine",
    )


if __name__ == "__main__":
    main()
