"""The web monitor at 100,000 tasks: event intake, memory, and page times.

    .venv/bin/python benchmarks/bench_monitor.py [--tasks 100000] [--max-tasks N] [--repeat 20]

Feeds ``--tasks`` tasks (received, started, succeeded or failed: three events each) into a
Monitor as its receiver would, writing the history as the monitor's flusher does (bounded by
``--max-tasks``, as ``celeriac monitor --max-tasks``; the default keeps them all), printing
the resident memory at each tenth of the way, then serves the monitor with uvicorn on
loopback and times each page and API listing over HTTP (median and 95th percentile of
``--repeat`` requests). The issue's target: the tasks page under 100 ms at 100,000 tasks,
memory bounded.
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from celeriac import Celery
from celeriac.web.monitor import Monitor
from celeriac.web.security import Access
from celeriac.web.server import create_app
from celeriac.web.store import TaskStore

NAMES = [f"bench.task{n}" for n in range(20)]
WORKERS = [f"w{n}@bench" for n in range(4)]


def rss_mb() -> float:
    """Peak resident memory so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident memory now (Linux), else the peak."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return rss_mb()
    return pages * resource.getpagesize() / 2**20


def feed(monitor: Monitor, tasks: int) -> float:
    start = time.perf_counter()
    tenth = max(1, tasks // 10)
    t0 = time.time() - tasks * 0.01
    for n in range(tasks):
        uuid = f"{n:08d}-0000-4000-8000-{n:012d}"
        at = t0 + n * 0.01
        worker = WORKERS[n % len(WORKERS)]
        common = {"uuid": uuid, "hostname": worker, "clock": n, "pid": 1, "utcoffset": 0}
        monitor.on_event(
            {"type": "task-received", "timestamp": at, "local_received": at,
             "name": NAMES[n % len(NAMES)], "args": f"({n}, 'order-{n}')",
             "kwargs": f"{{'order': {n}, 'n': {n % 7}}}",
             "retries": 0, "eta": None, "expires": None, "root_id": uuid, "parent_id": None,
             **common}
        )  # fmt: skip
        monitor.on_event({"type": "task-started", "timestamp": at + 0.001, **common})
        if n % 10 == 3:
            monitor.on_event(
                {"type": "task-failed", "timestamp": at + 0.005, "exception": "ValueError()",
                 "traceback": "Traceback...", **common}
            )  # fmt: skip
        else:
            monitor.on_event(
                {"type": "task-succeeded", "timestamp": at + 0.005, "result": str(n),
                 "runtime": 0.004, **common}
            )  # fmt: skip
        if n % 1000 == 999:
            monitor.flush()
        if n % tenth == tenth - 1:
            print(f"  {n + 1:>9,} tasks seen: RSS {current_rss_mb():5.0f} MB, "
                  f"{len(monitor.state.tasks):,} in memory, {len(monitor.store):,} in the "
                  "history")  # fmt: skip
    monitor.flush()
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--max-tasks", type=int, default=None, help="history bound")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    max_tasks = args.max_tasks or args.tasks
    tmp = Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    app = Celery("bench", broker=f"sqlite:///{tmp}/broker.sqlite")
    store = TaskStore(str(tmp / "history.sqlite"), max_tasks=max_tasks)
    monitor = Monitor(app, store)
    before = current_rss_mb()
    seconds = feed(monitor, args.tasks)
    events = args.tasks * 3
    print(f"intake: {events} events for {args.tasks} tasks in {seconds:.1f} s "
          f"({events / seconds:,.0f} events/s, history writes included)")  # fmt: skip
    print(f"memory: peak RSS {rss_mb():.0f} MB (started at {before:.0f} MB); "
          f"{len(monitor.state.tasks)} tasks in memory, {len(store)} in the history "
          f"({(tmp / 'history.sqlite').stat().st_size / 1e6:.0f} MB on disk)")  # fmt: skip

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(monitor, Access()), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    kept = args.tasks - min(max_tasks, args.tasks)  # the first task still in the history
    pick = kept + (args.tasks - kept) // 2
    middle = f"{pick:08d}"
    day = time.strftime("%Y-%m-%d", time.gmtime())
    pages = {
        "tasks page 1": "/tasks",
        "tasks page 1000": "/tasks?page=1000",
        "tasks state=FAILURE": "/tasks?state=FAILURE",
        "tasks by name": f"/tasks?taskname={NAMES[7]}",
        "tasks by worker, page 50": f"/tasks?workername={WORKERS[1]}&page=50",
        "tasks search id prefix": f"/tasks?search={middle}",
        "tasks search in args": f"/tasks?search=order-{kept + (args.tasks - kept) // 3}'",
        "tasks search, Flower's language": (
            f"/tasks?search=state:failure AND args:order-{pick + 3}'"
        ),
        "tasks search by name (scan)": "/tasks?search=name:task7",
        "tasks search kwargs pair": f"/tasks?search=kwargs:order={pick} OR kwargs:order=-1",
        "tasks search kwargs pair, 1/7": "/tasks?search=kwargs:n=1",
        "tasks search result (scan)": f"/tasks?search=result:{pick}",
        "tasks time range": f"/tasks?received_start={day} 00:00",
        "task detail": f"/task/{middle}-0000-4000-8000-{pick:012d}",
        "dashboard": "/",
        "api/tasks limit=50": "/api/tasks?limit=50",
        "api/tasks state+name limit=50": f"/api/tasks?state=SUCCESS&taskname={NAMES[4]}&limit=50",
    }
    print(f"\n{'page':34} {'median ms':>10} {'p95 ms':>8} {'found':>7}")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for label, path in pages.items():
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - start) * 1000)
                if response.status_code != 200:
                    sys.exit(f"{path}: HTTP {response.status_code}")
            p95 = sorted(times)[max(0, int(len(times) * 0.95) - 1)]
            found = re.search(r"(\d+) found", response.text)
            if path.startswith("/api/"):
                count = str(len(response.json()))
            else:
                count = found.group(1) if found else ""
            print(f"{label:34} {statistics.median(times):10.1f} {p95:8.1f} {count:>7}")
    server.should_exit = True
    thread.join(10)
    store.close()
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
