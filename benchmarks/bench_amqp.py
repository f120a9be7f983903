"""RabbitMQ broker: celeriac and Celery 5.7 side by side, same broker, same tasks.

    .venv/bin/python benchmarks/bench_amqp.py [--tasks 20000] [--round-trips 1000] [--rounds 3]
        [--pools prefork,threads] [--no-celery] [--rpc-round-trips 0]

Runs in a vhost of its own (created with rabbitmqctl, deleted afterwards). Drain and enqueue
store results in Redis database 10 on 127.0.0.1:6379 (counted with DBSIZE; only that
database's keys are deleted). With ``--rpc-round-trips N`` the round trip is also measured
with the rpc:// backend (results are messages: nothing to count, so no drain there).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import amqp
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import add_arguments, compare

HOST, AMQP_PORT, REDIS_PORT, RESULTS_DB = "127.0.0.1", 5672, 6379, 10


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True)


def _purge(vhost: str, queues: list[str]) -> None:
    conn = amqp.Connection(f"{HOST}:{AMQP_PORT}", virtual_host=vhost)
    conn.connect()
    try:
        channel = conn.channel()
        for queue in queues:
            channel.queue_delete(queue)
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser, tasks=20_000, round_trips=1_000)
    parser.add_argument("--rpc-round-trips", type=int, default=0)
    args = parser.parse_args()
    vhost = f"celeriac-bench-{os.getpid()}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        _run(args, vhost)
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def _run(args: argparse.Namespace, vhost: str) -> None:
    broker = f"amqp://guest:guest@{HOST}:{AMQP_PORT}/{vhost}"
    backend = f"redis://{HOST}:{REDIS_PORT}/{RESULTS_DB}"
    results = redis.Redis(host=HOST, port=REDIS_PORT, db=RESULTS_DB)

    def count_done() -> int:
        return int(results.dbsize())

    def reset() -> None:
        _purge(vhost, ["celery"])
        keys = list(results.scan_iter(count=5000))
        for start in range(0, len(keys), 1000):
            results.delete(*keys[start : start + 1000])

    compare(
        args,
        "RabbitMQ",
        broker,
        backend,
        count_done,
        reset,
        f"{args.tasks} no-op tasks, -c 2, RabbitMQ broker; 2-core machine",
    )
    if args.rpc_round_trips:
        args.round_trips = args.rpc_round_trips
        compare(
            args,
            "rpc",
            broker,
            "rpc://",
            count_done,
            lambda: _purge(vhost, ["celery"]),
            "RabbitMQ broker, rpc:// results: round trips only",
            tasks=0,
        )


if __name__ == "__main__":
    main()
