"""The read-only remote-control commands (``inspect``), with Celery's reply shapes.

Where the pool's processes consume for themselves (prefork children that consume), what they
hold and run is theirs: the parent asks each of them (``ControlContext.query``) and joins
their answers to its own.
"""

from __future__ import annotations

import os
import resource
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from celeriac.app.report import bugreport, censor
from celeriac.execution.running import running
from celeriac.protocol.entities import Queue
from celeriac.worker.commands import COMMANDS, Consuming, ControlContext, command, ok
from celeriac.worker.request import Request

#: Task attributes ``registered`` may show (Celery's ``DEFAULT_TASK_INFO_ITEMS`` and more).
TASK_INFO_ITEMS = ("exchange", "routing_key", "rate_limit", "time_limit", "soft_time_limit")


def _from_children(ctx: ControlContext, method: str, **arguments: Any) -> list[Any]:
    """The children's answers (lists joined) when they keep their own state."""
    if ctx.query is None:
        return []
    joined: list[Any] = []
    for answer in ctx.query(method, arguments):
        if isinstance(answer, list):
            joined.extend(answer)
    return joined


def request_info(
    ctx: ControlContext, request: Request, started: float | None, pid: int | None = None
) -> dict[str, Any]:
    """Celery's ``Request.info()``: what ``inspect active / reserved`` show of one request."""
    info = request.info()
    delivery = request.delivery
    info.update(
        hostname=ctx.hostname,
        time_start=started,
        delivery_info={
            "exchange": delivery.exchange,
            "routing_key": delivery.routing_key,
            "priority": delivery.message.priority,
            "redelivered": bool(delivery.redelivered),
        },
        worker_pid=pid,
    )
    return info


def _waiting(ctx: ControlContext) -> tuple[list[Request], list[Request]]:
    """(reserved now, held for their ETA)."""
    reserved, _active = ctx.state.snapshot()
    now = time.time()
    due = [r for r in reserved if r.eta is None or r.eta <= now]
    later = [r for r in reserved if r.eta is not None and r.eta > now]
    return due, later


def _in_pool(ctx: ControlContext) -> tuple[list[dict[str, Any]], list[Request]]:
    """Requests handed to the pool: (those running now, as infos; those waiting their turn).

    Running means in this process (threads, solo, asyncio; a consuming child), or the job a
    prefork parent's child runs now; pools take batches, so the rest wait in the pool."""
    here = running(ctx.hostname)
    in_children = set(ctx.pool.running_ids()) if ctx.query is None else set()
    with ctx.state.lock:
        requests = list(ctx.state.active.values())
        started = dict(ctx.state.time_start)
    infos: list[dict[str, Any]] = []
    waiting: list[Request] = []
    for request in requests:
        if request.id in here:
            at, pid = here[request.id]
            infos.append(request_info(ctx, request, at, pid))
        elif request.id in in_children:
            infos.append(request_info(ctx, request, started.get(request.key), None))
        else:
            waiting.append(request)
    return infos, waiting


@command("active")
def active(ctx: ControlContext, safe: bool | None = None, **_: Any) -> list[dict[str, Any]]:
    return _in_pool(ctx)[0] + _from_children(ctx, "active")


@command("reserved")
def reserved(ctx: ControlContext, **_: Any) -> list[dict[str, Any]]:
    """Received and not running: waiting in the worker, or in the pool for their turn."""
    due, _later = _waiting(ctx)
    in_pool = _in_pool(ctx)[1]
    mine = [request_info(ctx, r, None) for r in [*in_pool, *due]]
    return mine + _from_children(ctx, "reserved")


@command("scheduled")
def scheduled(ctx: ControlContext, **_: Any) -> list[dict[str, Any]]:
    _due, later = _waiting(ctx)
    mine = [
        {
            "eta": datetime.fromtimestamp(r.eta or 0.0, timezone.utc).isoformat(),
            "priority": r.delivery.message.priority,
            "request": request_info(ctx, r, None),
        }
        for r in later
    ]
    return mine + _from_children(ctx, "scheduled")


