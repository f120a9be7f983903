"""Where a task goes: ``task_routes`` and ``queue=`` resolved to (exchange, routing key, queue)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from celeriac.config import Settings
from celeriac.entities import Queue


@dataclass(frozen=True, slots=True)
class Route:
    """The target of one publish. Celery publishes direct-queue tasks to the default exchange."""

    exchange: str
    routing_key: str
    queue: Queue | None


Router = Callable[..., Any]


def _compile_routes(routes: Any) -> list[Router]:
    if routes is None:
        return []
    if isinstance(routes, (Mapping, str)) or callable(routes):
        routes = [routes]
    routers: list[Router] = []
    for entry in routes:
        if isinstance(entry, Mapping):
            routers.append(_map_router(entry))
        elif callable(entry):
            routers.append(entry)
        elif hasattr(entry, "route_for_task"):
            routers.append(entry.route_for_task)
        else:
            raise TypeError(f"task_routes entry {entry!r} is not a mapping or router")
    return routers


def _map_router(table: Mapping[Any, Any]) -> Router:
    exact: dict[str, Any] = {}
    patterns: list[tuple[re.Pattern[str], Any]] = []
    for key, value in table.items():
        if isinstance(key, re.Pattern):
            patterns.append((key, value))
        elif any(ch in key for ch in "*?["):
            patterns.append((re.compile(fnmatch.translate(key)), value))
        else:
            exact[key] = value

    def route(name: str, *args: Any, **kwargs: Any) -> Any:
        if name in exact:
            return exact[name]
        for pattern, value in patterns:
            if pattern.match(name):
                return value
        return None

    return route


def _call_router(router: Router, name: str, args: Any, kwargs: Any, options: Any) -> Any:
    try:
        return router(name, args, kwargs, options, task=None)
    except TypeError:
        return router(name, args, kwargs, options)


class RouterTable:
    """Compiled ``task_routes`` plus the queue table of the app; built once per app."""

    def __init__(self, conf: Settings) -> None:
        self.conf = conf
        self.routers = _compile_routes(conf.task_routes)
        self.queues: dict[str, Queue] = {q.name: q for q in (conf.task_queues or [])}

    def queue(self, name: str) -> Queue:
        """The declared queue ``name``, or (``task_create_missing_queues``) a new direct one."""
        found = self.queues.get(name)
        if found is not None:
            return found
        from celeriac.exceptions import QueueNotFound

        if not self.conf.task_create_missing_queues:
            raise QueueNotFound(
                f"Queue {name!r} is not declared in task_queues and "
                "task_create_missing_queues is off"
            )
        return Queue(name)

    def route(
        self,
        name: str,
        args: Any,
        kwargs: Any,
        *,
        queue: str | Queue | None = None,
        exchange: str | None = None,
        routing_key: str | None = None,
    ) -> Route:
        """Resolve explicit options first, then ``task_routes``, then the default queue."""
        options: dict[str, Any] = {}
        if queue is None and exchange is None and routing_key is None:
            for router in self.routers:
                found = _call_router(router, name, args, kwargs, {})
                if found is not None:
                    options = {"queue": found} if isinstance(found, (str, Queue)) else dict(found)
                    break
        queue = queue if queue is not None else options.get("queue")
        exchange = exchange if exchange is not None else options.get("exchange")
        routing_key = routing_key if routing_key is not None else options.get("routing_key")
        if exchange is not None and queue is None:
            exchange_name = exchange if isinstance(exchange, str) else exchange.name
            return Route(exchange_name, routing_key or "", None)
        if queue is None:
            queue = self.conf.task_default_queue
        q = queue if isinstance(queue, Queue) else self.queue(queue)
        if exchange is None and q.exchange is not None and q.exchange.type == "direct":
            # Celery's shortcut: a direct queue is published to through the default exchange.
            return Route("", q.name, q)
        exchange_name = (
            exchange if isinstance(exchange, str) else (q.exchange.name if q.exchange else "")
        )
        return Route(exchange_name, routing_key or q.key, q)


__all__ = ["Route", "RouterTable"]
