"""Flower's HTTP API, on Flower's paths with Flower's JSON shapes.

Reads: ``/api/workers`` (``refresh``, ``status``, ``workername``), ``/api/tasks`` (``limit``,
``offset``, ``sort_by``, ``workername``, ``taskname``, ``state``, ``received_start``,
``received_end``, ``search``), ``/api/task/types``, ``/api/task/info/<id>``,
``/api/task/result/<id>`` (``timeout``), ``/api/queues/length``. Controls (POST): apply and
send a task, revoke, rate and time limits, pool grow / shrink / autoscale, queue consumers,
worker shutdown. Blocking calls (the broker, remote control) run in a thread.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from celeriac import states
from celeriac.exceptions import TimeoutError as CeleriacTimeoutError
from celeriac.web.documents import flower_document
from celeriac.web.monitor import Monitor
from celeriac.web.store import TaskQuery

#: How long a control waits for the worker's answer (seconds).
REPLY_TIMEOUT = 2.0
_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d")


class BadRequest(Exception):
    """Bad input: answered 400 with the message (which names the parameter)."""


class NotFound(Exception):
    """Answered 404 with the message."""


class Refused(Exception):
    """The worker said no: answered 403 with its reason."""


Handler = Callable[[Request], Awaitable[Response]]


def _errors(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except NotFound as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        except Refused as exc:
            return JSONResponse({"error": str(exc)}, status_code=403)

    return wrapped


async def arguments(request: Request) -> dict[str, str]:
    """A control's arguments as Flower reads them (Tornado's ``get_argument``): the query
    string's and the form's together, the form's value winning. Flower's own examples pass
    them either way (``POST /api/task/revoke/<id>?terminate=true``, or a form body)."""
    found = {key: value for key, value in request.query_params.items()}
    form = await request.form()
    for key, value in form.multi_items():
        if isinstance(value, str):
            found[key] = value
    return found


def integer(value: str | None, name: str, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {value!r}") from None


def boolean(value: str | None, name: str) -> bool:
    """Flower's truth values (``strtobool``): y, yes, t, true, on, 1 and their opposites."""
    if value is None or value == "":
        return False
    lowered = value.strip().lower()
    if lowered in ("y", "yes", "t", "true", "on", "1"):
        return True
    if lowered in ("n", "no", "f", "false", "off", "0"):
        return False
    raise BadRequest(f"{name} must be true or false, not {value!r}")


