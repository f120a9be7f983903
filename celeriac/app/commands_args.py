"""The command-line arguments of each remote-control command, as Celery's ``inspect`` and
``control`` take them (``control rate_limit tasks.add 10/m``), turned into the request's
``arguments``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Parse = Callable[[Sequence[str]], dict[str, Any]]


def _none(args: Sequence[str]) -> dict[str, Any]:
    if args:
        raise ValueError(f"takes no arguments (got {' '.join(args)})")
    return {}


def _n(args: Sequence[str]) -> dict[str, Any]:
    return {"n": int(args[0]) if args else 1}


def _need(count: int, names: str) -> Callable[[Sequence[str]], None]:
    def check(args: Sequence[str]) -> None:
        if len(args) < count:
            raise ValueError(f"needs {names}")

    return check


def _revoke(args: Sequence[str]) -> dict[str, Any]:
    _need(1, "one or more task ids")(args)
    return {"task_id": list(args), "terminate": False, "signal": "SIGTERM"}


def _terminate(args: Sequence[str]) -> dict[str, Any]:
    _need(2, "a signal and one or more task ids")(args)
    return {"task_id": list(args[1:]), "terminate": True, "signal": args[0]}


def _rate_limit(args: Sequence[str]) -> dict[str, Any]:
    _need(2, "a task name and a rate limit (10/m)")(args)
    return {"task_name": args[0], "rate_limit": args[1]}


def _time_limit(args: Sequence[str]) -> dict[str, Any]:
    _need(2, "a task name and a soft limit, then optionally a hard limit")(args)
    hard = float(args[2]) if len(args) > 2 else None
    return {"task_name": args[0], "soft": float(args[1]), "hard": hard}


def _add_consumer(args: Sequence[str]) -> dict[str, Any]:
    _need(1, "a queue name, then optionally exchange, exchange type, routing key")(args)
    rest = [*args[1:], None, None, None]
    return {
        "queue": args[0],
        "exchange": rest[0],
        "exchange_type": rest[1] or "direct",
        "routing_key": rest[2],
    }


def _queue(args: Sequence[str]) -> dict[str, Any]:
    _need(1, "a queue name")(args)
    return {"queue": args[0]}


CONTROL: dict[str, Parse] = {
    "revoke": _revoke,
    "terminate": _terminate,
    "rate_limit": _rate_limit,
    "time_limit": _time_limit,
    "pool_grow": _n,
    "pool_shrink": _n,
    "add_consumer": _add_consumer,
    "cancel_consumer": _queue,
    "enable_events": _none,
    "disable_events": _none,
    "heartbeat": _none,
    "shutdown": _none,
}

INSPECT: dict[str, Parse] = {
    "active": lambda args: {"safe": None, **_none(args)},
    "active_queues": _none,
    "clock": _none,
    "conf": lambda args: {"with_defaults": bool(args and args[0].lower() in ("1", "true"))},
    "memdump": lambda args: {"samples": int(args[0]) if args else 10},
    "memsample": _none,
    "ping": _none,
    "query_task": lambda args: {"ids": list(args)},
    "registered": lambda args: {"taskinfoitems": list(args)},
    "report": _none,
    "reserved": _none,
    "revoked": _none,
    "scheduled": _none,
    "stats": _none,
}

__all__ = ["CONTROL", "INSPECT", "Parse"]
