"""The in-memory cluster model built from events (Celery's ``celery.events.state``).

``State().event(event)`` keeps, per worker, its last heartbeats, load and counters (``alive``
while heartbeats keep coming), and per task its fields and state, with the history of its
states. Memory is bounded: the least recently updated workers and tasks beyond
``max_workers_in_memory`` / ``max_tasks_in_memory`` are forgotten. Events may arrive out of
order: a state that logically comes before the current one only fills in fields.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from typing import Any

from celeriac import states
from celeriac.events.event import HEARTBEAT_EXPIRE_WINDOW

#: Heartbeats remembered per worker (Celery keeps 4).
HEARTBEAT_HISTORY = 4
#: States remembered per task.
TASK_HISTORY = 16

TASK_EVENT_TO_STATE = {
    "sent": states.PENDING,
    "received": states.RECEIVED,
    "started": states.STARTED,
    "failed": states.FAILURE,
    "retried": states.RETRY,
    "succeeded": states.SUCCESS,
    "revoked": states.REVOKED,
    "rejected": states.REJECTED,
}
#: Fields an earlier event may still fill in once a later state is known.
MERGE_RULES = {
    states.RECEIVED: frozenset(
        {"name", "args", "kwargs", "parent_id", "root_id", "retries", "eta", "expires"}
    ),
    states.PENDING: frozenset(
        {
            "name",
            "args",
            "kwargs",
            "parent_id",
            "root_id",
            "retries",
            "eta",
            "expires",
            "queue",
            "exchange",
            "routing_key",
        }
    ),
}


class Worker:
    """One worker as its events describe it."""

    def __init__(self, hostname: str, **fields: Any) -> None:
        self.hostname = hostname
        self.pid: int | None = None
        self.freq = 60.0
        self.heartbeats: deque[float] = deque(maxlen=HEARTBEAT_HISTORY)
        self.clock = 0
        self.active: int | None = None
        self.processed: int | None = None
        self.loadavg: list[float] | None = None
        self.sw_ident: str | None = None
        self.sw_ver: str | None = None
        self.sw_sys: str | None = None
        self.__dict__.update(fields)

    def event(
        self,
        type_: str,
        timestamp: float | None = None,
        local_received: float | None = None,
        fields: dict[str, Any] | None = None,
    ) -> None:
        fields = dict(fields or {})
        for name in ("type", "timestamp", "local_received", "hostname", "utcoffset"):
            fields.pop(name, None)
        self.__dict__.update(fields)
        if type_ == "offline":
            self.heartbeats.clear()
        elif local_received is not None:
            self.heartbeats.append(local_received)

    @property
    def heartbeat_expires(self) -> float:
        if not self.heartbeats:
            return 0.0
        return self.heartbeats[-1] + float(self.freq) * (HEARTBEAT_EXPIRE_WINDOW / 100.0)

    @property
    def alive(self) -> bool:
        return bool(self.heartbeats) and time.time() < self.heartbeat_expires

    @property
    def status_string(self) -> str:
        return "ONLINE" if self.alive else "OFFLINE"

    @property
    def id(self) -> str:
        return self.hostname

    def as_dict(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "pid": self.pid,
            "freq": self.freq,
            "heartbeats": list(self.heartbeats),
            "clock": self.clock,
            "active": self.active,
            "processed": self.processed,
            "loadavg": self.loadavg,
            "sw_ident": self.sw_ident,
            "sw_ver": self.sw_ver,
            "sw_sys": self.sw_sys,
            "alive": self.alive,
        }

    def __repr__(self) -> str:
        return f"<Worker: {self.hostname} ({self.status_string} clock:{self.clock})>"


class Task:
    """One task as its events describe it; ``history`` lists ``(state, timestamp)``."""

    def __init__(self, uuid: str, **fields: Any) -> None:
        self.uuid = uuid
        self.name: str | None = None
        self.state: str = states.PENDING
        self.worker: Worker | None = None
        self.args: str | None = None
        self.kwargs: str | None = None
        self.result: str | None = None
        self.exception: str | None = None
        self.traceback: str | None = None
        self.runtime: float | None = None
        self.retries: int | None = None
        self.eta: str | None = None
        self.expires: str | None = None
        self.root_id: str | None = None
        self.parent_id: str | None = None
        self.queue: str | None = None
        self.exchange: str | None = None
        self.routing_key: str | None = None
        self.timestamp: float | None = None
        self.clock = 0
        self.sent: float | None = None
        self.received: float | None = None
        self.started: float | None = None
        self.succeeded: float | None = None
        self.failed: float | None = None
        self.retried: float | None = None
        self.revoked: float | None = None
        self.rejected: float | None = None
        self.history: deque[tuple[str, float | None]] = deque(maxlen=TASK_HISTORY)
        self.__dict__.update(fields)

    def event(
        self,
        type_: str,
        timestamp: float | None = None,
        local_received: float | None = None,
        fields: dict[str, Any] | None = None,
    ) -> None:
        fields = dict(fields or {})
        for name in ("type", "hostname", "utcoffset", "pid", "local_received", "uuid"):
            fields.pop(name, None)
        state = TASK_EVENT_TO_STATE.get(type_)
        if state is not None:
            setattr(self, type_, timestamp)
        else:
            state = type_.upper()  # a custom event (Task.send_event)
        self.history.append((state, timestamp))
        if (
            state != states.RETRY
            and self.state != states.RETRY
            and states.precedence(state) > states.precedence(self.state)
        ):
            # This state comes before the current one: keep the state, fill in fields.
            keep = MERGE_RULES.get(state)
            fields = {k: v for k, v in fields.items() if keep is not None and k in keep}
        else:
            fields.update(state=state, timestamp=timestamp)
        self.__dict__.update(fields)

    @property
    def ready(self) -> bool:
        return self.state in states.READY_STATES

    @property
    def id(self) -> str:
        return self.uuid

    def as_dict(self) -> dict[str, Any]:
        data = {
            k: v
            for k, v in self.__dict__.items()
            if k not in ("worker", "history") and not k.startswith("_")
        }
        data["worker"] = self.worker.hostname if self.worker is not None else None
        data["history"] = list(self.history)
        return data

    def __repr__(self) -> str:
        return f"<Task: {self.name}({self.uuid}) {self.state} clock:{self.clock}>"


class State:
    """Workers and tasks of a cluster, kept current by :meth:`event`."""

    def __init__(
        self,
        callback: Callable[[State, dict[str, Any]], Any] | None = None,
        max_workers_in_memory: int = 5000,
        max_tasks_in_memory: int = 10000,
    ) -> None:
        self.callback = callback
        self.max_workers_in_memory = max_workers_in_memory
        self.max_tasks_in_memory = max_tasks_in_memory
        self.workers: OrderedDict[str, Worker] = OrderedDict()
        self.tasks: OrderedDict[str, Task] = OrderedDict()
        self.event_count = 0
        self.task_count = 0
        self._mutex = threading.Lock()

    # -- feeding ---------------------------------------------------------------------------
    def event(self, event: dict[str, Any]) -> tuple[Any, str] | None:
        """Apply one event (as a receiver handler: ``handlers={"*": state.event}``)."""
        with self._mutex:
            result = self._event(event)
        if self.callback is not None:
            self.callback(self, event)
        return result

    def _event(self, event: dict[str, Any]) -> tuple[Any, str] | None:
        self.event_count += 1
        type_ = str(event.get("type", ""))
        group, _, subject = type_.partition("-")
        timestamp = event.get("timestamp")
        local_received = event.get("local_received")
        if group == "worker":
            hostname = event.get("hostname")
            if not hostname:
                return None
            worker = self._worker(str(hostname))
            worker.event(subject, timestamp, local_received, event)
            return worker, subject
        if group == "task":
            uuid = event.get("uuid")
            if not uuid:
                return None
            task, created = self._task(str(uuid))
            if created:
                self.task_count += 1
            hostname = event.get("hostname")
            if hostname and subject != "sent":
                task.worker = self._worker(str(hostname))
                clock = event.get("clock")
                if isinstance(clock, int):
                    task.worker.clock = max(task.worker.clock, clock)
            task.event(subject, timestamp, local_received, event)
            return task, subject
        return None

    def _worker(self, hostname: str) -> Worker:
        worker = self.workers.get(hostname)
        if worker is None:
            worker = self.workers[hostname] = Worker(hostname)
            while len(self.workers) > self.max_workers_in_memory:
                self.workers.popitem(last=False)
        else:
            self.workers.move_to_end(hostname)
        return worker

    def _task(self, uuid: str) -> tuple[Task, bool]:
        task = self.tasks.get(uuid)
        if task is not None:
            self.tasks.move_to_end(uuid)
            return task, False
        task = self.tasks[uuid] = Task(uuid)
        while len(self.tasks) > self.max_tasks_in_memory:
            self.tasks.popitem(last=False)
        return task, True

    def get_or_create_worker(self, hostname: str, **fields: Any) -> tuple[Worker, bool]:
        with self._mutex:
            created = hostname not in self.workers
            worker = self._worker(hostname)
            worker.__dict__.update(fields)
            return worker, created

    def get_or_create_task(self, uuid: str) -> tuple[Task, bool]:
        with self._mutex:
            return self._task(uuid)

    def clear_tasks(self, ready: bool = True) -> None:
        """Forget the finished tasks (``ready=True``: the running and waiting ones stay), or
        every task (``ready=False``), as Celery's ``State.clear_tasks``."""
        with self._mutex:
            self._clear_tasks(ready)

    def _clear_tasks(self, ready: bool) -> None:
        if ready:
            for uuid in [u for u, t in self.tasks.items() if t.ready]:
                del self.tasks[uuid]
        else:
            self.tasks.clear()

    def clear(self, ready: bool = True) -> None:
        """Forget every worker and the tasks :meth:`clear_tasks` would (Celery's
        ``State.clear``): ``ready=True`` keeps the tasks that have not finished."""
        with self._mutex:
            self.workers.clear()
            self._clear_tasks(ready)
            self.event_count = 0
            self.task_count = 0

    # -- reading ---------------------------------------------------------------------------
    def alive_workers(self) -> list[Worker]:
        return [w for w in list(self.workers.values()) if w.alive]

    def itertasks(self, limit: int | None = None) -> Iterator[tuple[str, Task]]:
        """Tasks, most recently updated first."""
        for index, (uuid, task) in enumerate(reversed(list(self.tasks.items()))):
            if limit is not None and index >= limit:
                return
            yield uuid, task

    def tasks_by_time(self, limit: int | None = None) -> list[tuple[str, Task]]:
        ordered = sorted(self.tasks.items(), key=lambda kv: kv[1].timestamp or 0.0, reverse=True)
        return ordered[:limit] if limit is not None else ordered

    def tasks_by_type(self, name: str, limit: int | None = None) -> list[tuple[str, Task]]:
        return [(u, t) for u, t in self.tasks_by_time() if t.name == name][:limit]

    def tasks_by_worker(self, hostname: str, limit: int | None = None) -> list[tuple[str, Task]]:
        found = [
            (u, t)
            for u, t in self.tasks_by_time()
            if t.worker is not None and t.worker.hostname == hostname
        ]
        return found[:limit]

    def task_types(self) -> list[str]:
        return sorted({t.name for t in list(self.tasks.values()) if t.name})

    def __repr__(self) -> str:
        return f"<State: events={self.event_count} tasks={self.task_count}>"


__all__ = ["HEARTBEAT_HISTORY", "TASK_EVENT_TO_STATE", "State", "Task", "Worker"]
