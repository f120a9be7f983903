"""The tracing extra with the OpenTelemetry SDK's in-memory exporter and a real worker: a
request -> task -> subtask is one trace, the W3C ``traceparent`` travels in the message
headers under the names opentelemetry-instrumentation-celery uses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from celeriac import Celery, signals
from celeriac.extras import tracing
from celeriac.testing import start_worker


@pytest.fixture
def provider() -> TracerProvider:
    return TracerProvider()


@pytest.fixture
def exporter(provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing.instrument(tracer_provider=provider)
    try:
        yield spans
    finally:
        tracing.uninstrument()


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def test_request_task_and_subtask_are_one_trace(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    app = Celery("traced", broker="memory://traced", backend="cache+memory://traced")
    seen: dict[str, Any] = {}

    @app.task(name="t.inner", bind=True)
    def inner(self: Any) -> str | None:
        return self.request.headers.get("traceparent")

    @app.task(name="t.outer")
    def outer() -> str:
        return inner.delay().id

    def capture(headers: dict[str, Any] | None = None, **_: Any) -> None:
        if headers and headers.get("task") == "t.outer":
            seen.update(headers)

    signals.after_task_publish.connect(capture)
    try:
        with start_worker(app, pool="threads", concurrency=2):
            web = provider.get_tracer("web")
            with web.start_as_current_span("web request") as request_span:
                inner_id = outer.delay().get(timeout=10)
            traceparent = app.AsyncResult(inner_id).get(timeout=10)
    finally:
        signals.after_task_publish.disconnect(capture)
        app.close()

    spans = _by_name(exporter.get_finished_spans())
    assert set(spans) >= {"web request", "apply_async/t.outer", "run/t.outer"}
    assert {"apply_async/t.inner", "run/t.inner"} <= set(spans)
    trace_id = request_span.get_span_context().trace_id
    assert {s.context.trace_id for s in spans.values()} == {trace_id}

    def parent(name: str) -> int | None:
        span = spans[name]
        return span.parent.span_id if span.parent else None

    assert parent("apply_async/t.outer") == spans["web request"].context.span_id
    assert parent("run/t.outer") == spans["apply_async/t.outer"].context.span_id
    assert parent("apply_async/t.inner") == spans["run/t.outer"].context.span_id
    assert parent("run/t.inner") == spans["apply_async/t.inner"].context.span_id

    # The W3C header, as opentelemetry-instrumentation-celery writes and reads it.
    sent = spans["apply_async/t.outer"].context
    assert seen["traceparent"].startswith(f"00-{sent.trace_id:032x}-{sent.span_id:016x}-")
    assert traceparent is not None and traceparent.startswith(f"00-{trace_id:032x}-")
    assert spans["run/t.outer"].kind == trace.SpanKind.CONSUMER
    assert spans["apply_async/t.outer"].kind == trace.SpanKind.PRODUCER
    attributes = spans["run/t.outer"].attributes or {}
    assert attributes[tracing.ACTION] == "run" and attributes[tracing.TASK_NAME] == "t.outer"
    published = spans["apply_async/t.outer"].attributes or {}
    assert published[tracing.MESSAGE_ID] == seen["id"]


def test_uninstrumented_sends_no_trace_headers() -> None:
    assert not tracing.is_instrumented()
    app = Celery("plain", broker="memory://plain", backend="cache+memory://plain")
    seen: dict[str, Any] = {}

    def capture(headers: dict[str, Any] | None = None, **_: Any) -> None:
        seen.update(headers or {})

    signals.before_task_publish.connect(capture)
    try:
        app.send_task("t.x")
    finally:
        signals.before_task_publish.disconnect(capture)
        app.close()
    assert "traceparent" not in seen and seen["task"] == "t.x"


def test_failed_and_retried_runs_carry_the_reason(exporter: InMemorySpanExporter) -> None:
    app = Celery("traced-fail", broker="memory://traced-fail", backend="cache+memory://tf")

    @app.task(name="t.fail")
    def fail() -> None:
        raise ValueError("boom")

    @app.task(name="t.again", bind=True, max_retries=1)
    def again(self: Any) -> int:
        if self.request.retries < 1:
            raise self.retry(exc=KeyError("later"), countdown=0)
        return self.request.retries

    try:
        with start_worker(app, pool="threads", concurrency=1):
            with pytest.raises(ValueError):
                fail.delay().get(timeout=10)
            assert again.delay().get(timeout=10) == 1
    finally:
        app.close()
    spans = exporter.get_finished_spans()
    (failed,) = [s for s in spans if s.name == "run/t.fail"]
    assert failed.status.status_code == trace.StatusCode.ERROR
    assert failed.status.description == "boom"
    assert [e.attributes["exception.type"] for e in failed.events if e.attributes] == ["ValueError"]
    first, second = [s for s in spans if s.name == "run/t.again"]
    assert (first.attributes or {})[tracing.RETRY_REASON] == "Retry in 0s: KeyError('later')"
    assert second.status.status_code == trace.StatusCode.UNSET
