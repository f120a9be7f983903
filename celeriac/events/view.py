"""The cluster model as plain text: the workers, then the most recent tasks (the live view of
``celeriac events``, redrawn every few seconds, without curses)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from celeriac.events.state import State

#: Tasks shown, most recently updated first.
TASKS_SHOWN = 20


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Columns aligned to their widest cell, two spaces apart."""
    cells = [[str(c) for c in header], *([("" if c is None else str(c)) for c in r] for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def render(state: State, now: float | None = None, tasks: int = TASKS_SHOWN) -> str:
    now = time.time() if now is None else now
    workers = [
        (
            w.hostname,
            w.status_string,
            w.active,
            w.processed,
            " ".join(f"{x:.2f}" for x in w.loadavg or ()),
            f"{now - w.heartbeats[-1]:.1f}s ago" if w.heartbeats else "-",
        )
        for w in sorted(state.workers.values(), key=lambda w: w.hostname)
    ]
    recent = [
        (
            uuid,
            t.name or "",
            t.state,
            t.worker.hostname if t.worker is not None else "",
            f"{t.runtime:.3f}s" if isinstance(t.runtime, float) else "",
            datetime.fromtimestamp(t.timestamp).strftime("%H:%M:%S") if t.timestamp else "",
        )
        for uuid, t in state.itertasks(limit=tasks)
    ]
    lines = [
        f"celeriac events: {len(state.alive_workers())} worker(s) online, "
        f"{state.task_count} task(s), {state.event_count} event(s)",
        "",
        *table(("WORKER", "STATUS", "ACTIVE", "PROCESSED", "LOAD", "HEARTBEAT"), workers),
        "",
        *table(("UUID", "NAME", "STATE", "WORKER", "RUNTIME", "UPDATED"), recent),
    ]
    return "\n".join(lines)


__all__ = ["TASKS_SHOWN", "render", "table"]
