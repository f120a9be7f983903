"""Signals with Celery's names: ``connect`` receivers, ``send`` from the worker and producer."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

Receiver = Callable[..., Any]


class Signal:
    """A named hook point; receivers get ``sender`` plus keyword arguments.

    Receivers are held weakly by default (as in Celery), so a bound method does not keep
    its object alive. ``send`` returns ``[(receiver, result_or_exception), ...]`` and never
    lets one receiver's exception stop the others (it is logged).
    """

    def __init__(self, name: str, providing_args: frozenset[str] = frozenset()) -> None:
        self.name = name
        self.providing_args = providing_args
        self._lock = threading.Lock()
        self._receivers: list[tuple[Any, Any, Callable[[], Receiver | None]]] = []

    def connect(
        self,
        receiver: Receiver | None = None,
        *,
        sender: Any = None,
        weak: bool = True,
        dispatch_uid: Any = None,
    ) -> Any:
        """Connect ``receiver``; usable as ``@sig.connect`` or ``@sig.connect(sender=...)``."""

        def _connect(func: Receiver) -> Receiver:
            key = dispatch_uid if dispatch_uid is not None else _receiver_key(func)
            ref: Callable[[], Receiver | None]
            if weak:
                ref = weakref.WeakMethod(func) if hasattr(func, "__self__") else weakref.ref(func)
            else:
                ref = _strong(func)
            with self._lock:
                if not any(k == key and s is sender for k, s, _ in self._receivers):
                    self._receivers.append((key, sender, ref))
            return func

        if receiver is None:
            return _connect
        return _connect(receiver)

    def disconnect(
        self, receiver: Receiver | None = None, *, sender: Any = None, dispatch_uid: Any = None
    ) -> bool:
        key = dispatch_uid if dispatch_uid is not None else _receiver_key(receiver)
        with self._lock:
            before = len(self._receivers)
            self._receivers = [r for r in self._receivers if not (r[0] == key and r[1] is sender)]
            return len(self._receivers) != before

    @property
    def has_receivers(self) -> bool:
        """Whether a receiver is connected: the cheap check made for every task."""
        return bool(self._receivers)

    @property
    def receivers(self) -> list[Receiver]:
        with self._lock:
            live = [ref() for _, _, ref in self._receivers]
        return [r for r in live if r is not None]

    def send(self, sender: Any = None, **named: Any) -> list[tuple[Receiver, Any]]:
        """Call every live receiver connected for ``sender`` (or for any sender)."""
        if not self._receivers:
            return []
        with self._lock:
            targets = [(s, ref()) for _, s, ref in self._receivers]
        responses: list[tuple[Receiver, Any]] = []
        for wanted, receiver in targets:
            if receiver is None or (wanted is not None and wanted is not sender):
                continue
            try:
                responses.append((receiver, receiver(signal=self, sender=sender, **named)))
            except Exception as exc:
                logger.exception("Signal handler %r raised: %r", receiver, exc)
                responses.append((receiver, exc))
        return responses

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"


def _receiver_key(func: Any) -> Any:
    if hasattr(func, "__self__") and hasattr(func, "__func__"):
        return (id(func.__self__), id(func.__func__))
    return id(func)


def _strong(func: Receiver) -> Callable[[], Receiver | None]:
    return lambda: func


before_task_publish = Signal("before_task_publish")
after_task_publish = Signal("after_task_publish")
task_received = Signal("task_received")
task_prerun = Signal("task_prerun")
task_postrun = Signal("task_postrun")
task_success = Signal("task_success")
task_retry = Signal("task_retry")
task_failure = Signal("task_failure")
task_revoked = Signal("task_revoked")
task_rejected = Signal("task_rejected")
task_unknown = Signal("task_unknown")
task_internal_error = Signal("task_internal_error")
celeryd_init = Signal("celeryd_init")
celeryd_after_setup = Signal("celeryd_after_setup")
import_modules = Signal("import_modules")
worker_init = Signal("worker_init")
worker_process_init = Signal("worker_process_init")
worker_process_shutdown = Signal("worker_process_shutdown")
worker_ready = Signal("worker_ready")
worker_shutdown = Signal("worker_shutdown")
worker_shutting_down = Signal("worker_shutting_down")
setup_logging = Signal("setup_logging")
after_setup_logger = Signal("after_setup_logger")
after_setup_task_logger = Signal("after_setup_task_logger")

__all__ = [
    "Signal",
    "after_setup_logger",
    "after_setup_task_logger",
    "after_task_publish",
    "before_task_publish",
    "celeryd_after_setup",
    "celeryd_init",
    "import_modules",
    "setup_logging",
    "task_failure",
    "task_internal_error",
    "task_postrun",
    "task_prerun",
    "task_received",
    "task_rejected",
    "task_retry",
    "task_revoked",
    "task_success",
    "task_unknown",
    "worker_init",
    "worker_process_init",
    "worker_process_shutdown",
    "worker_ready",
    "worker_shutdown",
    "worker_shutting_down",
]