@command("revoked")
def revoked(ctx: ControlContext, **_: Any) -> list[str]:
    with ctx.state.lock:
        return list(ctx.state.revoked)


@command("registered")
def registered(
    ctx: ControlContext, taskinfoitems: list[str] | None = None, builtins: bool = False, **_: Any
) -> list[str]:
    tasks = ctx.app.tasks
    names = sorted(n for n in tasks if builtins or not n.startswith("celery."))
    items = list(taskinfoitems or ())
    out: list[str] = []
    for name in names:
        task = tasks[name]
        fields = [
            f"{item}={getattr(task, item)}"
            for item in items
            if getattr(task, item, None) is not None
        ]
        out.append(f"{name} [{' '.join(fields)}]" if fields else name)
    return out


@command("query_task")
def query_task(ctx: ControlContext, ids: list[str] | str | None = None, **_: Any) -> dict[str, Any]:
    wanted = {ids} if isinstance(ids, str) else set(ids or ())
    found: dict[str, Any] = {}
    for info in active(ctx):
        if info["id"] in wanted:
            found[info["id"]] = ["active", info]
    for info in reserved(ctx):
        if info["id"] in wanted:
            found[info["id"]] = ["reserved", info]
    for entry in scheduled(ctx):
        if entry["request"]["id"] in wanted:
            found[entry["request"]["id"]] = ["scheduled", entry["request"]]
    return found


@command("stats")
def stats(ctx: ControlContext, **_: Any) -> dict[str, Any]:
    total: Counter[str] = Counter(ctx.state.total_count)
    if ctx.query is not None:
        for answer in ctx.query("stats", {}):
            if isinstance(answer, dict):
                total.update(answer.get("total") or {})
    pool = ctx.pool
    consumer = ctx.consumer
    conf = ctx.app.conf
    stats_reply: dict[str, Any] = {
        "broker": broker_stats(ctx),
        "clock": str(next(ctx.clock)),
        "pid": os.getpid(),
        "pool": {
            "implementation": f"celeriac.worker.pools.{pool.name}",
            "max-concurrency": pool.size,
            "processes": pool.pids() or [os.getpid()],
            "max-tasks-per-child": conf.worker_max_tasks_per_child or "N/A",
            "max-memory-per-child": conf.worker_max_memory_per_child or "N/A",
            "timeouts": [conf.task_soft_time_limit or 0, conf.task_time_limit or 0],
        },
        "prefetch_count": pool.size * int(conf.worker_prefetch_multiplier or 0),
        "rusage": _rusage(),
        "total": dict(total),
        "uptime": int(time.time() - ctx.state.started_at),
        "queues": list(consumer.queues) if isinstance(consumer, Consuming) else [],
    }
    if ctx.autoscaler is not None:  # as Celery: present only with --autoscale
        stats_reply["autoscaler"] = ctx.autoscaler.info()
    return stats_reply


#: Broker URL schemes that are TLS by themselves (``redis`` ends in "s" but is not one).
_TLS_SCHEMES = frozenset({"rediss", "amqps"})


def broker_stats(ctx: ControlContext) -> dict[str, Any]:
    url = ctx.app.broker_url_display()
    parts = urlsplit(url)
    return {
        "hostname": parts.hostname,
        "userid": parts.username,
        "virtual_host": parts.path.lstrip("/") or "/",
        "port": parts.port,
        "insist": False,
        "ssl": parts.scheme in _TLS_SCHEMES or bool(ctx.app.conf.broker_use_ssl),
        "transport": parts.scheme,
        "connect_timeout": ctx.app.conf.broker_connection_timeout,
        "transport_options": _jsonable(censor(ctx.app.conf.broker_transport_options or {})),
        "login_method": None,
        "uri_prefix": None,
        "heartbeat": ctx.app.conf.broker_heartbeat,
        "failover_strategy": "round-robin",
        "alternates": [],
        "credential_provider": None,  # kombu 5.7's Connection.info() has it
    }


