"""Idle CPU on the embedded default: a worker and a client waiting for a result, nothing else.

    .venv/bin/python benchmarks/bench_idle.py [--seconds 30] [--pool prefork] [--no-celery]

Starts ``worker -P prefork -c 2`` in a temporary directory (the embedded SQLite broker and
store; Celery: ``sqla+sqlite`` and ``db+sqlite`` files there) and a client blocked in
``.get()`` on a task sent to a queue no worker reads, lets both settle for 5 s, then reads the
CPU time (user + system, from ``/proc``) each process tree uses over ``--seconds``. Prints the
share of one core.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import System, _env, workdir

CLIENT = """
from benchtasks import noop
try:
    noop.apply_async((1,), queue="nobody-reads-this").get(timeout={timeout})
except Exception:
    pass
"""


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def _cpu(pids: list[int]) -> float:
    """Seconds of CPU (user + system) the processes have used."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def measure(system: System, pool: str, seconds: float) -> tuple[float, float]:
    """(worker share of a core, client share of a core)."""
    with workdir(system) as path:
        env = _env(path)
        worker = subprocess.Popen(
            [*system.cli, "-A", "benchtasks", "worker", "-P", pool, "-c", "2", "-l", "warning"],
            cwd=path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(3)  # the worker makes the files first (no "new broker file" warning)
        code = CLIENT.format(timeout=seconds + 60)
        client = subprocess.Popen([sys.executable, "-c", code], cwd=path, env=env)
        try:
            time.sleep(5)  # start-up and the first polls settle
            workers, clients = _tree(worker.pid), _tree(client.pid)
            w0, c0, t0 = _cpu(workers), _cpu(clients), time.monotonic()
            each = {pid: _cpu([pid]) for pid in workers}
            time.sleep(seconds)
            elapsed = time.monotonic() - t0
            if os.environ.get("BENCH_IDLE_EACH"):
                for pid, before in each.items():
                    name = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:60]
                    print(pid, f"{(_cpu([pid]) - before) / elapsed * 100:.2f}%", name.decode())
            return (_cpu(workers) - w0) / elapsed, (_cpu(clients) - c0) / elapsed
        finally:
            for proc in (client, worker):
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--pool", default="prefork")
    parser.add_argument("--no-celery", action="store_true")
    args = parser.parse_args()
    systems = [System("celeriac", "celeriac", "", "")]
    if not args.no_celery:
        systems.append(
            System(
                "celery", "celery", "sqla+sqlite:///broker.sqlite", "db+sqlite:///results.sqlite"
            )
        )
    print(f"idle for {args.seconds:.0f} s: -P {args.pool} -c 2 worker and a client in get()")
    print(f"{'system':<10}{'worker % core':>15}{'client % core':>15}")
    for system in systems:
        worker, client = measure(system, args.pool, args.seconds)
        print(f"{system.label:<10}{worker * 100:>15.2f}{client * 100:>15.2f}")


if __name__ == "__main__":
    main()
