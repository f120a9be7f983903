"""Beyond Celery: OpenTelemetry tracing built in (the ``tracing`` extra).

``instrument()`` makes every task sent from this process a ``PRODUCER`` span
``apply_async/<task>`` whose W3C trace context (``traceparent``, ``tracestate``) goes into the
message headers, and every task run here a ``CONSUMER`` span ``run/<task>``, the child of the
context its message carries and current while the task runs, so that what it sends is its
child in turn: web request -> task -> subtask is one trace. The span names, attributes
(``celery.action``, ``celery.task_name``, ``messaging.message.id``) and headers are those of
``opentelemetry-instrumentation-celery``, so a Celery process instrumented with it and a
celeriac process instrumented with this share traces, in both directions.

Like that instrumentation, it rides on Celery's signals (``before_task_publish``,
``after_task_publish``, ``task_prerun``, ``task_postrun``) and is process wide: call it where
the app is defined, so that a worker and its forked children have it too.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, MutableMapping
from typing import Any

from celeriac import signals
from celeriac.exceptions import ImproperlyConfigured

try:
    from opentelemetry import context as context_api
    from opentelemetry import propagate, trace
    from opentelemetry.propagators.textmap import Getter
except ModuleNotFoundError as exc:  # pragma: no cover - the extra is installed in the tests
    raise ImproperlyConfigured(
        "celeriac.extras.tracing needs the 'opentelemetry-api' package: "
        "pip install 'celeriac[tracing]'"
    ) from exc

#: The attribute names of opentelemetry-instrumentation-celery.
ACTION = "celery.action"
TASK_NAME = "celery.task_name"
MESSAGE_ID = "messaging.message.id"
RETRY_REASON = "celery.retry.reason"

_lock = threading.Lock()
_tracer: trace.Tracer | None = None
# task id -> (span, context token): a task's span lives from one signal to the next.
_publishing: dict[str, tuple[trace.Span, object]] = {}
_running: dict[str, tuple[trace.Span, object]] = {}


def instrument(tracer_provider: trace.TracerProvider | None = None) -> None:
    """Trace publishing and running tasks in this process (again: nothing more happens)."""
    global _tracer
    with _lock:
        if _tracer is not None:
            return
        _tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        signals.before_task_publish.connect(_before_publish, weak=False)
        signals.after_task_publish.connect(_after_publish, weak=False)
        signals.task_prerun.connect(_prerun, weak=False)
        signals.task_postrun.connect(_postrun, weak=False)
        signals.task_failure.connect(_failure, weak=False)
        signals.task_retry.connect(_retry, weak=False)


def uninstrument() -> None:
    """Stop tracing (spans already started end as their tasks do)."""
    global _tracer
    with _lock:
        if _tracer is None:
            return
        _tracer = None
        signals.before_task_publish.disconnect(_before_publish)
        signals.after_task_publish.disconnect(_after_publish)
        signals.task_prerun.disconnect(_prerun)
        signals.task_postrun.disconnect(_postrun)
        signals.task_failure.disconnect(_failure)
        signals.task_retry.disconnect(_retry)


def is_instrumented() -> bool:
    return _tracer is not None


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """Reads the trace context from a task's headers (W3C names; string values only)."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        return [str(value)]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier)


_getter = _HeaderGetter()


def _before_publish(
    sender: Any = None, headers: MutableMapping[str, Any] | None = None, **_: Any
) -> None:
    tracer = _tracer
    if tracer is None or headers is None:
        return
    task_id = str(headers.get("id") or "")
    name = str(headers.get("task") or sender or "unknown")
    span = tracer.start_span(f"apply_async/{name}", kind=trace.SpanKind.PRODUCER)
    if span.is_recording():
        span.set_attribute(ACTION, "apply_async")
        span.set_attribute(MESSAGE_ID, task_id)
        span.set_attribute(TASK_NAME, name)
    token = context_api.attach(trace.set_span_in_context(span))
    propagate.inject(headers)  # traceparent (and tracestate) of this span
    _publishing[task_id] = (span, token)


def _after_publish(headers: Mapping[str, Any] | None = None, **_: Any) -> None:
    entry = _publishing.pop(str((headers or {}).get("id") or ""), None)
    if entry is not None:
        span, token = entry
        span.end()
        context_api.detach(token)  # type: ignore[arg-type]


def _prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    tracer = _tracer
    if tracer is None or task is None or task_id is None:
        return
    request = task.request
    carrier = dict(request.get("headers") or {})
    parent = propagate.extract(carrier, getter=_getter)
    name = f"run/{task.name}"
    span = tracer.start_span(name, context=parent, kind=trace.SpanKind.CONSUMER)
    token = context_api.attach(trace.set_span_in_context(span, parent))
    _running[task_id] = (span, token)


def _postrun(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    entry = _running.pop(task_id or "", None)
    if entry is None:
        return
    span, token = entry
    if span.is_recording():
        span.set_attribute(ACTION, "run")
        span.set_attribute(TASK_NAME, getattr(task, "name", ""))
        span.set_attribute(MESSAGE_ID, task_id or "")
        if state is not None:
            span.set_attribute("celery.state", state)
    span.end()
    context_api.detach(token)  # type: ignore[arg-type]


def _failure(task_id: str | None = None, exception: BaseException | None = None, **_: Any) -> None:
    """The run span of a failed task: status ERROR with the exception as its description and
    an ``exception`` event (as the Celery instrumentation records it)."""
    entry = _running.get(task_id or "")
    if entry is None or not entry[0].is_recording():
        return
    span = entry[0]
    if exception is not None:
        span.record_exception(exception)
    description = None if exception is None else str(exception)
    span.set_status(trace.Status(trace.StatusCode.ERROR, description))


def _retry(request: Any = None, reason: Any = None, **_: Any) -> None:
    """``celery.retry.reason`` on the run span of a task that asked to be retried."""
    task_id = None if request is None else request.id
    entry = _running.get(task_id or "")
    if entry is not None and entry[0].is_recording() and reason is not None:
        entry[0].set_attribute(RETRY_REASON, str(reason))


__all__ = [
    "ACTION",
    "MESSAGE_ID",
    "RETRY_REASON",
    "TASK_NAME",
    "instrument",
    "is_instrumented",
    "uninstrument",
]
