"""The hook pipeline around a task body (dramatiq's middleware shape).

``before`` hooks run in order, ``after`` hooks in reverse, so the hook listed first wraps all
the others. Each concern of Celery's 343-line tracer is one small class here: signals, the
task's own handlers, the STARTED state, result storage and the log lines. An ``after`` hook
may return a new :class:`Outcome` (result storage does when the value cannot be encoded).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from celeriac import signals, states
from celeriac.backends.capabilities import write_batching
from celeriac.events.node import for_node
from celeriac.exceptions import Retry
from celeriac.execution import callbacks
from celeriac.execution.einfo import ExceptionInfo
from celeriac.execution.einfo import format_exception as format_traceback
from celeriac.protocol.saferepr import saferepr

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.app.task import Task
    from celeriac.execution.context import Context
    from celeriac.protocol.message import TaskCall

logger = logging.getLogger("celeriac.app.trace")

#: Longest repr of a result in a ``task-succeeded`` event (Celery's resultrepr_maxsize).
RESULT_REPR_MAXSIZE = 1024
#: States after which ``after_return`` is not called (Celery's IGNORE_STATES).
IGNORE_STATES = frozenset({states.IGNORED, states.RETRY, states.REJECTED})


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one execution ended: state, return value (or exception) and runtime in seconds."""

    state: str
    retval: Any
    traceback: str | None
    runtime: float
    exception: BaseException | None

    @property
    def einfo(self) -> ExceptionInfo | None:
        """Celery's ``einfo`` argument: the exception with its traceback text."""
        if self.exception is None:
            return None
        return ExceptionInfo(self.exception, self.traceback)


@dataclass(frozen=True, slots=True)
class TaskRun:
    """One execution as the hooks see it."""

    app: Celery
    task: Task[Any, Any]
    call: TaskCall
    request: Context
    hostname: str
    is_eager: bool
    publish_result: bool  # store SUCCESS (and STARTED)
    store_errors: bool  # store FAILURE / RETRY

    @property
    def name(self) -> str:
        return self.call.shadow or self.call.name


class Hook:
    """A step of the pipeline; override what you need."""

    #: Whether the class overrides ``before`` / ``after`` (the pipeline skips the others).
    has_before: ClassVar[bool] = False
    has_after: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.has_before = cls.before is not Hook.before
        cls.has_after = cls.after is not Hook.after

    def before(self, run: TaskRun) -> None:
        """Called before the task body, in pipeline order."""

    def after(self, run: TaskRun, outcome: Outcome) -> Outcome | None:
        """Called after the body, in reverse order; may return a replacement outcome."""
        return None


class PrerunPostrunSignals(Hook):
    """``task_prerun`` first and ``task_postrun`` last, as in Celery."""

    def before(self, run: TaskRun) -> None:
        if signals.task_prerun.has_receivers:
            signals.task_prerun.send(
                sender=run.task,
                task_id=run.call.id,
                task=run.task,
                args=run.call.args,
                kwargs=run.call.kwargs,
            )

    def after(self, run: TaskRun, outcome: Outcome) -> None:
        if signals.task_postrun.has_receivers:
            signals.task_postrun.send(
                sender=run.task,
                task_id=run.call.id,
                task=run.task,
                args=run.call.args,
                kwargs=run.call.kwargs,
                retval=outcome.retval,
                state=outcome.state,
            )


class AfterReturn(Hook):
    """``Task.after_return``, called once the state is final (not for retry/ignore/reject)."""

    def after(self, run: TaskRun, outcome: Outcome) -> None:
        if outcome.state in IGNORE_STATES:
            return
        call = run.call
        run.task.after_return(
            outcome.state, outcome.retval, call.id, call.args, call.kwargs, outcome.einfo
        )


