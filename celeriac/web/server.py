"""The monitor's ASGI app: the API, ``/metrics``, the pages and their live updates, guarded
by :mod:`celeriac.web.security`; and :func:`serve`, which runs it under uvicorn."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from celeriac.web.api import FlowerAPI
from celeriac.web.monitor import Monitor
from celeriac.web.pages import Pages
from celeriac.web.security import Access, Guard, check_exposure
from celeriac.web.store import MAX_TASKS, TaskStore

if TYPE_CHECKING:
    from celeriac.app.base import Celery


def create_app(monitor: Monitor, access: Access | None = None) -> Starlette:
    """The ASGI app over a started (or, in tests, fed by hand) :class:`Monitor`."""
    access = access or Access()

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(
            monitor.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def healthcheck(request: Request) -> Response:
        return PlainTextResponse("OK")

    routes: list[BaseRoute] = [
        Route("/metrics", metrics),
        Route("/healthcheck", healthcheck),
        *FlowerAPI(monitor).routes(),
        *Pages(monitor, access).routes(),
    ]
    return Starlette(routes=routes, middleware=[Middleware(Guard, access=access)])


def serve(
    app: Celery,
    access: Access,
    *,
    address: str = "127.0.0.1",
    port: int = 5555,
    db: str = "celeriac-monitor.sqlite",
    max_tasks: int = MAX_TASKS,
    inspect_timeout: float = 1.0,
    on_ready: Callable[[str], object] | None = None,
) -> None:
    """``celeriac monitor``: check the exposure, open the history, start the monitor, serve
    until interrupted (Ctrl-C), stop. ``ValueError`` for bad options, naming them."""
    check_exposure(address, access)
    store = TaskStore(db, max_tasks=max_tasks)
    monitor = Monitor(app, store, inspect_timeout=inspect_timeout)
    monitor.start()
    try:
        if on_ready is not None:
            on_ready(f"http://{address}:{port}/")
        uvicorn.run(create_app(monitor, access), host=address, port=port, log_level="warning")
    finally:
        monitor.stop()
        store.close()


__all__ = ["create_app", "serve"]
