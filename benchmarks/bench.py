"""The embedded SQLite broker: enqueue and drain rates, side by side with Celery.

    .venv/bin/python benchmarks/bench.py [--tasks 10000] [--round-trips 200] [--no-celery]

Celery has no embedded broker; its closest is kombu's SQLAlchemy transport on a SQLite file
(``sqla+sqlite://``) with the ``db+sqlite://`` result backend, which is what it runs here.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Scenario, System, print_rows, run_scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--round-trips", type=int, default=200)
    parser.add_argument("--no-celery", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-sqlite-"))
    broker, results = tmp / "broker.sqlite", tmp / "results.sqlite"

    def count_done() -> int:
        try:
            with sqlite3.connect(results, timeout=30) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'"
                ).fetchone()
                return int(row[0])
        except sqlite3.OperationalError:
            return 0

    def reset() -> None:
        for path in tmp.iterdir():
            path.unlink()

    systems = [System("celeriac", "celeriac", f"sqlite:///{broker}", f"db+sqlite:///{results}")]
    if not args.no_celery:
        systems.append(
            System("celery", "celery", f"sqla+sqlite:///{broker}", f"db+sqlite:///{results}")
        )
    scenario = Scenario("SQLite", systems, count_done, reset)
    rows = run_scenario(scenario, tasks=args.tasks, round_trips=args.round_trips)
    print_rows(
        rows,
        f"{args.tasks} no-op tasks, -c 2, results stored; {args.round_trips} delay().get() "
        "round trips; 2-core machine",
    )


if __name__ == "__main__":
    main()