class OutcomeSignals(Hook):
    """``task_success`` / ``task_failure`` / ``task_retry``."""

    def after(self, run: TaskRun, outcome: Outcome) -> None:
        if outcome.state == states.SUCCESS:
            if signals.task_success.has_receivers:
                signals.task_success.send(sender=run.task, result=outcome.retval)
        elif outcome.state == states.FAILURE:
            einfo = outcome.einfo
            signals.task_failure.send(
                sender=run.task,
                task_id=run.call.id,
                exception=outcome.exception,
                args=run.call.args,
                kwargs=run.call.kwargs,
                traceback=einfo.tb if einfo else None,
                einfo=einfo,
            )
        elif outcome.state == states.RETRY:
            signals.task_retry.send(
                sender=run.task,
                request=run.request,
                reason=outcome.exception,
                einfo=outcome.einfo,
            )


class TaskHandlers(Hook):
    """The task's own ``before_start`` / ``on_success`` / ``on_failure`` / ``on_retry``."""

    def before(self, run: TaskRun) -> None:
        run.task.before_start(run.call.id, run.call.args, run.call.kwargs)

    def after(self, run: TaskRun, outcome: Outcome) -> None:
        call, task = run.call, run.task
        if outcome.state == states.SUCCESS:
            task.on_success(outcome.retval, call.id, call.args, call.kwargs)
        elif outcome.state == states.FAILURE and outcome.exception is not None:
            task.on_failure(outcome.exception, call.id, call.args, call.kwargs, outcome.einfo)
        elif outcome.state == states.RETRY and outcome.exception is not None:
            task.on_retry(
                _retry_cause(outcome.exception), call.id, call.args, call.kwargs, outcome.einfo
            )


class ResultStore(Hook):
    """STARTED before the body (``track_started``), then the final state in the backend."""

    def before(self, run: TaskRun) -> None:
        if run.publish_result and not run.is_eager and _track_started(run):
            run.app.backend.store_result(
                run.call.id,
                {"pid": os.getpid(), "hostname": run.hostname},
                states.STARTED,
                request=run.request,
            )

    def after(self, run: TaskRun, outcome: Outcome) -> Outcome | None:
        backend = run.app.backend
        if outcome.state == states.SUCCESS:
            if run.publish_result:
                # In a worker batch the write may wait for the batch's one round trip.
                batch = write_batching(backend)
                try:
                    with batch.deferring() if batch is not None else contextlib.nullcontext():
                        backend.mark_as_done(run.call.id, outcome.retval, request=run.request)
                except Exception as exc:  # e.g. EncodeError: the result cannot be stored
                    failed = failure_outcome(exc, outcome.runtime)
                    self.after(run, failed)
                    return failed
        elif outcome.state == states.FAILURE:
            if run.store_errors:
                backend.mark_as_failure(
                    run.call.id,
                    outcome.exception,
                    traceback=outcome.traceback,
                    request=run.request,
                )
        elif (
            outcome.state == states.RETRY
            and run.store_errors
            and outcome.exception
            and not getattr(outcome.exception, "state_stored", False)  # Task.retry stored it
        ):
            backend.store_result(
                run.call.id,
                _retry_cause(outcome.exception),
                states.RETRY,
                traceback=outcome.traceback,
                request=run.request,
            )
        return None


class LogOutcome(Hook):
    """Celery's per-task log lines (``succeeded in``, ``raised unexpected``, ``retry``)."""

    def after(self, run: TaskRun, outcome: Outcome) -> None:
        state, name, task_id = outcome.state, run.name, run.call.id
        if state == states.SUCCESS:
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "Task %s[%s] succeeded in %ss: %s",
                    name,
                    task_id,
                    round(outcome.runtime, 6),
                    saferepr(outcome.retval, 1024),
                )
        elif state == states.FAILURE:
            logger.error(
                "Task %s[%s] raised unexpected: %r",
                name,
                task_id,
                outcome.exception,
                exc_info=outcome.exception,
            )
        elif state == states.RETRY:
            logger.info("Task %s[%s] retry: %s", name, task_id, outcome.exception)
        elif state == states.REJECTED:
            logger.info("Task %s[%s] rejected: %r", name, task_id, outcome.exception)
        elif state == states.IGNORED:
            logger.info("Task %s[%s] ignored", name, task_id)


