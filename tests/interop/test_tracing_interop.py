"""Tracing across a mixed cluster on Redis: Celery 5.7 processes instrumented with
``opentelemetry-instrumentation-celery`` (``CeleryInstrumentor``) and celeriac processes with
``celeriac.extras.tracing`` make one trace of web request -> task -> subtask, both ways round.

A celeriac worker consumes queue ``A`` and a Celery worker queue ``B``. A client process (of
either package) opens a "web request" span and sends ``trace.outer`` to one queue; ``outer``
sends ``trace.inner`` to the other. Every process exports its finished spans as JSON lines to
a file of its own; the test reads them all and checks the parent chain:
web request <- apply_async/outer <- run/outer <- apply_async/inner <- run/inner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.conftest import REPO, Endpoint, WorkerProcess

pytestmark = [
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.parametrize("endpoint", ["redis"], indirect=True, scope="module"),
]
TIMEOUT = 30.0

#: ``interop_app`` of this module: ``{package}`` is ``celery`` or ``celeriac``.
TRACED_APP = textwrap.dedent(
    """
    import json
    import os

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        SimpleSpanProcessor, SpanExporter, SpanExportResult,
    )

    from {package} import Celery


    class JsonLines(SpanExporter):
        def __init__(self, path):
            self.path = path

        def export(self, spans):
            with open(self.path, "a") as out:
                for span in spans:
                    out.write(json.dumps({{
                        "name": span.name,
                        "kind": span.kind.name,
                        "trace_id": span.context.trace_id,
                        "span_id": span.context.span_id,
                        "parent": span.parent.span_id if span.parent else None,
                        "attributes": dict(span.attributes),
                    }}) + "\\n")
            return SpanExportResult.SUCCESS

        def shutdown(self):
            pass


    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLines(os.environ["TRACE_SPANS"])))

    app = Celery("interop_app", broker=os.environ["INTEROP_BROKER"],
                 backend=os.environ["INTEROP_BACKEND"])
    app.conf.update(json.loads(os.environ["INTEROP_CONF"]))

    if "{package}" == "celery":
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        CeleryInstrumentor().instrument(tracer_provider=provider)
    else:
        from celeriac.extras import tracing
        tracing.instrument(tracer_provider=provider)


    @app.task(name="trace.outer")
    def outer(inner_queue):
        return inner.apply_async((21,), queue=inner_queue).id


    @app.task(name="trace.inner")
    def inner(x):
        return x * 2


    def web_request(outer_queue, inner_queue):
        with provider.get_tracer("web").start_as_current_span("web request"):
            sent = outer.apply_async((inner_queue,), queue=outer_queue)
        inner_id = sent.get(timeout=30)
        assert app.AsyncResult(inner_id).get(timeout=30) == 42
    """
)


def _queue(endpoint: Endpoint, name: str) -> str:
    return f"{endpoint.conf['task_default_queue']}.{name}"


@pytest.fixture(scope="module")
def spans_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spans")


@pytest.fixture(scope="module")
def workers(
    endpoint: Endpoint, tmp_path_factory: pytest.TempPathFactory, spans_dir: Path
) -> Iterator[None]:
    """A celeriac worker on queue A and a Celery worker on queue B, both traced."""
    started = [
        WorkerProcess(
            package,
            endpoint,
            tmp_path_factory.mktemp(f"{package}-worker"),
            *("-P", "threads", "-c", "2", "-Q", _queue(endpoint, queue)),
            *("-n", f"trace-{package}@interop"),
            source=TRACED_APP,
            env={"TRACE_SPANS": str(spans_dir / f"{package}-worker.jsonl")},
        )
        for package, queue in (("celeriac", "A"), ("celery", "B"))
    ]
    try:
        for worker in started:
            worker.wait_ready()
        yield
    finally:
        for worker in started:
            worker.stop()


def _web_request(
    package: str, endpoint: Endpoint, spans_dir: Path, outer_queue: str, inner_queue: str
) -> None:
    """A client process of ``package`` serves one traced "web request"."""
    directory = spans_dir / f"{package}-client"
    directory.mkdir(exist_ok=True)
    (directory / "interop_app.py").write_text(TRACED_APP.format(package=package))
    env = dict(os.environ, **endpoint.env(), TRACE_SPANS=str(spans_dir / f"{package}-client.jsonl"))
    env["PYTHONPATH"] = os.pathsep.join([str(directory), str(REPO)])
    code = f"import interop_app; interop_app.web_request({outer_queue!r}, {inner_queue!r})"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr


NAMES = (
    "web request",
    "apply_async/trace.outer",
    "run/trace.outer",
    "apply_async/trace.inner",
    "run/trace.inner",
)


def _trace(spans_dir: Path, trace_id: int | None = None) -> dict[str, dict[str, Any]]:
    """The spans of :data:`NAMES` of the one trace that has a "web request" (waits for all)."""

    def read() -> list[dict[str, Any]]:
        lines = []
        for path in spans_dir.glob("*.jsonl"):
            lines += [json.loads(line) for line in path.read_text().splitlines() if line]
        return lines

    deadline = time.monotonic() + TIMEOUT
    while True:
        spans = read()
        webs = [s for s in spans if s["name"] == "web request"]
        if webs:
            (web,) = webs
            mine = {s["name"]: s for s in spans if s["trace_id"] == web["trace_id"]}
            if set(NAMES) <= set(mine):
                return mine
        if time.monotonic() > deadline:
            raise AssertionError(f"spans missing: {json.dumps(spans, indent=1)}")
        time.sleep(0.1)


def _assert_one_chain(spans: dict[str, dict[str, Any]]) -> None:
    for child, parent in zip(NAMES[1:], NAMES[:-1], strict=True):
        assert spans[child]["parent"] == spans[parent]["span_id"], (child, parent, spans)
    for name in NAMES[1:]:
        action, task = name.split("/")
        attributes = spans[name]["attributes"]
        assert attributes["celery.action"] == action and attributes["celery.task_name"] == task
        assert spans[name]["kind"] == ("PRODUCER" if action == "apply_async" else "CONSUMER")


def _fresh(spans_dir: Path) -> None:
    for path in spans_dir.glob("*.jsonl"):
        path.unlink()


def test_celery_client_to_celeriac_worker_to_celery_worker(
    workers: None, endpoint: Endpoint, spans_dir: Path
) -> None:
    _fresh(spans_dir)
    _web_request("celery", endpoint, spans_dir, _queue(endpoint, "A"), _queue(endpoint, "B"))
    _assert_one_chain(_trace(spans_dir))


def test_celeriac_client_to_celery_worker_to_celeriac_worker(
    workers: None, endpoint: Endpoint, spans_dir: Path
) -> None:
    _fresh(spans_dir)
    _web_request("celeriac", endpoint, spans_dir, _queue(endpoint, "B"), _queue(endpoint, "A"))
    _assert_one_chain(_trace(spans_dir))
