"""The startup banner, laid out like Celery's."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from celeriac.drivers.urls import mask_url
from celeriac.protocol.entities import Queue
from celeriac.utils.version import __version__

if TYPE_CHECKING:
    from celeriac.app.base import Celery

_ART = [
    " -------------- ",
    "--- ***** ----- ",
    "-- ******* ---- ",
    "- *** --- * --- ",
    "- ** ---------- ",
    "- ** ---------- ",
    "- ** ---------- ",
    "- ** ---------- ",
    "- *** --- * --- ",
    "-- ******* ---- ",
    "--- ***** ----- ",
    " -------------- ",
]


#: Celery's words for task events off.
EVENTS_OFF = "OFF (enable -E to monitor tasks in this worker)"


def queue_line(queue: Queue) -> str:
    exchange = queue.exchange
    ex_name = exchange.name if exchange is not None else ""
    ex_type = exchange.type if exchange is not None else "direct"
    return f".> {queue.name:<16} exchange={ex_name}({ex_type}) key={queue.key}"


def banner(
    app: Celery,
    *,
    hostname: str,
    concurrency: int,
    pool: str,
    queues: Sequence[Queue],
    with_tasks: bool,
) -> str:
    """The full banner text (config block, queues and, with ``with_tasks``, the task list)."""
    results = app.backend_url()
    info = [
        f"{hostname} v{__version__} (celeriac)",
        "",
        f"{platform.platform()} {datetime.now():%Y-%m-%d %H:%M:%S}",
        "",
        "[config]",
        f".> app:         {app.main or '__main__'}:{id(app):#x}",
        f".> transport:   {app.broker_url_display()}",
        f".> results:     {mask_url(results) if results else 'disabled://'}",
        f".> concurrency: {concurrency} ({pool})",
        f".> task events: {'ON' if app.conf.worker_send_task_events else EVENTS_OFF}",
        "",
        "[queues]",
    ]
    lines = [art + text for art, text in zip(_ART, info, strict=True)]
    lines += [" " * 16 + queue_line(q) for q in queues]
    if with_tasks:
        names = sorted(n for n in app.tasks.names() if not n.startswith("celery."))
        lines += ["", "[tasks]", *(f"  . {name}" for name in names)]
    return "\n".join(lines) + "\n"


__all__ = ["EVENTS_OFF", "banner", "queue_line"]
