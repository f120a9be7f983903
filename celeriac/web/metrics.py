"""Prometheus metrics at ``/metrics``, under Flower's metric names and labels.

Counted from the events as they arrive: ``flower_events_total`` (task events by worker, type
and task name), ``flower_task_runtime_seconds`` (a histogram with Prometheus' default
buckets), ``flower_task_prefetch_time_seconds``, ``flower_worker_prefetched_tasks``,
``flower_worker_online`` and ``flower_worker_number_of_currently_executing_tasks``. The text
format is written here (no client library needed).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from celeriac.events.state import Task

#: prometheus_client's default histogram buckets (what Flower's runtime histogram uses).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_ONLINE = {"worker-online": 1.0, "worker-heartbeat": 1.0, "worker-offline": 0.0}

_Labels = tuple[tuple[str, str], ...]


class _Histogram:
    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * len(BUCKETS)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.sum += value
        for index, bound in enumerate(BUCKETS):
            if value <= bound:
                self.buckets[index] += 1


class Metrics:
    """Feed with :meth:`observe` (each event, with the task it updated), read :meth:`render`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: defaultdict[_Labels, float] = defaultdict(float)
        self.runtime: defaultdict[_Labels, _Histogram] = defaultdict(_Histogram)
        self.prefetch_time: dict[_Labels, float] = {}
        self.prefetched: defaultdict[_Labels, float] = defaultdict(float)
        self.online: dict[_Labels, float] = {}
        self.executing: dict[_Labels, float] = {}

    def observe(self, event: dict[str, Any], task: Task | None) -> None:
        type_ = str(event.get("type", ""))
        worker = str(event.get("hostname", ""))
        with self._lock:
            if type_.startswith("task-"):
                self._task(type_, worker, event, task)
                return
            if type_ in _ONLINE:
                self.online[(("worker", worker),)] = _ONLINE[type_]
            active = event.get("active")
            if isinstance(active, int | float):
                self.executing[(("worker", worker),)] = float(active)

    def _task(self, type_: str, worker: str, event: dict[str, Any], task: Task | None) -> None:
        name = str(event.get("name") or (task.name if task is not None else None) or "")
        self.events[(("task", name), ("type", type_), ("worker", worker))] += 1
        labels = (("task", name), ("worker", worker))
        runtime = event.get("runtime")
        if isinstance(runtime, int | float) and runtime:
            self.runtime[labels].observe(float(runtime))
        if task is None or task.eta or not task.received:
            return  # prefetching means nothing for a task with an ETA
        if type_ == "task-received":
            self.prefetched[labels] += 1
        elif type_ == "task-started" and task.started:
            self.prefetch_time[labels] = max(0.0, task.started - task.received)
            self.prefetched[labels] -= 1
        elif type_ in ("task-succeeded", "task-failed") and task.started:
            self.prefetch_time[labels] = 0.0
        elif type_ in ("task-revoked", "task-rejected") and not task.started:
            self.prefetched[labels] -= 1

    def runtime_snapshot(self) -> list[tuple[_Labels, _Histogram]]:
        """The runtime histograms as they are now (copies), by ``(task, worker)`` labels."""
        with self._lock:
            copies = []
            for labels, histogram in self.runtime.items():
                copy = _Histogram()
                copy.buckets = list(histogram.buckets)
                copy.count = histogram.count
                copy.sum = histogram.sum
                copies.append((labels, copy))
            return copies

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        out: list[str] = []
        with self._lock:
            _family(out, "flower_events_total", "counter", "Number of events", self.events)
            out.append("# HELP flower_task_runtime_seconds Task runtime")
            out.append("# TYPE flower_task_runtime_seconds histogram")
            for labels, histogram in self.runtime.items():
                for bound, count in zip(BUCKETS, histogram.buckets, strict=True):
                    out.append(
                        _line(
                            "flower_task_runtime_seconds_bucket",
                            (("le", repr(float(bound))), *labels),
                            count,
                        )
                    )
                out.append(
                    _line(
                        "flower_task_runtime_seconds_bucket",
                        (("le", "+Inf"), *labels),
                        histogram.count,
                    )
                )
                out.append(_line("flower_task_runtime_seconds_count", labels, histogram.count))
                out.append(_line("flower_task_runtime_seconds_sum", labels, histogram.sum))
            _family(
                out,
                "flower_task_prefetch_time_seconds",
                "gauge",
                "The time the task spent waiting at the celery worker to be executed.",
                self.prefetch_time,
            )
            _family(
                out,
                "flower_worker_prefetched_tasks",
                "gauge",
                "Number of tasks of given type prefetched at a worker",
                self.prefetched,
            )
            _family(out, "flower_worker_online", "gauge", "Worker online status", self.online)
            _family(
                out,
                "flower_worker_number_of_currently_executing_tasks",
                "gauge",
                "Number of tasks currently executing at a worker",
                self.executing,
            )
        return "\n".join(out) + "\n"


def _family(
    out: list[str], name: str, kind: str, help_: str, samples: dict[_Labels, float]
) -> None:
    out.append(f"# HELP {name} {help_}")
    out.append(f"# TYPE {name} {kind}")
    out.extend(_line(name, labels, value) for labels, value in samples.items())


def _line(name: str, labels: _Labels, value: float) -> str:
    text = ",".join(f'{key}="{_escape(val)}"' for key, val in labels)
    return f"{name}{{{text}}} {float(value)!r}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


__all__ = ["BUCKETS", "Metrics"]
