"""Outcomes the worker decides for a task whose process it ended: hard time limit, terminate.

The task body never returned, so the hooks did not run: these store the state and call what
Celery calls in the parent (``Request.on_timeout`` / ``Request.terminate``).
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING

from celeriac import signals
from celeriac.exceptions import TimeLimitExceeded

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.worker.request import Request

logger = logging.getLogger("celeriac.worker.request")


def store_hard_timeout(app: Celery, request: Request, limit: float) -> None:
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


def store_terminated(app: Celery, request: Request, signum: int) -> None:
    """REVOKED (reason ``terminated``) and ``task_revoked(terminated=True)``."""
    logger.info("Terminated task %s[%s] with %s", request.name, request.id, _name(signum))
    try:
        app.backend.mark_as_revoked(request.id, "terminated", request=request)
    except Exception as err:
        logger.debug("Could not store REVOKED for %s: %r", request.id, err)
    signals.task_revoked.send(
        sender=request.task, request=request, terminated=True, signum=signum, expired=False
    )


def _name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


__all__ = ["store_hard_timeout", "store_terminated"]
