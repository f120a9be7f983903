"""The periodic-schedules page and its controls, over the beat schedule store (beyond
Celery: ``beat_schedule_store``): list the entries, pause, resume, run now.

``/schedules`` shows each entry (task, schedule, state, last run, runs); ``POST
/api/schedule/pause|resume|run-now/<name>`` change it, as ``celeriac schedule`` does, and beat
picks the change up at its next tick.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from celeriac.app.base import Celery
from celeriac.beat.codec import schedule_from_doc
from celeriac.beat.store import ScheduleStore
from celeriac.beat.store_backends import store_for

#: What the page says when no store is configured.
NO_STORE = (
    "There is no schedule store: set beat_schedule_store = True (on the broker) or to a "
    "sqlite:///, redis:// or postgresql:// URL, and restart beat once."
)
_ACTIONS: dict[str, tuple[Callable[[ScheduleStore, str], None], str]] = {
    "pause": (ScheduleStore.pause, "paused"),
    "resume": (ScheduleStore.resume, "resumed"),
    "run-now": (ScheduleStore.run_now, "sent at beat's next tick"),
}

Render = Callable[..., Response]


def rows(app: Celery) -> list[dict[str, Any]] | None:
    """The entries as the page shows them, by name; None without a store."""
    store = store_for(app)
    if store is None:
        return None
    try:
        entries = store.entries()
    finally:
        store.close()
    shown = []
    for name in sorted(entries):
        entry = entries[name]
        try:
            schedule = repr(schedule_from_doc(entry.schedule))
        except ValueError as exc:
            schedule = f"<invalid: {exc}>"
        shown.append(
            {
                "name": name,
                "task": entry.task,
                "args": repr(tuple(entry.args)),
                "kwargs": repr(entry.kwargs),
                "schedule": schedule,
                "paused": entry.paused,
                "run_now": entry.run_now,
                "last_run_at": entry.last_run_at.timestamp() if entry.last_run_at else None,
                "runs": entry.total_run_count,
            }
        )
    return shown


def act(app: Celery, action: str, name: str) -> tuple[int, str]:
    """Apply ``action`` to entry ``name``: ``(HTTP status, message)``."""
    method, done = _ACTIONS[action]
    store = store_for(app)
    if store is None:
        return 409, NO_STORE
    try:
        method(store, name)
    except KeyError as exc:
        return 404, str(exc.args[0])
    finally:
        store.close()
    return 200, f"{name}: {done}"


def routes(app: Celery, render: Render) -> list[Route]:
    async def page(request: Request) -> Response:
        entries = await run_in_threadpool(rows, app)
        return render(
            request, "schedules.html", title="Schedules", entries=entries, no_store=NO_STORE
        )

    def control(action: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            name = request.path_params["name"]
            status, message = await run_in_threadpool(act, app, action, name)
            key = "message" if status == 200 else "error"
            return JSONResponse({key: message}, status_code=status)

        return endpoint

    return [
        Route("/schedules", page),
        *(
            Route(f"/api/schedule/{action}/{{name}}", control(action), methods=["POST"])
            for action in _ACTIONS
        ),
    ]


__all__ = ["NO_STORE", "act", "routes", "rows"]
