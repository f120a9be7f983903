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


REMOTE_CONTROL = Missing(
    "this remote control command (celeriac workers answer every Celery inspect and control "
    "command except election, revoke_by_stamped_headers, objgraph and hello (mingle); "
    "pool_restart is answered 'Pool restarts not enabled', as by a Celery worker without "
    "worker_pool_restarts)",
    "use app.control.inspect() and the other app.control commands (app.control.ping() lists "
    "the live workers); empty queues with `celeriac purge`; restart a worker to reload its "
    "code",
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
    return lines


__all__ = [
    "AMQP",
    "COMPATIBILITY",
    "GRAPH",
    "LIST",
    "LOGTOOL",
    "MIGRATE",
    "PREFETCH_OFF",
    "REMOTE_CONTROL",
    "START_METHOD",
    "UPGRADE",
    "Missing",
    "startup_warnings",
]
