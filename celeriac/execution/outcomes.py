"""Outcomes the worker decides for a task whose process it ended: hard time limit, terminate.

The task body never returned, so the hooks did not run: these store the state and call what
Celery calls in the parent (``Request.on_timeout`` / ``Request.terminate``).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from celeriac import signals
from celeriac.exceptions import TimeLimitExceeded, WorkerLostError

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.events.node import NodeEvents
    from celeriac.transports.base import Delivery
    from celeriac.worker.request import Request

AckFn = Callable[["Delivery"], None]
RejectFn = Callable[["Delivery", bool], None]  # (delivery, requeue): not exceptions.Reject

logger = logging.getLogger("celeriac.worker.request")


def store_hard_timeout(
    app: Celery, request: Request, limit: float, node: NodeEvents | None = None
) -> None:
    """FAILURE with ``TimeLimitExceeded(limit)``, then ``on_failure``, ``after_return`` and the
    ``task_failure`` signal, as Celery 5.7 does for a hard time limit."""
    logger.error("Hard time limit (%ss) exceeded for %s[%s]", limit, request.name, request.id)
    exc = TimeLimitExceeded(limit)
    call, task = request.call, request.task
    try:
        app.backend.mark_as_failure(request.id, exc)
    except Exception as err:  # the store is down or disabled: the ack policy still applies
        logger.error("Could not store the failure of %s: %r", request.id, err)
    try:
        task.on_failure(exc, call.id, call.args, call.kwargs, None)
        task.after_return("FAILURE", exc, call.id, call.args, call.kwargs, None)
    except Exception:
        logger.exception("Failure handler of %s[%s] raised", request.name, request.id)
    signals.task_failure.send(
        sender=task,
        task_id=call.id,
        exception=exc,
        args=call.args,
        kwargs=call.kwargs,
        traceback=None,
        einfo=None,
    )
    if node is not None:
        node.task("task-failed", uuid=call.id, exception=repr(exc), traceback=None)


def store_terminated(
    app: Celery, request: Request, signum: int, node: NodeEvents | None = None
) -> None:
    """REVOKED (reason ``terminated``) and ``task_revoked(terminated=True)``."""
    logger.info("Terminated task %s[%s] with %s", request.name, request.id, _name(signum))
    try:
        app.backend.mark_as_revoked(request.id, "terminated", request=request)
    except Exception as err:
        logger.debug("Could not store REVOKED for %s: %r", request.id, err)
    signals.task_revoked.send(
        sender=request.task, request=request, terminated=True, signum=signum, expired=False
    )
    if node is not None:
        node.task("task-revoked", uuid=request.id, terminated=True, signum=signum, expired=False)


def settle_ended(request: Request, ack: AckFn, reject: RejectFn) -> None:
    """A task the worker ended (hard limit, terminate): ack unless the policy says reject."""
    if request.acks_late and not request.acknowledged:
        if request.acks_on_failure_or_timeout:
            ack(request.delivery)
        else:
            reject(request.delivery, False)
    request.acknowledged = True


def worker_lost(
    app: Celery,
    request: Request,
    summary: str,
    ack: AckFn,
    reject: RejectFn,
    node: NodeEvents | None = None,
) -> None:
    """Celery's rules for a task whose process died (see its ``Request.on_failure``)."""
    exc = WorkerLostError(summary)
    logger.error("Task handler raised error: %r", exc)
    if node is not None:
        node.task("task-failed", uuid=request.id, exception=repr(exc), traceback=None)
    if request.acks_late and not request.acknowledged:
        request.acknowledged = True
        if request.reject_on_worker_lost:
            reject(request.delivery, True)  # redelivered; nothing stored
            return
        if request.acks_on_failure_or_timeout:
            ack(request.delivery)
        else:
            reject(request.delivery, False)
    try:
        app.backend.mark_as_failure(request.id, exc)
    except Exception as err:
        logger.error("Could not store the failure of %s: %r", request.id, err)


def lost_summary(task_id: str, exitcode: int | None) -> str:
    """Celery's WorkerLostError message for a process that died under a task."""
    if exitcode is not None and exitcode < 0:
        how = f"signal {-exitcode} ({signal.Signals(-exitcode).name})"
    else:
        how = f"exitcode {exitcode}"
    return f"Worker exited prematurely: {how} Job: {task_id}."


def store_lost_id(
    app: Celery, task_id: str, hard_limit: float | None, exitcode: int | None
) -> None:
    """Only the id of the task a dead process ran is known: store its failure."""
    exc: Exception = (
        TimeLimitExceeded(hard_limit)
        if hard_limit is not None
        else WorkerLostError(lost_summary(task_id, exitcode))
    )
    logger.error("Task %s ended with its process: %r", task_id, exc)
    try:
        app.backend.mark_as_failure(task_id, exc)
    except Exception as err:
        logger.error("Could not store the failure of %s: %r", task_id, err)


def _name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


__all__ = [
    "lost_summary",
    "settle_ended",
    "store_hard_timeout",
    "store_lost_id",
    "store_terminated",
    "worker_lost",
]
