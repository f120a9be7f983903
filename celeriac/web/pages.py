"""The server-rendered pages: dashboard, tasks, task, worker, broker.

Each page is a Jinja2 template under ``templates/``; asked with the ``X-Fragment`` header
(what the live script does when ``/live`` says something changed) it renders only its
content. Controls are forms posting to the API paths with the CSRF token, each behind a
confirmation; with ``--read-only`` they are not drawn at all.
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from celeriac import states
from celeriac.drivers.urls import mask_url
from celeriac.web import charts, deadletters, schedules
from celeriac.web.api import BadRequest, task_query
from celeriac.web.live import live_endpoint
from celeriac.web.monitor import Monitor
from celeriac.web.security import CSRF_FIELD, Access, csrf_token
from celeriac.web.store import StoredTask
from celeriac.web.workflow import NODE_HEIGHT, NODE_WIDTH, layout

HERE = Path(__file__).resolve().parent
#: Rows on one page of the task list.
PAGE_SIZE = 50
#: The states offered by the task list's filter.
STATES = (
    states.PENDING,
    states.RECEIVED,
    states.STARTED,
    states.SUCCESS,
    states.FAILURE,
    states.RETRY,
    states.REVOKED,
    states.REJECTED,
)


def when(value: Any) -> str:
    """Epoch seconds as ``YYYY-MM-DD HH:MM:SS.mmm`` UTC (empty for nothing)."""
    if not isinstance(value, int | float):
        return ""
    moment = datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def duration(value: Any) -> str:
    if not isinstance(value, int | float):
        return ""
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.3f} s"


class Pages:
    """The HTML routes over one :class:`Monitor`."""

    def __init__(self, monitor: Monitor, access: Access) -> None:
        self.monitor = monitor
        self.access = access
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters["when"] = when
        self.env.filters["duration"] = duration

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.dashboard),
            Route("/tasks", self.tasks),
            Route("/task/{task_id}", self.task),
            Route("/worker/{worker}", self.worker),
            Route("/broker", self.broker),
            Route("/charts", self.charts),
            *schedules.routes(self.monitor.app, self.render),
            *deadletters.routes(self.monitor.app, self.render),
            Route("/workflow/{task_id}", self.workflow),
            Route("/live", live_endpoint(self.monitor)),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        template = self.env.get_template(name)
        html = template.render(
            fragment=request.headers.get("x-fragment") == "1",
            controls=not self.access.read_only,
            csrf=csrf_token(request),
            csrf_field=CSRF_FIELD,
            path=request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    async def dashboard(self, request: Request) -> Response:
        workers = self.monitor.workers()
        counts = await run_in_threadpool(self._counts)
        return self.render(
            request, "dashboard.html", title="Dashboard", workers=workers, counts=counts
        )

    def _counts(self) -> dict[str, int]:
        self.monitor.flush()
        return self.monitor.store.counts_by_state()

    async def tasks(self, request: Request) -> Response:
        params = dict(request.query_params)
        page = max(1, _int(params.pop("page", "1")))
        params.pop("limit", None)
        params.pop("offset", None)
        try:
            query = task_query(
                {**params, "limit": str(PAGE_SIZE), "offset": str((page - 1) * PAGE_SIZE)}
            )
        except BadRequest as exc:
            return self.render(request, "error.html", status=400, title="Tasks", message=str(exc))
        total, found = await run_in_threadpool(self.monitor.tasks, query)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        kept = {k: v for k, v in params.items() if v}
        return self.render(
            request,
            "tasks.html",
            title="Tasks",
            tasks=[t.doc for t in found],
            total=total,
            page=page,
            pages=pages,
            params=kept,
            link=lambda n: "/tasks?" + urlencode({**kept, "page": n}),
            states=STATES,
            names=await run_in_threadpool(self.monitor.task_types),
            workers=[w.hostname for w in self.monitor.workers()],
        )

    def _unknown_task(self, request: Request, title: str, task_id: str) -> Response:
        return self.render(
            request,
            "error.html",
            status=404,
            title=title,
            message=f"Unknown task '{task_id}' (not seen by this monitor)",
        )

    async def task(self, request: Request) -> Response:
        task_id = request.path_params["task_id"]
        found = await run_in_threadpool(self.monitor.task, task_id)
        if found is None:
            return self._unknown_task(request, "Task", task_id)
        timeline = []
        first = found.history[0][1] if found.history else None
        for state, at in found.history:
            since = at - first if at is not None and first is not None else None
            timeline.append({"state": state, "at": at, "since": since})
        group_id = found.doc.get("group")
        members = await run_in_threadpool(self.monitor.group, str(group_id)) if group_id else []
        return self.render(
            request,
            "task.html",
            title=f"Task {task_id}",
            task=found.doc,
            timeline=timeline,
            ready=found.doc.get("state") in states.READY_STATES,
            group=_group(str(group_id), found.doc, members) if group_id else None,
        )

    async def workflow(self, request: Request) -> Response:
        task_id = request.path_params["task_id"]
        found = await run_in_threadpool(self.monitor.task, task_id)
        if found is None:
            return self._unknown_task(request, "Workflow", task_id)
        root_id = str(found.doc.get("root_id") or task_id)
        family = await run_in_threadpool(self.monitor.family, root_id)
        return self.render(
            request,
            "workflow.html",
            title="Workflow",
            graph=layout(root_id, family),
            node_width=NODE_WIDTH,
            node_height=NODE_HEIGHT,
        )

    async def worker(self, request: Request) -> Response:
        name = request.path_params["worker"]
        summary = next((w for w in self.monitor.workers() if w.hostname == name), None)
        if summary is None:
            return self.render(
                request,
                "error.html",
                status=404,
                title="Worker",
                message=f"Unknown worker '{name}' (no event from it yet)",
            )
        info = self.monitor.inspected.get(name) or {}
        if summary.alive and not info.get("stats") and request.headers.get("x-fragment") != "1":
            info = (await run_in_threadpool(self.monitor.refresh, [name])).get(name, info)
        return self.render(
            request,
            "worker.html",
            title=f"Worker {name}",
            worker=summary,
            info=info,
            queues=[q for q in info.get("active_queues") or () if isinstance(q, dict)],
            registered=[str(t) for t in info.get("registered") or ()],
            stats=info.get("stats") or {},
            conf=info.get("conf") or {},
        )

    async def charts(self, request: Request) -> Response:
        return self.render(
            request,
            "charts.html",
            title="Charts",
            rates=self.monitor.recorder.rates(),
            queues=self.monitor.recorder.queue_lengths(),
            runtimes=charts.runtimes(self.monitor.metrics),
            window=charts.WINDOW // 60,
            step=charts.STEP,
        )

    async def broker(self, request: Request) -> Response:
        lengths = await run_in_threadpool(self.monitor.queue_lengths)
        return self.render(
            request,
            "broker.html",
            title="Broker",
            queues=lengths,
            broker=mask_url(self.monitor.app.broker_url_display()),
        )


def _group(group_id: str, doc: dict[str, Any], members: list[StoredTask]) -> dict[str, Any]:
    """What the task page says of the group or chord ``doc`` belongs to (celeriac's ``group``
    field): its header tasks in order, a chord's callback, and what this task is in it."""
    header = [m.doc for m in members if m.doc.get("group_index") is not None]
    callbacks = [m.doc for m in members if m.doc.get("group_index") is None]
    index = doc.get("group_index")
    if index is None:
        role = f"the callback of a chord of {len(header)}"
    else:
        kind = "chord" if callbacks else "group"
        role = f"task {int(index) + 1} of a {kind} of {len(header)}"
    return {"id": group_id, "header": header, "callbacks": callbacks, "role": role}


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 1


__all__ = ["PAGE_SIZE", "Pages", "duration", "when"]