def number(value: str | None, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise BadRequest(f"{name} must be a number, not {value!r}") from None


def moment(value: str | None, name: str) -> float | None:
    """Epoch seconds, or Flower's ``YYYY-MM-DD HH:MM`` (UTC)."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    for format_ in _DATE_FORMATS:
        try:
            parsed = datetime.datetime.strptime(value, format_)
        except ValueError:
            continue
        return parsed.replace(tzinfo=datetime.timezone.utc).timestamp()
    raise BadRequest(f"{name} must be epoch seconds or 'YYYY-MM-DD HH:MM', not {value!r}")


def task_query(params: dict[str, str], default_limit: int | None = None) -> TaskQuery:
    """A listing's query from Flower's parameter names (the pages use the same names)."""
    try:
        return TaskQuery(
            state=params.get("state") or None,
            name=params.get("taskname") or None,
            worker=params.get("workername") or None,
            since=moment(params.get("received_start"), "received_start"),
            until=moment(params.get("received_end"), "received_end"),
            search=params.get("search") or None,
            sort_by=params.get("sort_by") or "-timestamp",
            limit=integer(params.get("limit"), "limit", default_limit),
            offset=integer(params.get("offset"), "offset", 0) or 0,
        )
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


class FlowerAPI:
    """The API's handlers over one :class:`Monitor`."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.app = monitor.app

    def routes(self) -> list[Route]:
        get, post = ["GET"], ["POST"]
        table: list[tuple[str, Handler, list[str]]] = [
            ("/api/workers", self.workers, get),
            ("/api/tasks", self.tasks, get),
            ("/api/task/types", self.task_types, get),
            ("/api/task/info/{task_id}", self.task_info, get),
            ("/api/task/result/{task_id}", self.task_result, get),
            ("/api/queues/length", self.queues_length, get),
            ("/api/task/async-apply/{name}", self.async_apply, post),
            ("/api/task/send-task/{name}", self.send_task, post),
            ("/api/task/revoke/{task_id}", self.revoke, post),
            ("/api/task/rate-limit/{name}", self.rate_limit, post),
            ("/api/task/timeout/{name}", self.time_limit, post),
            ("/api/worker/pool/grow/{worker}", self.pool_grow, post),
            ("/api/worker/pool/shrink/{worker}", self.pool_shrink, post),
            ("/api/worker/pool/autoscale/{worker}", self.autoscale, post),
            ("/api/worker/queue/add-consumer/{worker}", self.add_consumer, post),
            ("/api/worker/queue/cancel-consumer/{worker}", self.cancel_consumer, post),
            ("/api/worker/shutdown/{worker}", self.shutdown, post),
        ]
        return [Route(path, _errors(handler), methods=m) for path, handler, m in table]

    # -- reads -----------------------------------------------------------------------------
    async def workers(self, request: Request) -> Response:
        params = request.query_params
        name = params.get("workername")
        if name:
            self._known_worker(name)
        if params.get("status") in ("1", "true", "True"):
            alive = {w.hostname: w.alive for w in self.monitor.workers()}
            return JSONResponse({k: v for k, v in alive.items() if not name or k == name})
        if params.get("refresh") in ("1", "true", "True"):
            await run_in_threadpool(self.monitor.refresh, [name] if name else None)
        info = {k: v for k, v in self.monitor.inspected.items() if v and (not name or k == name)}
        return JSONResponse(info)

    async def tasks(self, request: Request) -> Response:
        query = task_query(dict(request.query_params))
        _, found = await run_in_threadpool(self.monitor.tasks, query)
        return JSONResponse({task.doc["uuid"]: flower_document(task.doc) for task in found})

    async def task_types(self, request: Request) -> Response:
        return JSONResponse({"task-types": await run_in_threadpool(self.monitor.task_types)})

    async def task_info(self, request: Request) -> Response:
        task_id = request.path_params["task_id"]
        task = await run_in_threadpool(self.monitor.task, task_id)
        if task is None:
            raise NotFound(f"Unknown task '{task_id}'")
        return JSONResponse(flower_document(task.doc))

    async def task_result(self, request: Request) -> Response:
        task_id = request.path_params["task_id"]
        timeout = number(request.query_params.get("timeout"), "timeout")
        return JSONResponse(await run_in_threadpool(self._read_result, task_id, timeout))

    def _read_result(self, task_id: str, timeout: float | None) -> dict[str, Any]:
        result = self.app.AsyncResult(task_id)
        response: dict[str, Any] = {"task-id": task_id, "state": result.state}
        if timeout:
            try:
                result.get(timeout=timeout, propagate=False)
            except CeleriacTimeoutError:
                return response
            response["state"] = result.state
        elif not result.ready():
            return response
        if result.state == states.FAILURE:
            response["result"] = _json_safe(result.result)
            response["traceback"] = result.traceback
        else:
            response["result"] = _json_safe(result.result)
        return response

    async def queues_length(self, request: Request) -> Response:
        lengths = await run_in_threadpool(self.monitor.queue_lengths)
        return JSONResponse({"active_queues": lengths})

    # -- tasks -----------------------------------------------------------------------------
    async def async_apply(self, request: Request) -> Response:
        name = request.path_params["name"]
        args, kwargs, options = _task_arguments(await request.body())
        task = self.app.tasks.get(name)
        if task is None:
            raise NotFound(
                f"Unknown task '{name}': the monitor's app does not define it (use "
                "/api/task/send-task/ to send a task by name)"
            )
        result = await run_in_threadpool(lambda: task.apply_async(args, kwargs, **options))
        return JSONResponse({"task-id": result.id, "state": result.state})

    async def send_task(self, request: Request) -> Response:
        name = request.path_params["name"]
        args, kwargs, options = _task_arguments(await request.body())
        result = await run_in_threadpool(
            lambda: self.app.send_task(name, args=args, kwargs=kwargs, **options)
        )
        return JSONResponse({"task-id": result.id, "state": result.state})

    async def revoke(self, request: Request) -> Response:
        task_id = request.path_params["task_id"]
        form = await arguments(request)
        terminate = boolean(form.get("terminate"), "terminate")
        signal = form.get("signal") or "SIGTERM"
        await run_in_threadpool(
            lambda: self.app.control.revoke(task_id, terminate=terminate, signal=signal)
        )
        return JSONResponse({"message": f"Revoked '{task_id}'"})

    async def rate_limit(self, request: Request) -> Response:
        name = request.path_params["name"]
        form = await arguments(request)
        worker = form.get("workername") or ""
        limit = form.get("ratelimit")
        if limit is None:
            raise BadRequest("ratelimit is required (e.g. 10/m; 0 removes the limit)")
        await self._control(
            worker,
            "rate_limit",
            {"task_name": name, "rate_limit": str(limit)},
            f"Failed to set rate limit of '{name}'",
        )
        return JSONResponse({"message": "new rate limit set successfully"})

    async def time_limit(self, request: Request) -> Response:
        name = request.path_params["name"]
        form = await arguments(request)
        worker = form.get("workername") or ""
        hard = number(form.get("hard"), "hard")
        soft = number(form.get("soft"), "soft")
        await self._control(
            worker,
            "time_limit",
            {"task_name": name, "hard": hard, "soft": soft},
            f"Failed to set time limits of '{name}'",
        )
        return JSONResponse({"message": "time limits set successfully"})

    # -- workers ---------------------------------------------------------------------------
    async def pool_grow(self, request: Request) -> Response:
        worker = request.path_params["worker"]
        n = integer((await arguments(request)).get("n"), "n", 1)
        await self._control(worker, "pool_grow", {"n": n}, f"Failed to grow '{worker}'s pool")
        return JSONResponse({"message": f"Growing '{worker}' worker's pool by {n}"})

    async def pool_shrink(self, request: Request) -> Response:
        worker = request.path_params["worker"]
        n = integer((await arguments(request)).get("n"), "n", 1)
        await self._control(worker, "pool_shrink", {"n": n}, f"Failed to shrink '{worker}'s pool")
        return JSONResponse({"message": f"Shrinking '{worker}' worker's pool by {n}"})

    async def autoscale(self, request: Request) -> Response:
        worker = request.path_params["worker"]
        form = await arguments(request)
        low = integer(form.get("min"), "min")
        high = integer(form.get("max"), "max")
        if low is None or high is None:
            raise BadRequest("autoscale needs both min and max")
        await self._control(
            worker, "autoscale", {"max": high, "min": low}, f"Failed to autoscale '{worker}'"
        )
        return JSONResponse({"message": f"Autoscaling '{worker}' worker (min={low}, max={high})"})

    async def add_consumer(self, request: Request) -> Response:
        worker = request.path_params["worker"]
        queue = (await arguments(request)).get("queue")
        if not queue:
            raise BadRequest("queue is required (the name of the queue to consume from)")
        ok = await self._control(
            worker,
            "add_consumer",
            {"queue": queue, "exchange": None, "exchange_type": "direct", "routing_key": None},
            f"Failed to add '{queue}' consumer to '{worker}'",
        )
        return JSONResponse({"message": ok or f"add consumer {queue}"})

    async def cancel_consumer(self, request: Request) -> Response:
        worker = request.path_params["worker"]
        queue = (await arguments(request)).get("queue")
        if not queue:
            raise BadRequest("queue is required (the name of the queue to stop consuming)")
        ok = await self._control(
            worker,
            "cancel_consumer",
            {"queue": queue},
            f"Failed to cancel '{queue}' consumer from '{worker}'",
        )
        return JSONResponse({"message": ok or f"no longer consuming from {queue}"})

    async def shutdown(self, request: Request) -> Response:
        worker = request.path_params["worker"]
        self._known_worker(worker)
        await run_in_threadpool(lambda: self.app.control.shutdown(destination=[worker]))
        return JSONResponse({"message": "Shutting down!"})

    # -- helpers ---------------------------------------------------------------------------
    def _known_worker(self, name: str) -> None:
        if name not in self.monitor.state.workers and name not in self.monitor.inspected:
            raise NotFound(f"Unknown worker '{name}'")

    async def _control(
        self, worker: str, command: str, arguments: dict[str, Any], failure: str
    ) -> str | None:
        """Send ``command`` to ``worker`` (every worker when empty) and wait for the answer;
        returns the worker's ``ok`` text, raises :class:`Refused` with its error."""
        if worker:
            self._known_worker(worker)
        destination = [worker] if worker else None

        def ask() -> list[dict[str, Any]] | None:
            with self.monitor.control_lock:
                return self.app.control.broadcast(
                    command, arguments, destination=destination, reply=True, timeout=REPLY_TIMEOUT
                )

        replies = await run_in_threadpool(ask)
        answers = [answer for reply in replies or () for answer in reply.values()]
        if not answers:
            raise Refused(f"{failure}: no worker answered within {REPLY_TIMEOUT} s")
        for answer in answers:
            if isinstance(answer, dict) and "error" in answer:
                raise Refused(f"{failure}: {answer['error']}")
        first = answers[0]
        return str(first["ok"]) if isinstance(first, dict) and "ok" in first else None


def _task_arguments(body: bytes) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    try:
        options = json.loads(body) if body else {}
    except ValueError as exc:
        raise BadRequest(
            f"the body must be JSON ({{'args': [...], 'kwargs': {{...}}}}): {exc}"
        ) from None
    if not isinstance(options, dict):
        raise BadRequest("the body must be a JSON object: {'args': [...], 'kwargs': {...}}")
    args = options.pop("args", [])
    kwargs = options.pop("kwargs", {})
    if not isinstance(args, list):
        raise BadRequest("args must be an array")
    if not isinstance(kwargs, dict):
        raise BadRequest("kwargs must be an object")
    for key in ("countdown", "expires"):
        if key in options:
            options[key] = number(str(options[key]), key)
    return args, kwargs, options


def _json_safe(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


__all__ = ["FlowerAPI", "task_query"]
