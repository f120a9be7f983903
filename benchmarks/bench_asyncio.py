"""1,000 tasks that each ``await asyncio.sleep(0.1)``, on ``-P asyncio -c 1000``.

Run: ``.venv/bin/python benchmarks/bench_asyncio.py [--tasks 1000] [--broker URL]``.
Prints the wall time from the first ``delay()`` to the last stored result (default broker
and result store: SQLite files in a temporary directory). There is no Celery row: Celery
has no asyncio pool (its closest option, ``-P gevent``/``eventlet``, needs monkey-patching
and does not run ``async def`` tasks).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

APP = textwrap.dedent(
    """
    import asyncio
    from celeriac import Celery

    app = Celery("bench_aio", broker={broker!r}, backend={backend!r})

    @app.task
    async def nap(i):
        await asyncio.sleep(0.1)
        return i
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--broker", default=None)
    parser.add_argument("--backend", default=None)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        broker = opts.broker or f"sqlite:///{path}/broker.sqlite"
        backend = opts.backend or f"db+sqlite:///{path}/results.sqlite"
        (path / "bench_aio.py").write_text(APP.format(broker=broker, backend=backend))
        sys.path.insert(0, str(path))
        import bench_aio  # type: ignore[import-not-found]

        app = bench_aio.app
        app.backend.get_state("warm-up")  # create the files before the worker opens them
        log = (path / "worker.log").open("wb")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([tmp, os.getcwd()])}
        cmd = [sys.executable, "-m", "celeriac", "-A", "bench_aio", "worker", "-P", "asyncio"]
        cmd += ["-c", str(opts.tasks), "-l", "info"]
        worker = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while b" ready." not in (path / "worker.log").read_bytes():
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise SystemExit((path / "worker.log").read_text())
                time.sleep(0.05)
            start = time.perf_counter()
            results = [bench_aio.nap.delay(i) for i in range(opts.tasks)]
            sent = time.perf_counter() - start
            values = [r.get(timeout=60) for r in results]
            elapsed = time.perf_counter() - start
        finally:
            worker.terminate()
            worker.wait(30)
        assert values == list(range(opts.tasks))
    print(f"asyncio pool, {opts.tasks} tasks x await asyncio.sleep(0.1), -c {opts.tasks}")
    print(f"  broker {broker.split(':')[0]}, enqueue {sent:.2f} s")
    print(f"  celeriac: {elapsed:.2f} s from first delay() to last result")
    print("  Celery:   n/a (Celery has no asyncio pool; async def tasks are not supported)")


if __name__ == "__main__":
    main()
