"""The monitor's engine: events feed the cluster model, the task history and the metrics.

``Monitor(app, store).start()`` subscribes to the events (a thread captures them, asking the
workers for a heartbeat first), writes changed tasks to the :class:`~celeriac.web.store.
TaskStore` every ``flush_interval`` seconds, and asks each worker it sees for the first time
what Flower shows of it (stats, queues, registered tasks, configuration) in another thread.
Readers (pages, API) call :meth:`Monitor.tasks` / :meth:`Monitor.task`, which write what is
pending first, so a page never lags behind the model.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celeriac.drivers.urls import mask_url
from celeriac.events.state import State, Task, Worker
from celeriac.web.charts import Recorder
from celeriac.web.documents import GROUP_FIELDS, restore, task_document
from celeriac.web.metrics import Metrics
from celeriac.web.store import StoredTask, TaskQuery, TaskStore

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.events.receiver import EventReceiver

logger = logging.getLogger("celeriac.web")

#: What Flower asks each worker (``/api/workers?refresh=1``).
INSPECT_METHODS = (
    "stats",
    "active_queues",
    "registered",
    "scheduled",
    "active",
    "reserved",
    "revoked",
    "conf",
)


@dataclass(frozen=True, slots=True)
class WorkerSummary:
    """One dashboard row."""

    hostname: str
    alive: bool
    pool: str | None
    concurrency: int | None
    active: int | None
    processed: int
    succeeded: int
    failed: int
    retried: int
    loadavg: list[float] | None
    last_heartbeat: float | None


class Monitor:
    """Events in, queries out; :meth:`start` / :meth:`stop` own two threads."""

    def __init__(
        self,
        app: Celery,
        store: TaskStore,
        *,
        max_tasks_in_memory: int = 10_000,
        inspect_timeout: float = 1.0,
        flush_interval: float = 0.25,
        queue_interval: float = 5.0,
    ) -> None:
        self.app = app
        self.store = store
        self.state = State(max_tasks_in_memory=max_tasks_in_memory, max_workers_in_memory=1000)
        self.metrics = Metrics()
        self.inspect_timeout = inspect_timeout
        self.flush_interval = flush_interval
        self.queue_interval = queue_interval
        #: Events per second and queue lengths over the last minutes (the charts).
        self.recorder = Recorder()
        #: Task events per worker and type (the dashboard's processed / failed / retried).
        self.counters: defaultdict[str, Counter[str]] = defaultdict(Counter)
        #: What each worker answered to :data:`INSPECT_METHODS` (plus ``timestamp``).
        self.inspected: dict[str, dict[str, Any]] = {}
        #: Bumped by every event: live pages redraw when it moves.
        self.version = 0
        self._lock = threading.RLock()
        #: Held by every request that waits for workers' replies: they share the app's reply
        #: queue and each drops the replies that are not its own (as kombu's mailbox does).
        self.control_lock = threading.Lock()
        self._dirty: dict[str, Task] = {}
        self._names: set[str] = set(store.names())
        self._gone: set[str] = set()  # workers that said worker-offline
        self._stop = threading.Event()
        self._to_inspect: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._receiver: EventReceiver | None = None

    # -- running ---------------------------------------------------------------------------
    def start(self) -> None:
        """Subscribe now (events from here on are seen) and start the threads."""
        self._receiver = self._subscribe()
        for target, name in (
            (self._capture, "monitor-events"),
            (self._flush_loop, "monitor-store"),
            (self._inspect_loop, "monitor-inspect"),
            (self._queue_loop, "monitor-queues"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._to_inspect.put(None)
        for thread in self._threads:
            thread.join(5.0)
        self._threads.clear()
        self.flush()
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            receiver.close()
            receiver.connection.close()

    def _subscribe(self) -> EventReceiver:
        receiver = self.app.events.Receiver(self.app.connection(), handlers={"*": self.on_event})
        receiver.subscribe()
        return receiver

    def _capture(self) -> None:
        while not self._stop.is_set():
            receiver = self._receiver
            try:
                if receiver is None:
                    receiver = self._receiver = self._subscribe()
                self._wake_workers()
                receiver.capture(wakeup=False)
            except Exception as exc:
                logger.warning("Lost the event stream (%r); reconnecting in 1 s", exc)
                if receiver is not None:
                    receiver.close()
                    receiver.connection.close()
                self._receiver = None
                self._stop.wait(1.0)

    def _wake_workers(self) -> None:
        """Ask every worker for a heartbeat now, on a connection of its own (the receiver's
        is subscribed), so the dashboard fills at once rather than at the next beat."""
        try:
            self.app.control.broadcast("heartbeat", reply=False)
        except Exception as exc:  # the monitor starts even when the broker is not up yet
            logger.debug("Waking up workers failed: %r", exc)

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except Exception:
                logger.exception("Could not write the task history")

    def _queue_loop(self) -> None:
        last: dict[str, int] | None = None
        while not self._stop.is_set():
            try:
                lengths = {q["name"]: int(q["messages"]) for q in self.queue_lengths()}
            except Exception as exc:
                logger.debug("Could not read the queue lengths: %r", exc)
            else:
                self.recorder.queues(lengths)
                if lengths != last:
                    last = lengths
                    with self._lock:
                        self.version += 1
            self._stop.wait(self.queue_interval)

    def _inspect_loop(self) -> None:
        while (name := self._to_inspect.get()) is not None:
            try:
                self.refresh([name])
            except Exception as exc:
                logger.warning("Could not inspect %s: %r", name, exc)

    # -- events in -------------------------------------------------------------------------
    def on_event(self, event: dict[str, Any]) -> None:
        """Apply one event (the receiver's handler for every type)."""
        type_ = str(event.get("type", ""))
        with self._lock:
            task: Task | None = None
            if type_.startswith("task-"):
                uuid = event.get("uuid")
                if not uuid:
                    return
                uuid = str(uuid)
                if uuid not in self.state.tasks:
                    self._restore(uuid)
                self.state.event(event)
                task = self.state.tasks.get(uuid)
                if task is not None:
                    if task.name:
                        self._names.add(task.name)
                    if type_ == "task-sent" and event.get("hostname"):
                        vars(task)["client"] = str(event["hostname"])
                    if type_ in ("task-sent", "task-received"):
                        # kept whatever the events' order (a late task-received keeps only
                        # Celery's fields in the model)
                        for name in GROUP_FIELDS:
                            if event.get(name) is not None:
                                vars(task)[name] = event[name]
                    self._dirty[uuid] = task
                if event.get("hostname") and type_ != "task-sent":
                    self.counters[str(event["hostname"])][type_] += 1
                received = event.get("local_received")
                self.recorder.event(type_, received if isinstance(received, float) else None)
            elif type_.startswith("worker-"):
                hostname = str(event.get("hostname") or "")
                new = bool(hostname) and hostname not in self.inspected
                self.state.event(event)
                if type_ == "worker-offline":
                    self._gone.add(hostname)
                else:
                    self._gone.discard(hostname)
                if new and type_ != "worker-offline":
                    self.inspected[hostname] = {}
                    self._to_inspect.put(hostname)
            else:
                self.state.event(event)
            self.metrics.observe(event, task)
            self.version += 1

    def _restore(self, uuid: str) -> None:
        """A task the model forgot (or a monitor restart never knew): start from what the
        history holds, so a late event adds to it instead of replacing it."""
        pending = self._dirty.get(uuid)
        stored = (
            StoredTask(task_document(pending), list(pending.history))
            if pending is not None
            else self.store.get(uuid)
        )
        if stored is None:
            return
        task, _ = self.state.get_or_create_task(uuid)
        restore(task, stored.doc)
        if stored.doc.get("worker"):
            task.worker, _ = self.state.get_or_create_worker(str(stored.doc["worker"]))
        task.history.extend(stored.history)

    def flush(self) -> None:
        """Write every changed task to the store now."""
        with self._lock:
            dirty, self._dirty = self._dirty, {}
            rows = [StoredTask(task_document(t), list(t.history)) for t in dirty.values()]
        self.store.put(rows)

    # -- reading ---------------------------------------------------------------------------
    def task(self, uuid: str) -> StoredTask | None:
        self.flush()
        return self.store.get(uuid)

    def tasks(self, query: TaskQuery) -> tuple[int, list[StoredTask]]:
        self.flush()
        return self.store.query(query)

    def family(self, root_id: str) -> list[StoredTask]:
        self.flush()
        return self.store.family(root_id)

    def group(self, group_id: str) -> list[StoredTask]:
        self.flush()
        return self.store.group(group_id)

    def task_types(self) -> list[str]:
        """Every task name seen in events or registered in a worker."""
        registered = {
            str(name)
            for info in list(self.inspected.values())
            for name in info.get("registered") or ()
        }
        with self._lock:
            return sorted(registered | self._names)

    def worker(self, hostname: str) -> Worker | None:
        return self.state.workers.get(hostname)

    def workers(self) -> list[WorkerSummary]:
        with self._lock:
            known = list(self.state.workers.values())
            rows = []
            for worker in sorted(known, key=lambda w: w.hostname):
                if worker.hostname.startswith("gen") and not worker.heartbeats:
                    continue  # a client that only sent task-sent events
                stats = self.inspected.get(worker.hostname, {}).get("stats") or {}
                pool = stats.get("pool") or {}
                counts = self.counters.get(worker.hostname, Counter())
                rows.append(
                    WorkerSummary(
                        hostname=worker.hostname,
                        alive=worker.alive,
                        pool=pool.get("implementation"),
                        concurrency=pool.get("max-concurrency"),
                        active=worker.active,
                        processed=counts["task-received"],
                        succeeded=counts["task-succeeded"],
                        failed=counts["task-failed"],
                        retried=counts["task-retried"],
                        loadavg=worker.loadavg,
                        last_heartbeat=worker.heartbeats[-1] if worker.heartbeats else None,
                    )
                )
            return rows

    def refresh(self, names: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """Ask the workers (``names``, else every known one) Flower's inspect questions;
        returns and remembers ``{worker: {method: answer, ..., "timestamp": t}}``."""
        if names is None:
            names = self.reachable()
        found: dict[str, dict[str, Any]] = {}
        if not names:
            return found
        inspect = self.app.control.inspect(destination=list(names), timeout=self.inspect_timeout)
        with self.control_lock:
            for method in INSPECT_METHODS:
                answers = getattr(inspect, method)() or {}
                for node, answer in answers.items():
                    found.setdefault(node, {})[method] = masked(answer)
        now = time.time()
        for info in found.values():
            info["timestamp"] = now
        with self._lock:
            self.inspected.update(found)
        return found

    def reachable(self) -> list[str]:
        """The workers worth asking: alive, or never heard beating (``--without-heartbeat``)
        and never said goodbye. Asking a dead one costs a timeout per question."""
        with self._lock:
            return [
                w.hostname
                for w in self.workers()
                if w.alive or (w.last_heartbeat is None and w.hostname not in self._gone)
            ]

    def queue_names(self) -> list[str]:
        names: set[str] = set()
        for info in list(self.inspected.values()):
            for queue_ in info.get("active_queues") or ():
                if isinstance(queue_, dict) and queue_.get("name"):
                    names.add(str(queue_["name"]))
        if not names:
            names.add(str(self.app.conf.task_default_queue or "celery"))
        return sorted(names)

    def queue_lengths(self) -> list[dict[str, Any]]:
        """``[{"name": q, "messages": n}]`` for the queues the workers consume."""
        lengths = []
        with self.app.connection() as conn:
            for name in self.queue_names():
                lengths.append({"name": name, "messages": conn.size(name)})
        return lengths


def masked(value: Any) -> Any:
    """``value`` with every URL's password masked (inspect replies may hold broker URLs)."""
    if isinstance(value, str):
        return mask_url(value) if "://" in value else value
    if isinstance(value, dict):
        return {k: _mask_setting(str(k), masked(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    return value


def _mask_setting(key: str, value: Any) -> Any:
    lowered = key.lower()
    if ("password" in lowered or "secret" in lowered) and value:
        return "********"
    return value


__all__ = ["INSPECT_METHODS", "Monitor", "WorkerSummary", "masked"]
