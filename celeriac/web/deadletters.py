"""The dead-letters page and its control (beyond Celery: ``task_dead_letter_queue``): list
the messages that failed for good in each dead-letter queue, inspect one (arguments,
exception, traceback, where and when), replay one or all to the queue it came from.

``/dead`` reads each dead-letter queue without consuming it (the messages are put back), as
``celeriac dead list`` does; ``POST /api/dead/replay/<dead queue>`` (form ``id``, or none for
every message) re-publishes, as ``celeriac dead replay``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from celeriac.app.base import Celery
from celeriac.extras import deadletter

#: Messages shown per dead-letter queue.
LIMIT = 200
NOT_ON = (
    "Dead-lettering is off: set task_dead_letter_queue (for example '{queue}.dead') and the "
    "messages that fail for good are kept there."
)

Render = Callable[..., Response]


def dead_queues(app: Celery) -> list[str]:
    """The dead-letter queues of the app's queues (empty when dead-lettering is off)."""
    names = [deadletter.dead_queue_name(app, q.name) for q in app.default_queues()]
    return [name for name in names if name]


def listing(app: Celery) -> dict[str, list[deadletter.DeadLetter]]:
    return {name: deadletter.list_dead(app, name, LIMIT) for name in dead_queues(app)}


def routes(app: Celery, render: Render) -> list[Route]:
    async def page(request: Request) -> Response:
        queues = await run_in_threadpool(listing, app)
        return render(
            request, "dead.html", title="Dead letters", queues=queues, not_on=NOT_ON, limit=LIMIT
        )

    async def replay(request: Request) -> Response:
        queue = request.path_params["queue"]
        if queue not in dead_queues(app):
            known = ", ".join(dead_queues(app)) or "none: dead-lettering is off"
            return JSONResponse(
                {"error": f"{queue!r} is not a dead-letter queue of this app ({known})"},
                status_code=404,
            )
        form = await request.form()
        task_id = form.get("id")
        ids = [task_id] if isinstance(task_id, str) and task_id else None
        count: Any = await run_in_threadpool(deadletter.replay, app, queue, ids)
        if ids and not count:
            return JSONResponse({"error": f"no dead message {ids[0]!r} in {queue}"}, 404)
        plural = "message" if count == 1 else "messages"
        return JSONResponse({"message": f"Replayed {count} {plural} from {queue}"})

    return [
        Route("/dead", page),
        Route("/api/dead/replay/{queue}", replay, methods=["POST"]),
    ]


__all__ = ["LIMIT", "dead_queues", "listing", "routes"]
