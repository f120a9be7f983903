"""The canvas: a chord of 1,000 no-op header tasks and a chain of 100, celeriac and Celery 5.7
side by side on the same Redis, and celeriac on its embedded SQLite default.

    .venv/bin/python benchmarks/bench_canvas.py [--header 1000] [--chain 100] [--rounds 3]
        [--pool prefork] [--no-celery] [--no-sqlite]

Each round starts a fresh worker (``-c 2``) per system, sends one warm-up chord, then times
(from the client, in its own process) one chord from the send to its body's result, and one
chain from the send to its last step's result. The rounds alternate the systems, so a slow
spell of this shared machine does not fall on one system only; the medians are printed.
Redis databases 12 (broker) and 7 (results) on 127.0.0.1:6379 are used; only their keys are
deleted between runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import System, _client, worker

HOST, PORT, BROKER_DB, RESULTS_DB = "127.0.0.1", 6379, 12, 7

APP = textwrap.dedent(
    """
    from {package} import Celery
    app = Celery("benchtasks", broker={broker!r}, backend={backend!r})

    @app.task
    def noop(i):
        return i

    @app.task
    def count(values):
        return len(values)
    """
)

CLIENT = """
    import time
    from {package} import chain, chord
    from benchtasks import count, noop

    assert chord(noop.s(i) for i in range(10))(count.s()).get(timeout=120) == 10  # warm-up
    started = time.perf_counter()
    result = chord(noop.s(i) for i in range({header}))(count.s())
    assert result.get(timeout=900) == {header}
    chord_s = time.perf_counter() - started
    steps = chain(noop.s(0), *[noop.s() for _ in range({chain} - 1)])
    started = time.perf_counter()
    assert steps.apply_async().get(timeout=900) == 0
    chain_s = time.perf_counter() - started
    print(chord_s, chain_s)
"""


def _clear(db: int) -> None:
    client = redis.Redis(host=HOST, port=PORT, db=db)
    try:
        keys = list(client.scan_iter(count=5000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


def measure(system: System, pool: str, header: int, length: int) -> tuple[float, float]:
    """One fresh worker of ``system``: (chord seconds, chain seconds)."""
    _clear(BROKER_DB)
    _clear(RESULTS_DB)
    with tempfile.TemporaryDirectory(prefix="bench-canvas-") as tmp:
        path = Path(tmp)
        broker = system.broker.replace("{dir}", tmp)
        backend = system.backend.replace("{dir}", tmp)
        app = APP.format(package=system.package, broker=broker, backend=backend)
        (path / "benchtasks.py").write_text(app)
        code = CLIENT.format(package=system.package, header=header, chain=length)
        with worker(path, system, pool):
            chord_s, chain_s = (float(x) for x in _client(path, code).split())
    return chord_s, chain_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--header", type=int, default=1000)
    parser.add_argument("--chain", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool", default="prefork")
    parser.add_argument("--no-celery", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    on_redis = (f"redis://{HOST}:{PORT}/{BROKER_DB}", f"redis://{HOST}:{PORT}/{RESULTS_DB}")
    systems = [System("celeriac redis", "celeriac", *on_redis)]
    if not args.no_celery:
        systems.append(System("celery redis", "celery", *on_redis))
    if not args.no_sqlite:
        sqlite = ("sqlite:///{dir}/broker.sqlite", "db+sqlite:///{dir}/results.sqlite")
        systems.append(System("celeriac sqlite", "celeriac", *sqlite))
    times: dict[str, list[tuple[float, float]]] = {s.label: [] for s in systems}
    for number in range(max(1, args.rounds)):
        for system in systems:
            times[system.label].append(measure(system, args.pool, args.header, args.chain))
        print(f"  round {number + 1} of {args.rounds} measured", file=sys.stderr)
    print(
        f"chord of {args.header} no-op header tasks, chain of {args.chain}; worker -P "
        f"{args.pool} -c 2; medians of {args.rounds} rounds; 2-core machine"
    )
    print(f"{'system':<18}{'chord s':>9}{'header tasks/s':>16}{'chain s':>9}{'steps/s':>9}")
    rates: dict[str, tuple[float, float]] = {}
    for label, samples in times.items():
        chord_s = statistics.median(s[0] for s in samples)
        chain_s = statistics.median(s[1] for s in samples)
        rates[label] = (args.header / chord_s, args.chain / chain_s)
        print(
            f"{label:<18}{chord_s:>9.3f}{rates[label][0]:>16,.0f}{chain_s:>9.3f}"
            f"{rates[label][1]:>9,.0f}"
        )
    if "celery redis" in rates:
        theirs = rates["celery redis"]
        for label in (label for label in rates if label != "celery redis"):
            ours = rates[label]
            print(
                f"{label} / celery redis: chord {ours[0] / theirs[0]:.2f}x, "
                f"chain {ours[1] / theirs[1]:.2f}x"
            )


if __name__ == "__main__":
    main()
