"""Where a task goes: ``task_routes`` and ``queue=`` resolved to (exchange, routing key, queue).

Follows Celery's ``celery.app.routes`` and ``amqp.send_task_message``: every router is asked
(first answer wins), the explicit ``apply_async`` options override what it answered, the default
queue fills in a missing queue, and a direct queue with no explicit exchange or routing key is
published to through the default exchange (``""``) with the queue name as routing key.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from celeriac.app.config import Settings
from celeriac.exceptions import QueueNotFound
from celeriac.protocol.entities import Exchange, Queue


@dataclass(frozen=True, slots=True)
class Route:
    """The target of one publish. Celery publishes direct-queue tasks to the default exchange."""

    exchange: str
    routing_key: str
    queue: Queue | None
    priority: int | None = None  # a router may set it (``{'queue': 'x', 'priority': 9}``)


Router = Callable[..., Any]


class MapRoute:
    """A router made from a mapping or a list of ``(pattern, route)`` pairs (order kept).

    Keys are task names, glob patterns (``'feed.*'``) or compiled regular expressions; values
    are a queue name or a dict of options (``queue``, ``exchange``, ``routing_key``, ``priority``).
    """

    def __init__(self, table: Mapping[Any, Any] | Iterable[tuple[Any, Any]]) -> None:
        pairs = table.items() if isinstance(table, Mapping) else table
        self.exact: dict[str, Any] = {}
        self.patterns: list[tuple[re.Pattern[str], Any]] = []
        for key, value in pairs:
            if isinstance(key, re.Pattern):
                self.patterns.append((key, value))
            elif "*" in key:  # Celery treats only '*' as a glob marker
                self.patterns.append((re.compile(fnmatch.translate(key)), value))
            else:
                self.exact[key] = value

    def __call__(self, name: str, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        if name in self.exact:
            return _as_options(self.exact[name])
        for pattern, value in self.patterns:
            if pattern.match(name):
                return _as_options(value)
        return None


def _as_options(value: Any) -> dict[str, Any]:
    if isinstance(value, (str, Queue)):
        return {"queue": value}
    return dict(value)


def _import_router(path: str) -> Any:
    """``'pkg.mod.Router'`` or ``'pkg.mod:Router'``: a class is instantiated, as Celery does."""
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    obj = getattr(importlib.import_module(module), attr)
    return obj() if isinstance(obj, type) else obj


def prepare_routes(routes: Any) -> list[Any]:
    """Expand ``task_routes`` into a list of routers (Celery's ``routes.prepare``)."""
    if routes is None:
        return []
    if not isinstance(routes, (list, tuple)):
        routes = [routes]
    routers: list[Any] = []
    for entry in routes:
        if isinstance(entry, (Mapping, list, tuple)):
            routers.append(MapRoute(entry))
        elif isinstance(entry, str):
            routers.append(_import_router(entry))
        elif callable(entry) or hasattr(entry, "route_for_task"):
            routers.append(entry)
        else:
            raise TypeError(f"task_routes entry {entry!r} is not a mapping or router")
    return routers


def query_router(
    router: Any, name: str, args: Any, kwargs: Any, options: dict[str, Any], task: Any
) -> Any:
    """Celery's calling conventions: ``route_for_task(name, args, kwargs)`` on an object with
    that method, else ``router(name, args, kwargs, options, task=task)``."""
    if hasattr(router, "route_for_task"):
        return router.route_for_task(name, args, kwargs)
    return router(name, args, kwargs, options, task=task)


class RouterTable:
    """Compiled ``task_routes`` plus the queue table of the app; built once per app."""

    def __init__(self, conf: Settings) -> None:
        self.conf = conf
        self.routers = prepare_routes(conf.task_routes)
        self.default_exchange = Exchange(
            conf.task_default_exchange or conf.task_default_queue,
            conf.task_default_exchange_type or "direct",
        )
        self.queues: dict[str, Queue] = {}
        self._default: Queue | None = None
        self._plain: Route | None = None  # the default route (see _default_route)
        for q in conf.task_queues or []:
            self.queues[q.name] = self._with_default_exchange(q)

    def _with_default_exchange(self, q: Queue) -> Queue:
        # kombu's Queue('x') has no exchange and Celery gives it the default exchange; ours
        # defaults to Exchange('x', 'direct'). Align them when the defaults differ, so the
        # documented topic-exchange setups route the same way.
        auto = q.exchange is not None and q.exchange == Exchange(q.name)
        configured = self.conf.task_default_exchange or self.default_exchange.type != "direct"
        if auto and configured and self.default_exchange != Exchange(q.name):
            return dataclasses.replace(q, exchange=self.default_exchange)
        return q

    def default_queue(self) -> Queue:
        name = self.conf["task_default_queue"]
        found = self.queues.get(name)
        if found is not None:
            return found
        # Built once per table (the app rebuilds the table when a setting it reads changes).
        if self._default is None or self._default.name != name:
            self._default = self._default_queue(name)
        return self._default

    def _default_queue(self, name: str) -> Queue:
        return Queue(
            name,
            self.default_exchange,
            self.conf.task_default_routing_key or name,
            max_priority=self.conf.task_queue_max_priority,
        )

    def queue(self, name: str) -> Queue:
        """The declared queue ``name``, or (``task_create_missing_queues``) a new direct one."""
        found = self.queues.get(name)
        if found is not None:
            return found
        if name == self.conf.task_default_queue:
            return self.default_queue()
        if not self.conf.task_create_missing_queues:
            raise QueueNotFound(f"Queue {name!r} missing from task_queues")
        return Queue(name, max_priority=self.conf.task_queue_max_priority)

    def lookup(self, name: str, args: Any, kwargs: Any, task: Any = None) -> dict[str, Any]:
        """The options of the first router that answers for ``name`` (``{}`` if none)."""
        for router in self.routers:
            found = query_router(router, name, args, kwargs or {}, {}, task)
            if found is not None:
                return _as_options(found)
        return {}

    def route(
        self,
        name: str,
        args: Any,
        kwargs: Any,
        *,
        queue: str | Queue | None = None,
        exchange: str | Exchange | None = None,
        routing_key: str | None = None,
        task: Any = None,
    ) -> Route:
        """Routers first, explicit options on top, then the default queue (Celery's order)."""
        if not self.routers and queue is None and exchange is None and routing_key is None:
            return self._default_route()
        options = self.lookup(name, args, kwargs, task)
        explicit = {"queue": queue, "exchange": exchange, "routing_key": routing_key}
        options.update({k: v for k, v in explicit.items() if v is not None})
        target = options.get("queue")
        q = self.default_queue() if target is None else self._resolve(target)
        return self._to(
            q, options.get("exchange"), options.get("routing_key"), options.get("priority")
        )

    def _to(
        self, q: Queue, ex: str | Exchange | None, rk: str | None, priority: int | None
    ) -> Route:
        ex_name = ex.name if isinstance(ex, Exchange) else ex
        exchange_type = q.exchange.type if q.exchange is not None else "direct"
        if not ex_name and not rk and exchange_type == "direct":
            return Route("", q.name, q, priority)
        if ex_name is None:
            ex_name = q.exchange.name if q.exchange is not None else ""
            return Route(ex_name or self.default_exchange.name, rk or q.key, q, priority)
        return Route(ex_name, rk or "", q, priority)

    def _default_route(self) -> Route:
        """Where a task goes that no router and no option sends elsewhere (kept while the
        default queue stays the same)."""
        q = self.default_queue()
        cached = self._plain
        if cached is None or cached.queue is not q:
            cached = self._plain = self._to(q, None, None, None)
        return cached

    def _resolve(self, target: str | Queue) -> Queue:
        return target if isinstance(target, Queue) else self.queue(target)


__all__ = ["MapRoute", "Route", "RouterTable", "prepare_routes", "query_router"]
