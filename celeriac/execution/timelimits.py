"""Soft and hard time limits around a task body.

Which limits apply: the message's ``timelimit`` header ``[hard, soft]`` first, then the task's
``time_limit`` / ``soft_time_limit``, then ``task_time_limit`` / ``task_soft_time_limit``.

How they are enforced depends on where the body runs:

* **In the main thread of a process** (a prefork child; the solo pool of a CLI worker) the soft
  limit is a real-time interval timer (``SIGALRM``) whose handler raises
  :class:`SoftTimeLimitExceeded`. Signals interrupt ``time.sleep`` and blocking socket calls.
* **In any other thread** (the threads pool; a solo pool in a test thread) the limit is
  delivered by a timer thread as an asynchronous exception (``PyThreadState_SetAsyncExc``). It
  lands only when the thread next runs Python bytecode: a task blocked in C (``time.sleep(30)``,
  a socket read without timeout) sees it when that call returns.
* **The hard limit** kills the process in the prefork pool: the child reports the start of a
  job that has one, and the parent kills the child at the deadline, replaces it and stores
  ``TimeLimitExceeded``. In-process pools cannot kill a thread; they raise
  ``TimeLimitExceeded`` in it the same way as the soft limit (best effort: a task that catches
  every exception, or never returns to Python code, keeps running).
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from celeriac.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celeriac.execution.hooks import Hook, Outcome, TaskRun, failure_outcome

if TYPE_CHECKING:
    from celeriac.app.config import Settings
    from celeriac.app.task import Task
    from celeriac.protocol.message import TaskCall

#: Set in prefork children: tells the parent "a job with this hard limit starts now".
_hard_limit_reporter: Callable[[float], None] | None = None


def set_hard_limit_reporter(reporter: Callable[[float], None] | None) -> None:
    """Installed by the prefork child; hard limits are then enforced by the parent."""
    global _hard_limit_reporter
    _hard_limit_reporter = reporter


def limits_for(
    task: Task[Any, Any], call: TaskCall, conf: Settings
) -> tuple[float | None, float | None]:
    """``(hard, soft)`` in seconds for this call; ``None`` means no limit."""
    header = call.timelimit or (None, None)
    hard = _first(header[0], task.time_limit, conf["task_time_limit"])
    header_soft = header[1] if len(header) > 1 else None
    soft = _first(header_soft, task.soft_time_limit, conf["task_soft_time_limit"])
    return hard, soft


def _first(*values: Any) -> float | None:
    for value in values:
        if value:
            return float(value)
    return None


@dataclass(order=True)
class _Event:
    due: float
    seq: int
    exc: type[BaseException] = field(compare=False)
    thread_id: int = field(compare=False, default=0)
    cancelled: bool = field(compare=False, default=False)
    fired: bool = field(compare=False, default=False)


class _AsyncExcTimer:
    """One daemon thread per process raising exceptions in other threads at their deadlines."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[_Event] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, delay: float, exc: type[BaseException], thread_id: int) -> _Event:
        event = _Event(time.monotonic() + delay, next(self._seq), exc, thread_id)
        with self._cond:
            heapq.heappush(self._heap, event)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="celeriac-timelimits", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return event

    def cancel(self, events: list[_Event]) -> None:
        with self._cond:
            for event in events:
                event.cancelled = True
                if event.fired:  # raised already, or still pending: clear a pending one
                    _set_async_exc(event.thread_id, None)

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0].due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                event = heapq.heappop(self._heap)
                event.fired = True
                _set_async_exc(event.thread_id, event.exc)


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    obj = ctypes.py_object(exc) if exc is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), obj)


_TIMER = _AsyncExcTimer()


class _AlarmTimer:
    """Deadlines for the main thread through ``setitimer(ITIMER_REAL)`` and ``SIGALRM``."""

    def __init__(self, events: list[tuple[float, type[BaseException]]]) -> None:
        now = time.monotonic()
        self.pending = sorted((now + delay, exc) for delay, exc in events)
        self.previous: Any = None

    def arm(self) -> None:
        self.previous = signal.signal(signal.SIGALRM, self._on_alarm)
        self._next()

    def _next(self) -> None:
        if self.pending:
            delay = max(0.001, self.pending[0][0] - time.monotonic())
            signal.setitimer(signal.ITIMER_REAL, delay)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if not self.pending:
            return
        _due, exc = self.pending.pop(0)
        self._next()
        raise exc()

    def disarm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        self.pending.clear()
        signal.signal(signal.SIGALRM, self.previous or signal.SIG_DFL)


class TimeLimits(Hook):
    """The innermost hook: arms the limits just before the body and disarms them just after."""

    def __init__(self) -> None:
        self._local = threading.local()

    def before(self, run: TaskRun) -> None:
        self._local.armed = None
        if run.is_eager:
            return
        hard, soft = limits_for(run.task, run.call, run.app.conf)
        events: list[tuple[float, type[BaseException]]] = []
        if soft:
            events.append((soft, SoftTimeLimitExceeded))
        if hard:
            if _hard_limit_reporter is not None:
                _hard_limit_reporter(hard)  # the parent kills the process at the deadline
            else:
                events.append((hard, TimeLimitExceeded))
        if not events:
            return
        if threading.current_thread() is threading.main_thread():
            alarm = _AlarmTimer(events)
            alarm.arm()
            self._local.armed = (alarm, hard)
        else:
            ident = threading.get_ident()
            scheduled = [_TIMER.schedule(delay, exc, ident) for delay, exc in events]
            self._local.armed = (scheduled, hard)

    def after(self, run: TaskRun, outcome: Outcome) -> Outcome | None:
        armed = getattr(self._local, "armed", None)
        if armed is None:
            return None
        self._local.armed = None
        timer, hard = armed
        if isinstance(timer, _AlarmTimer):
            timer.disarm()
        else:
            _TIMER.cancel(timer)
        exc = outcome.exception
        if isinstance(exc, TimeLimitExceeded) and not exc.args and hard:
            # An exception type raised asynchronously has no arguments; Celery's carries
            # the limit, as in "TimeLimitExceeded(5.0)".
            return failure_outcome(TimeLimitExceeded(hard), outcome.runtime)
        return None


def install_alarm_default() -> None:
    """Reset ``SIGALRM`` in a fresh child so an inherited handler never fires there."""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)


__all__ = ["TimeLimits", "limits_for", "set_hard_limit_reporter"]