class TaskEvents(Hook):
    """``task-started``, then ``task-succeeded`` / ``failed`` / ``retried`` / ``rejected``,
    with Celery's fields, when the worker running the task sends task events (``-E``)."""

    def before(self, run: TaskRun) -> None:
        node = for_node(run.hostname)
        if node is not None:
            node.task("task-started", uuid=run.call.id)

    def after(self, run: TaskRun, outcome: Outcome) -> None:
        node = for_node(run.hostname)
        if node is None or not node.task_events:
            return
        state, task_id = outcome.state, run.call.id
        if state == states.SUCCESS:
            node.task(
                "task-succeeded",
                uuid=task_id,
                result=saferepr(outcome.retval, RESULT_REPR_MAXSIZE),
                runtime=outcome.runtime,
            )
        elif state == states.FAILURE:
            node.task(
                "task-failed",
                uuid=task_id,
                exception=saferepr(outcome.exception),
                traceback=outcome.traceback,
            )
        elif state == states.RETRY:
            cause = _retry_cause(outcome.exception) if outcome.exception else None
            node.task(
                "task-retried",
                uuid=task_id,
                exception=saferepr(cause),
                traceback=outcome.traceback,
            )
        elif state == states.REJECTED:
            node.task(
                "task-rejected",
                uuid=task_id,
                requeue=bool(getattr(outcome.exception, "requeue", False)),
            )


class CanvasCallbacks(Hook):
    """A canvas's next steps: callbacks, the chain's next task, errbacks, the chord's count
    (:mod:`celeriac.execution.callbacks`). Listed before ResultStore, so it runs once the
    task's own result is stored."""

    def after(self, run: TaskRun, outcome: Outcome) -> None:
        if not callbacks.has_canvas(run):
            return  # most messages
        if outcome.state == states.SUCCESS:
            callbacks.after_success(run, outcome.retval)
        elif outcome.state == states.FAILURE:
            callbacks.after_failure(run, outcome)


def default_hooks(*, is_eager: bool = False) -> list[Hook]:
    """The standard pipeline; eager runs skip the worker's log lines.

    An app's own hooks (``app.add_hook``) run inside these: see
    :mod:`celeriac.execution.pipeline`."""
    hooks: list[Hook] = [] if is_eager else [LogOutcome()]
    if not is_eager:
        hooks.append(TaskEvents())
    hooks += [
        PrerunPostrunSignals(),
        AfterReturn(),
        OutcomeSignals(),
        TaskHandlers(),
        CanvasCallbacks(),
        ResultStore(),
    ]
    return hooks


def failure_outcome(exc: BaseException, runtime: float) -> Outcome:
    """A FAILURE outcome for ``exc`` with its formatted traceback."""
    return Outcome(states.FAILURE, exc, format_traceback(exc), runtime, exc)


def _retry_cause(exc: BaseException) -> BaseException:
    """What Celery stores for a retry: the original exception, else the Retry itself."""
    if isinstance(exc, Retry) and isinstance(exc.exc, BaseException):
        return exc.exc
    return exc


def _track_started(run: TaskRun) -> bool:
    value = run.task.track_started
    return bool(run.app.conf["task_track_started"] if value is None else value)


__all__ = [
    "IGNORE_STATES",
    "AfterReturn",
    "CanvasCallbacks",
    "Hook",
    "LogOutcome",
    "Outcome",
    "OutcomeSignals",
    "PrerunPostrunSignals",
    "ResultStore",
    "TaskEvents",
    "TaskHandlers",
    "TaskRun",
    "default_hooks",
    "failure_outcome",
    "format_traceback",
]
