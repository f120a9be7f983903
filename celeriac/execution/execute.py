"""Run one task call through the hook pipeline; shared by every pool and by eager mode.

``execute`` needs no Worker: ``Task.apply()`` calls it with ``is_eager=True``. It pushes the
request context, runs the before-hooks, the body, and the after-hooks (in reverse), and
returns an :class:`Outcome`. Control-flow exceptions from ``celeriac.exceptions`` map to
states: ``Retry`` -> RETRY, ``Ignore`` -> IGNORED (nothing stored), ``Reject`` -> REJECTED
(the worker rejects the message, requeueing it when asked).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Mapping, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any

from celeriac import signals, states
from celeriac.exceptions import Ignore, Reject, Retry
from celeriac.execution.aio import run_awaitable
from celeriac.execution.context import Context
from celeriac.execution.einfo import ExceptionInfo
from celeriac.execution.hooks import (
    Hook,
    Outcome,
    TaskRun,
    failure_outcome,
    format_traceback,
)
from celeriac.execution.pipeline import pipeline_for
from celeriac.result import denied_join_result
from celeriac.utils.current import reset_current_task, set_current_task

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.app.task import Task
    from celeriac.protocol.message import TaskCall

logger = logging.getLogger("celeriac.worker.execute")


def execute(
    app: Celery,
    task: Task[Any, Any],
    call: TaskCall,
    *,
    hostname: str,
    delivery_info: Mapping[str, Any] | None = None,
    properties: Mapping[str, Any] | None = None,
    is_eager: bool = False,
    store_result: bool = True,
    hooks: Sequence[Hook] | None = None,
) -> Outcome:
    """Execute ``call`` with ``task`` and return how it ended (never raises for task errors).

    Args:
        delivery_info: ``request.delivery_info`` (exchange, routing_key, priority, redelivered).
        properties: the message properties (``reply_to``, ``correlation_id`` for rpc results).
        store_result: False keeps every state out of the result backend (eager default).
        hooks: the pipeline; default: the app's (:func:`~celeriac.execution.pipeline.pipeline_for`),
            without the worker's time limits.
    """
    if hooks is None:
        hooks = pipeline_for(app, "eager" if is_eager else "default")
    request = build_context(call, hostname, delivery_info, properties, is_eager)
    run = _task_run(app, task, call, request, hostname, is_eager, store_result)
    task.push_request(request)
    token = set_current_task(task)
    try:
        entered: list[Hook] = []
        start = perf_counter()
        try:
            _before(hooks, run, entered)
            # In a worker, result.get() inside the body raises (Celery's deadlock guard)
            # unless called with disable_sync_subtasks=False.
            with contextlib.nullcontext() if is_eager else denied_join_result():
                retval = task.run(*call.args, **call.kwargs)
                if inspect.isawaitable(retval):  # an ``async def`` task outside asyncio
                    retval = run_awaitable(retval)
            outcome = Outcome(states.SUCCESS, retval, None, perf_counter() - start, None)
        except Exception as exc:
            outcome = _outcome_for(exc, perf_counter() - start)
        return _finish(entered, run, outcome)
    finally:
        reset_current_task(token)
        task.pop_request()


async def execute_async(
    app: Celery,
    task: Task[Any, Any],
    call: TaskCall,
    *,
    hostname: str,
    delivery_info: Mapping[str, Any] | None = None,
    properties: Mapping[str, Any] | None = None,
) -> Outcome:
    """:func:`execute` for the asyncio pool: an ``async def`` body is awaited on this loop.

    Run it in its own ``asyncio`` task: the request context and current task are
    contextvars, so concurrent tasks on one loop each see their own ``self.request``.
    Hooks (result storage, signals) are short and run on the loop thread.
    """
    request = build_context(call, hostname, delivery_info, properties, False)
    run = _task_run(app, task, call, request, hostname, False, True)
    task.push_request(request)
    token = set_current_task(task)
    try:
        entered: list[Hook] = []
        start = perf_counter()
        try:
            _before(pipeline_for(app, "default"), run, entered)
            with denied_join_result():
                retval = task.run(*call.args, **call.kwargs)
                if inspect.isawaitable(retval):
                    retval = await retval
            outcome = Outcome(states.SUCCESS, retval, None, perf_counter() - start, None)
        except Exception as exc:
            outcome = _outcome_for(exc, perf_counter() - start)
        return _finish(entered, run, outcome)
    finally:
        reset_current_task(token)
        task.pop_request()


def _before(hooks: Sequence[Hook], run: TaskRun, entered: list[Hook]) -> None:
    for hook in hooks:
        if hook.has_before:
            hook.before(run)
        entered.append(hook)


def _finish(entered: list[Hook], run: TaskRun, outcome: Outcome) -> Outcome:
    for hook in reversed(entered):
        if hook.has_after:
            outcome = _after(hook, run, outcome)
    return outcome


def build_context(
    call: TaskCall,
    hostname: str,
    delivery_info: Mapping[str, Any] | None,
    properties: Mapping[str, Any] | None,
    is_eager: bool,
) -> Context:
    """The ``task.request`` for ``call`` (Celery's field names)."""
    props = dict(properties or {})
    return Context(
        id=call.id,
        task=call.name,
        args=call.args,
        kwargs=call.kwargs,
        retries=call.retries,
        hostname=hostname,
        delivery_info=dict(delivery_info or {}),
        is_eager=is_eager,
        called_directly=False,
        root_id=call.root_id,
        parent_id=call.parent_id,
        group=call.group_id,
        group_index=call.group_index,
        eta=call.eta.isoformat() if call.eta else None,
        expires=call.expires.isoformat() if call.expires else None,
        timelimit=call.timelimit,
        reply_to=props.get("reply_to"),
        correlation_id=props.get("correlation_id") or call.id,
        origin=call.origin,
        argsrepr=call.argsrepr,
        kwargsrepr=call.kwargsrepr,
        headers=dict(call.extra_headers),
        properties=props,
        callbacks=call.callbacks,
        errbacks=call.errbacks,
        chain=call.chain,
        chord=call.chord,
        ignore_result=call.ignore_result,
        shadow=call.shadow,
        stamps=dict(call.stamps),
        stamped_headers=call.stamped_headers,
        replaced_task_nesting=call.replaced_task_nesting,
    )


def _task_run(
    app: Celery,
    task: Task[Any, Any],
    call: TaskCall,
    request: Context,
    hostname: str,
    is_eager: bool,
    store_result: bool,
) -> TaskRun:
    # Celery: results are published unless ignored (errors: see stores_errors).
    ignored = ignores_result(task, call.ignore_result)
    return TaskRun(
        app=app,
        task=task,
        call=call,
        request=request,
        hostname=hostname,
        is_eager=is_eager,
        publish_result=store_result and not ignored,
        store_errors=store_result and stores_errors(task, ignored),
    )


def store_retry_state(task: Task[Any, Any], request: Context, cause: BaseException) -> bool:
    """Store RETRY for a worker's ``Task.retry()`` before it sends the retried message, so a
    quick next attempt (another thread or worker) never has its state replaced by this one's
    RETRY. Return True when stored (the worker's hook then does not store it again)."""
    if request.id is None or not stores_errors(task, ignores_result(task, request.ignore_result)):
        return False
    try:
        task.app.backend.store_result(
            request.id,
            cause,
            states.RETRY,
            traceback=format_traceback(cause) if cause.__traceback__ is not None else None,
            request=request,
        )
    except Exception:  # the hook tries again after the task; the retry itself goes on
        logger.exception("Storing RETRY for %s[%s] failed", task.name, request.id)
        return False
    return True


def ignores_result(task: Task[Any, Any], ignore_result: bool | None) -> bool:
    """The call's ``ignore_result`` option, else the task's, else ``task_ignore_result``."""
    return bool(ignore_result) or bool(task.resolve("ignore_result", "task_ignore_result"))


def stores_errors(task: Task[Any, Any], ignored: bool) -> bool:
    """Celery: errors are stored unless the result is ``ignored``, or when
    ``store_errors_even_if_ignored`` (task, else setting) says so anyway."""
    return not ignored or bool(
        task.resolve("store_errors_even_if_ignored", "task_store_errors_even_if_ignored")
    )


def _outcome_for(exc: Exception, runtime: float) -> Outcome:
    if isinstance(exc, Retry):
        return Outcome(states.RETRY, exc, format_traceback(exc), runtime, exc)
    if isinstance(exc, Ignore):
        return Outcome(states.IGNORED, exc, None, runtime, exc)
    if isinstance(exc, Reject):
        return Outcome(states.REJECTED, exc, None, runtime, exc)
    return failure_outcome(exc, runtime)


def _after(hook: Hook, run: TaskRun, outcome: Outcome) -> Outcome:
    # One failing after-hook (a signal receiver, a result store hiccup) must not skip the
    # others, nor turn into an exception the pool would have to understand.
    try:
        replaced = hook.after(run, outcome)
    except Exception as exc:
        logger.exception(
            "Hook %s failed after task %s[%s]", type(hook).__name__, run.name, run.call.id
        )
        _internal_error(run, exc)
        return outcome
    return outcome if replaced is None else replaced


def _internal_error(run: TaskRun, exc: Exception) -> None:
    """Celery's ``task_internal_error``: the worker failed around the task, not the task."""
    if not signals.task_internal_error.has_receivers:
        return
    einfo = ExceptionInfo(exc)
    einfo.internal = True
    signals.task_internal_error.send(
        sender=run.task,
        task_id=run.call.id,
        args=run.call.args,
        kwargs=run.call.kwargs,
        request=run.request,
        exception=exc,
        traceback=exc.__traceback__,
        einfo=einfo,
    )


__all__ = [
    "Outcome",
    "build_context",
    "execute",
    "execute_async",
    "format_traceback",
    "ignores_result",
    "store_retry_state",
    "stores_errors",
]
