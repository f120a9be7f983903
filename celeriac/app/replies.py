"""Remote-control replies as text for people: one aligned table per command (``celeriac
inspect``, ``control`` and ``status``); ``--json`` prints the replies as they came."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from celeriac.events.view import table

Replies = Mapping[str, Any]


def _when(value: Any) -> str:
    if isinstance(value, (int, float)) and value:
        return datetime.fromtimestamp(float(value)).strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


def _requests(replies: Replies) -> list[str]:
    rows = [
        (
            node,
            t.get("id"),
            t.get("name"),
            _short(t.get("args")),
            _when(t.get("time_start")),
            t.get("worker_pid") or "",
        )
        for node, tasks in sorted(replies.items())
        for t in (tasks if isinstance(tasks, list) else [])
    ]
    return table(("NODE", "ID", "NAME", "ARGS", "STARTED", "PID"), rows)


def _scheduled(replies: Replies) -> list[str]:
    rows = [
        (node, e["request"].get("id"), e["request"].get("name"), e.get("eta"), e.get("priority"))
        for node, entries in sorted(replies.items())
        for e in (entries if isinstance(entries, list) else [])
    ]
    return table(("NODE", "ID", "NAME", "ETA", "PRIORITY"), rows)


def _items(header: str) -> Callable[[Replies], list[str]]:
    def render(replies: Replies) -> list[str]:
        rows = [
            (node, item)
            for node, items in sorted(replies.items())
            for item in (items if isinstance(items, list) else [items])
        ]
        return table(("NODE", header), rows)

    return render


def _queues(replies: Replies) -> list[str]:
    rows = [
        (node, q.get("name"), (q.get("exchange") or {}).get("name"), q.get("routing_key"))
        for node, queues in sorted(replies.items())
        for q in (queues if isinstance(queues, list) else [])
    ]
    return table(("NODE", "QUEUE", "EXCHANGE", "ROUTING KEY"), rows)


def _stats(replies: Replies) -> list[str]:
    rows = []
    for node, s in sorted(replies.items()):
        pool = s.get("pool") or {}
        total = s.get("total") or {}
        rows.append(
            (
                node,
                s.get("pid"),
                pool.get("implementation", "").rsplit(".", 1)[-1],
                pool.get("max-concurrency"),
                sum(total.values()) if isinstance(total, dict) else "",
                f"{s.get('uptime', 0)}s",
                (s.get("broker") or {}).get("transport"),
            )
        )
    return table(("NODE", "PID", "POOL", "CONCURRENCY", "PROCESSED", "UPTIME", "BROKER"), rows)


def status_lines(replies: Replies) -> list[str]:
    """``celeriac status``: one row per node that answered a ping."""
    rows = [(node, _reply_text(reply)) for node, reply in sorted(replies.items())]
    lines = table(("NODE", "STATUS"), rows)
    count = len(replies)
    lines += ["", f"{count} node{'s' if count != 1 else ''} online."]
    return lines


def _reply_text(reply: Any) -> str:
    if isinstance(reply, dict) and set(reply) <= {"ok", "error"} and reply:
        if "error" in reply:
            return f"error: {reply['error']}"
        return "OK" if reply.get("ok") == "pong" else str(reply["ok"])
    return json.dumps(reply, sort_keys=True, default=str)


def _simple(replies: Replies) -> list[str]:
    return table(("NODE", "REPLY"), [(n, _reply_text(r)) for n, r in sorted(replies.items())])


def _blocks(replies: Replies) -> list[str]:
    lines: list[str] = []
    for node, reply in sorted(replies.items()):
        lines.append(f"{node}:")
        if isinstance(reply, dict) and set(reply) == {"ok"} and isinstance(reply["ok"], str):
            text = reply["ok"]
        elif isinstance(reply, str):
            text = reply
        else:
            text = json.dumps(reply, indent=2, sort_keys=True, default=str)
        lines += [f"  {line}" for line in text.splitlines()]
    return lines


def _short(value: Any, width: int = 40) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 3] + "..."


RENDERERS: dict[str, Callable[[Replies], list[str]]] = {
    "ping": _simple,
    "active": _requests,
    "reserved": _requests,
    "scheduled": _scheduled,
    "revoked": _items("REVOKED ID"),
    "registered": _items("TASK"),
    "active_queues": _queues,
    "stats": _stats,
}


def render(method: str, replies: Replies) -> str:
    """The replies to ``method`` as text: a table, or one block per node."""
    return "\n".join(RENDERERS.get(method, _blocks)(replies))


def to_json(replies: Any) -> str:
    return json.dumps(replies, indent=2, sort_keys=True, default=str)


__all__ = ["RENDERERS", "render", "status_lines", "to_json"]