def _rusage() -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    names = (
        *("utime", "stime", "maxrss", "ixrss", "idrss", "isrss", "minflt", "majflt"),
        *("nswap", "inblock", "oublock", "msgsnd", "msgrcv", "nsignals", "nvcsw", "nivcsw"),
    )
    return {name: getattr(usage, f"ru_{name}") for name in names}


@command("active_queues")
def active_queues(ctx: ControlContext, **_: Any) -> list[dict[str, Any]]:
    consumer = ctx.consumer
    names = list(consumer.queues) if isinstance(consumer, Consuming) else []
    return [queue_as_dict(ctx.app.router.queue(name)) for name in names]


def queue_as_dict(queue: Queue) -> dict[str, Any]:
    """kombu's ``Queue.as_dict(recurse=True)``."""
    exchange = queue.exchange
    return {
        "name": queue.name,
        "exchange": {
            "name": exchange.name if exchange is not None else "",
            "type": exchange.type if exchange is not None else "direct",
            "arguments": (dict(exchange.arguments) or None) if exchange is not None else None,
            "durable": exchange.durable if exchange is not None else True,
            "passive": False,
            "auto_delete": exchange.auto_delete if exchange is not None else False,
            "delivery_mode": exchange.delivery_mode if exchange is not None else None,
            "no_declare": False,
        },
        "routing_key": queue.routing_key,
        "queue_arguments": dict(queue.queue_arguments) or None,
        "binding_arguments": dict(queue.binding_arguments) or None,
        "consumer_arguments": dict(queue.consumer_arguments) or None,
        "durable": queue.durable,
        "exclusive": queue.exclusive,
        "auto_delete": queue.auto_delete,
        "no_ack": queue.no_ack,
        "alias": queue.alias,
        "bindings": [],
        "no_declare": None,
        "expires": queue.expires,
        "message_ttl": queue.message_ttl,
        "max_length": queue.max_length,
        "max_length_bytes": queue.max_length_bytes,
        "max_priority": queue.max_priority,
    }


@command("conf")
def conf(ctx: ControlContext, with_defaults: bool = False, **_: Any) -> dict[str, Any]:
    settings = ctx.app.conf
    source = dict(settings.items()) if with_defaults else settings.changes()
    return {str(k): _jsonable(v) for k, v in censor(source).items()}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return repr(value)


@command("clock")
def clock(ctx: ControlContext, **_: Any) -> dict[str, Any]:
    return {"clock": next(ctx.clock)}


@command("report")
def report(ctx: ControlContext, **_: Any) -> dict[str, Any]:
    return ok(bugreport(ctx.app))


@command("memdump")
def memdump(ctx: ControlContext, samples: int = 10, **_: Any) -> str:
    """Celery prints samples of its own memory tracker (psutil); this is the resident size of
    the worker's process now and at its peak, and that of each pool process now."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    lines = [
        f"- rss (this process {os.getpid()}): {_resident_kib(os.getpid())} KiB, "
        f"peak {usage.ru_maxrss} KiB"
    ]
    for pid in ctx.pool.pids():
        lines.append(f"- rss (pool process {pid}): {_resident_kib(pid)} KiB")
    return "\n".join(lines) + "\n"


def _resident_kib(pid: int) -> int | str:
    """A process's resident size now (Linux ``/proc``), or ``?`` where it cannot be read."""
    try:
        with open(f"/proc/{pid}/statm") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return "?"
    return pages * resource.getpagesize() // 1024


COMMANDS["memsample"] = memdump
COMMANDS["dump_active"] = active
COMMANDS["dump_reserved"] = reserved
COMMANDS["dump_schedule"] = scheduled
COMMANDS["dump_revoked"] = revoked
COMMANDS["dump_tasks"] = registered

__all__ = ["TASK_INFO_ITEMS", "queue_as_dict", "request_info"]
