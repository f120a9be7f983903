"""The Celery features celeriac does not have yet, each with what to do instead.

Using one raises :class:`~celeriac.exceptions.NotYetImplemented` with the same words
everywhere (the API, the worker's log, the command line), so a Celery user learns at once
what is missing and what works meanwhile. When a feature arrives, its entry goes away.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from celeriac.exceptions import NotYetImplemented

#: Where the user reads what celeriac has and lacks.
COMPATIBILITY = "the compatibility matrix in the docs (docs/compatibility.md)"


@dataclass(frozen=True, slots=True)
class Missing:
    """One missing feature: what it is, and what to use instead."""

    feature: str
    instead: str

    def message(self, used: str) -> str:
        """``used`` (what the user wrote, e.g. ``add.s()``) and why it cannot work."""
        return (
            f"{used}: celeriac does not have {self.feature} yet. Instead, {self.instead}. "
            f"See {COMPATIBILITY}."
        )

    def error(self, used: str) -> NotYetImplemented:
        return NotYetImplemented(self.message(used), self.feature, self.instead)


_WATCH = (
    "read the worker's log (-l INFO logs every task it receives and finishes), query a "
    "task's state with AsyncResult(task_id).state or `celeriac result`, and list the live "
    "workers with app.control.ping()"
)

REPLACE = Missing(
    "Task.replace() and Task.add_to_chord()",
    "return the new work's result from the task (send it with .delay() and return its "
    "id), or build the whole canvas up front on the client",
)
BEAT = Missing(
    "beat (periodic tasks: beat_schedule, add_periodic_task, `celeriac beat`, worker -B)",
    "run `celeriac -A proj call proj.tasks.name` from cron or a systemd timer",
)
EVENTS = Missing(
    "task events (worker -E, worker_send_task_events, task_send_sent_event, Task.send_event, "
    "`celeriac events`)",
    _WATCH,
)
MONITOR = Missing(
    "a web monitor (Flower reads task events, which celeriac does not send yet)", _WATCH
)
REMOTE_CONTROL = Missing(
    "this remote control command (celeriac workers answer ping, revoke, terminate, "
    "rate_limit and time_limit; there is no inspect, shutdown, pool_grow, add_consumer, ...)",
    "use app.control.ping(), revoke(), terminate(), rate_limit() or time_limit(); empty "
    "queues with `celeriac purge`; stop a worker with SIGTERM (warm shutdown) and start it "
    "again to change its queues or pool size",
)
STATUS = Missing(
    "the status command",
    'list the live workers with python -c "from proj import app; print(app.control.ping())"',
)
PREFETCH_OFF = Missing(
    "worker --disable-prefetch", "pass --prefetch-multiplier 1 (one message per pool slot)"
)
START_METHOD = Missing(
    "worker --pool-start-method (prefork children are always forked)",
    "use -P threads or -P asyncio where forking is a problem",
)
LIST = Missing(
    "`celeriac list bindings`",
    "use the broker's own tools (rabbitmqctl list_bindings, redis-cli)",
)
AMQP = Missing(
    "`celeriac amqp` (an AMQP administration shell)",
    "use rabbitmqadmin or the RabbitMQ management plugin",
)
MIGRATE = Missing(
    "`celeriac migrate` (moving messages between brokers)",
    "let a worker on the old broker empty its queues, then point clients at the new one",
)
GRAPH = Missing(
    "`celeriac graph` (bootstep and worker graphs)",
    "read the architecture page of the docs (celeriac has no bootsteps)",
)
UPGRADE = Missing(
    "`celeriac upgrade` (rewriting old setting names)",
    "keep the old uppercase names: celeriac reads them as they are",
)
LOGTOOL = Missing(
    "`celeriac logtool` (worker log statistics)",
    "grep the worker's log: every task logs 'received', then 'succeeded in' or 'raised unexpected'",
)


def startup_warnings(conf: Mapping[str, Any]) -> list[str]:
    """What a worker must say at start about settings it will not honour."""
    lines: list[str] = []
    schedule = conf["beat_schedule"]
    if schedule:
        names = ", ".join(sorted(map(str, schedule)))
        lines.append(
            f"beat_schedule is set ({names}) but celeriac does not have beat yet: these "
            f"periodic tasks will NOT run. Instead, {BEAT.instead}. See {COMPATIBILITY}."
        )
    for name in ("worker_send_task_events", "task_send_sent_event"):
        if conf[name]:
            lines.append(
                f"{name} is on (worker -E sets worker_send_task_events) but celeriac does not "
                f"send task events yet: no monitor will see this worker's tasks. Instead, "
                f"{EVENTS.instead}. See {COMPATIBILITY}."
            )
    return lines


__all__ = [
    "AMQP",
    "BEAT",
    "COMPATIBILITY",
    "EVENTS",
    "GRAPH",
    "LIST",
    "LOGTOOL",
    "MIGRATE",
    "MONITOR",
    "PREFETCH_OFF",
    "REMOTE_CONTROL",
    "REPLACE",
    "START_METHOD",
    "STATUS",
    "UPGRADE",
    "Missing",
    "startup_warnings",
]
