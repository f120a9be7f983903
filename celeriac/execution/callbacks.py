"""What a worker sends after a task of a canvas ends (Celery's tracer and backend, in one place).

After a success: each ``link`` callback gets the return value prepended to its arguments
(unless immutable; several callbacks go out as one group), then the chain's next step (the
last item of ``embed.chain``) with the rest of the chain. After a failure: the errbacks, with
Celery's arguments (a function task taking more than one argument is called here as
``errback(request, exc, traceback)``; every other one is sent with ``(task_id,)``), and every
pending step of the chain is marked FAILURE. Either way, a chord header task reports to the
result store, and the worker that completes the header publishes the body (or, when a
header task failed, fails it with :class:`~celeriac.exceptions.ChordError`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.backends.capabilities import ChordParts, JoinsChords
from celeriac.canvas import Signature, group, maybe_signature
from celeriac.canvas.chord import JOINING_STORES
from celeriac.exceptions import ChordError, NotRegistered
from celeriac.execution.context import Context

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.execution.hooks import Outcome, TaskRun

logger = logging.getLogger("celeriac.app.trace")


def has_canvas(run: TaskRun) -> bool:
    call = run.call
    return bool(call.callbacks or call.errbacks or call.chain or call.chord)


def after_success(run: TaskRun, retval: Any) -> None:
    """Publish the callbacks and the chain's next step; report a chord part."""
    call, app = run.call, run.app
    options: dict[str, Any] = {"parent_id": call.id, "root_id": call.root_id or call.id}
    callbacks = [_sig(c, app) for c in call.callbacks or ()]
    if len(callbacks) == 1:
        callbacks[0].apply_async((retval,), **options)
    elif callbacks:
        plain = [c for c in callbacks if not isinstance(c, group)]
        for nested in (c for c in callbacks if isinstance(c, group)):
            nested.apply_async((retval,), **options)
        if plain:
            group(plain, app=app).apply_async((retval,), **options)
    if call.chain:
        rest = list(call.chain)
        _sig(rest.pop(), app).apply_async((retval,), chain=rest, **options)
    _chord_part(run, states.SUCCESS, retval)


def after_failure(run: TaskRun, outcome: Outcome) -> None:
    """Call or send the errbacks, fail the rest of the chain, report a chord part."""
    exc = outcome.exception
    assert exc is not None
    call_errbacks(run.app, run.request, exc, outcome.traceback)
    if run.store_errors:
        fail_chain(run.app, run.call.chain, exc, outcome.traceback)
    _chord_part(run, states.FAILURE, exc)


def call_errbacks(app: Celery, request: Context, exc: BaseException, traceback: str | None) -> None:
    """Celery's ``_call_task_errbacks``: new-style errbacks run here, old-style are sent."""
    sent: list[Signature] = []
    for errback in request.errbacks or ():
        sig = _sig(errback, app)
        try:
            task = sig.type
        except NotRegistered:  # another worker may know it: send it
            sent.append(sig)
            continue
        if not task.takes_request_errback():
            sent.append(sig)
            continue
        try:
            sig(request, exc, traceback)
        except Exception:
            logger.exception("Errback %r raised an exception", sig.task)
    if sent:
        task_id = request.id
        options: dict[str, Any] = {"parent_id": task_id, "root_id": request.root_id or task_id}
        errbacks = group(sent, app=app)
        if app.conf.task_always_eager or (request.delivery_info or {}).get("is_eager"):
            errbacks.apply((task_id,), **options)
        else:
            errbacks.apply_async((task_id,), **options)


def fail_chain(
    app: Celery, chain: Sequence[Any] | None, exc: BaseException, traceback: str | None
) -> None:
    """Mark the chain's pending steps FAILURE, so a client waiting on the last one stops."""
    for step in chain or ():
        sig = _sig(step, app)
        task_id = sig.options.get("task_id")
        if task_id is None:
            continue
        context = Context(id=task_id, task=sig.task, group=sig.options.get("group_id"))
        app.backend.mark_as_failure(task_id, exc, traceback=traceback, request=context)


def _chord_part(run: TaskRun, state: str, value: Any) -> None:
    call = run.call
    if not call.chord or not call.group_id:
        return
    backend = run.app.backend
    if not isinstance(backend, JoinsChords):
        logger.error(
            "Task %s[%s] is part of chord %s, but the result store %s cannot count a chord's "
            "tasks, so the chord's body will never run: set result_backend to %s.",
            run.name,
            call.id,
            call.group_id,
            backend.as_uri(),
            JOINING_STORES,
        )
        return
    parts = backend.chord_part_return(call.group_id, call.id, call.group_index, state, value)
    if parts is not None:
        publish_body(run.app, backend, _sig(call.chord, run.app), parts)


def publish_body(app: Celery, backend: JoinsChords, body: Signature, parts: ChordParts) -> None:
    """The header is complete: send the body its results, or fail it with ChordError."""
    try:
        for task_id, state, value in parts.results:
            if state in states.PROPAGATE_STATES:
                raise ChordError(f"Dependency {task_id} raised {value!r}")
        try:
            body.apply_async(([value for _, _, value in parts.results],))
        except Exception as exc:
            logger.exception("Chord callback for %r raised: %r", parts.group_id, exc)
            raise ChordError(f"Callback error: {exc!r}") from exc
    except ChordError as exc:
        logger.error("Chord %r raised: %r", parts.group_id, exc)
        chord_error(app, body, exc)
    finally:
        backend.chord_done(parts)


def chord_error(app: Celery, body: Signature, exc: ChordError) -> None:
    """Fail the body: its errbacks run, its result is FAILURE, its chain fails with it."""
    body_id = body.options.get("task_id")
    request = Context(
        id=body_id,
        task=body.task,
        args=body.args,
        kwargs=body.kwargs,
        errbacks=body.options.get("link_error"),
        group=body.options.get("group_id"),
        root_id=body.options.get("root_id"),
        delivery_info={},
    )
    try:
        call_errbacks(app, request, exc, None)
    except Exception:
        logger.exception("The errbacks of chord body %s[%s] failed", body.task, body_id)
    if body_id:
        app.backend.mark_as_failure(body_id, exc, request=request)
    fail_chain(app, body.options.get("chain"), exc, None)


def _sig(value: Any, app: Celery) -> Signature:
    sig = maybe_signature(value, app=app)
    if sig is None:
        raise ValueError(
            "A canvas message carries an empty callback (null) where a signature "
            "was expected: the sending client is broken"
        )
    return sig


__all__ = [
    "after_failure",
    "after_success",
    "call_errbacks",
    "chord_error",
    "fail_chain",
    "has_canvas",
    "publish_body",
]
