"""``python -m benchmarks.faults``: run the fault suite and print its table of figures.

Full scale by default (a 100,000-task soak, a 20,000-task kill run, 10,000 malformed messages);
``--short`` runs the sizes of the CI tests (``tests/faults/``). ``--only`` picks scenarios,
``--brokers`` picks brokers (default: every one each scenario applies to).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.faults import scenarios
from benchmarks.faults.harness import Figures, table
from benchmarks.faults.malformed import malformed

BROKERS = ["sqlite", "redis", "amqp", "postgres"]
NETWORKED = ["redis", "amqp", "postgres"]
LEASED = ["sqlite", "redis", "postgres", "amqp"]

#: scenario -> (brokers it applies to, full-scale run, short run)
Plan = dict[str, tuple[list[str], Callable[[str], Figures], Callable[[str], Figures]]]
PLAN: Plan = {
    "soak": (BROKERS, lambda k: scenarios.soak(k, 100_000), lambda k: scenarios.soak(k, 300)),
    "kill": (BROKERS, lambda k: scenarios.kill(k, 20_000, 10), lambda k: scenarios.kill(k, 600, 2)),
    "restart": (
        NETWORKED,
        lambda k: scenarios.outage(k, "restart", 5_000, 5),
        lambda k: scenarios.outage(k, "restart", 400, 3),
    ),
    "cut": (
        NETWORKED,
        lambda k: scenarios.outage(k, "cut", 5_000, 5),
        lambda k: scenarios.outage(k, "cut", 400, 3),
    ),
    "hold": (
        NETWORKED,
        lambda k: scenarios.outage(k, "hold", 5_000, 10),
        lambda k: scenarios.outage(k, "hold", 400, 6),
    ),
    "slow": (
        NETWORKED,
        lambda k: scenarios.outage(k, "slow", 2_000, 10),
        lambda k: scenarios.outage(k, "slow", 200, 3),
    ),
    "freeze": (LEASED, lambda k: scenarios.freeze(k, 2_000), lambda k: scenarios.freeze(k, 200)),
    "disk": (["sqlite"], lambda k: scenarios.disk_full(2_000), lambda k: scenarios.disk_full(200)),
    "malformed": (BROKERS, lambda k: malformed(k, 10_000), lambda k: malformed(k, 300)),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the CI sizes")
    parser.add_argument("--only", nargs="*", choices=sorted(PLAN), default=sorted(PLAN))
    parser.add_argument("--brokers", nargs="*", choices=BROKERS, default=BROKERS)
    args = parser.parse_args(argv)
    rows: list[Figures] = []
    for name in [n for n in PLAN if n in args.only]:
        kinds, full, short = PLAN[name]
        for kind in [k for k in kinds if k in args.brokers]:
            try:
                figures = (short if args.short else full)(kind)
            except Exception as exc:
                traceback.print_exc()
                figures = Figures(name, kind, notes=[f"FAILED: {type(exc).__name__}: {exc}"])
            rows.append(figures)
            print(figures.row(), flush=True)
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
