"""Malformed messages, generated with hypothesis, published raw onto a worker's queue.

Random headers, bodies, content types, encodings and compression names, protocol 1 and
protocol 2 shapes mixed, and every ``OVERSIZED_EVERY``-th message an oversized body (1-4 MB).
Nearly every message carries a fresh task id (in the protocol-2 headers or the protocol-1
body) so that the worker's log line about it can be found; a few carry none at all.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from benchmarks.faults.harness import Figures, rss_kib, stage, wait_until
from celeriac.protocol.message import Message

OVERSIZED_EVERY = 500

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_names = st.one_of(st.sampled_from(["faults.record", "no.such.task", ""]), st.text(max_size=30))
_content_types = st.one_of(
    st.sampled_from([
        "application/json", "application/x-python-serialize", "application/x-msgpack",
        "application/x-yaml", "text/plain", "application/data", "",
    ]),
    st.text(max_size=20),
)  # fmt: skip
_encodings = st.one_of(
    st.sampled_from(["utf-8", "binary", "latin-1", "utf-16", "no-such-codec"]), st.text(max_size=10)
)
_bodies = st.one_of(
    st.binary(max_size=300),
    _json.map(lambda value: json.dumps(value).encode()),
    st.tuples(_json, _json, _json).map(lambda value: json.dumps(list(value)).encode()),
    st.text(max_size=100).map(lambda text: text.encode("utf-8", "surrogatepass")),
)


@st.composite
def malformed_message(draw: st.DrawFn) -> tuple[str | None, Message]:
    """One bad message and the task id it carries (None: it carries none)."""
    task_id = str(uuid.uuid4()) if draw(st.integers(0, 19)) else None
    shape = draw(st.sampled_from(["protocol2", "protocol1", "raw"]))
    headers: dict[str, Any] = draw(st.dictionaries(st.text(max_size=10), _json, max_size=4))
    body = draw(_bodies)
    if shape == "protocol2":
        headers.update(task=draw(_names), lang=draw(st.sampled_from(["py", "js", ""])))
        headers.update(draw(st.dictionaries(
            st.sampled_from(["eta", "expires", "retries", "timelimit", "argsrepr", "root_id",
                             "parent_id", "group", "compression", "shadow", "stamps"]),
            _json, max_size=3,
        )))  # fmt: skip
        if task_id:
            headers["id"] = task_id
    elif shape == "protocol1":
        fields = draw(st.dictionaries(
            st.sampled_from(["args", "kwargs", "eta", "expires", "retries", "utc", "callbacks",
                             "chord", "timelimit", "taskset"]),
            _json, max_size=4,
        ))  # fmt: skip
        fields["task"] = draw(_names)
        if task_id:
            fields["id"] = task_id
        body = json.dumps(fields).encode()
    elif task_id:
        headers["id"] = task_id
    if draw(st.booleans()) and "compression" not in headers:
        headers["compression"] = draw(
            st.sampled_from(["application/x-gzip", "bzip2", "zstd", "no-such"])
        )
    message = Message(
        body=body,
        content_type=draw(_content_types) if shape == "raw" else "application/json",
        content_encoding=draw(_encodings),
        headers=headers,
        properties={"correlation_id": task_id} if task_id else {},
    )
    return task_id, message


def generate(count: int) -> list[tuple[str | None, Message]]:
    """``count`` malformed messages (deterministic: derandomized hypothesis)."""
    found: list[tuple[str | None, Message]] = []

    @settings(
        max_examples=count, database=None, derandomize=True, deadline=None,
        phases=[Phase.generate], suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(malformed_message())
    def collect(example: tuple[str | None, Message]) -> None:
        found.append(example)

    collect()
    for index in range(OVERSIZED_EVERY - 1, count, OVERSIZED_EVERY):
        task_id = str(uuid.uuid4())
        size = 1_000_000 + (index * 7919) % 3_000_000
        body = json.dumps([["x" * size], {}, {}]).encode()
        headers = {"task": "no.such.task", "id": task_id, "lang": "py"}
        found[index] = (task_id, Message(body, "application/json", "utf-8", headers, {}))
    return found[:count]


def malformed(kind: str, count: int, directory: Path | None = None) -> Figures:
    """Publish ``count`` malformed messages, then good tasks; the worker must stay up, reject
    each bad one logging its id, and not grow."""
    figures = Figures("malformed messages", kind)
    messages = generate(count)
    with stage(kind, directory) as scene:
        started = time.monotonic()
        worker = scene.worker("-c", "2")
        queue = scene.target.queue
        first_rss = 0
        published: list[str | None] = []
        refused: list[str] = []
        with scene.app.connection() as conn:
            for index, (task_id, message) in enumerate(messages):
                try:
                    conn.publish(message, exchange="", routing_key=queue)
                    published.append(task_id)
                except Exception as exc:  # the broker cannot carry it: the producer says so
                    refused.append(f"{type(exc).__name__}: {exc}")
                if index == count // 2:
                    wait_until(lambda: conn.size(queue) == 0, "the first half to be handled", 600)
                    first_rss = rss_kib(worker.pid)
            scene.send(5)  # good tasks behind the bad ones
            finished = scene.wait_done(stall=120)
            wait_until(lambda: conn.size(queue) == 0, "the queue to be empty", 120)
        figures.seconds = time.monotonic() - started
        figures.sent = count
        ids = [task_id for task_id in published if task_id]

        def logged() -> int:
            text = worker.output()
            return sum(1 for task_id in ids if task_id in text)

        with contextlib.suppress(TimeoutError):  # the figure says how many
            wait_until(lambda: logged() == len(ids), "every id in the log", 10)
        seen = logged()
        last_rss = rss_kib(worker.pid)
        figures.completed = len(set(scene.ledger.ends) & scene.sent)
        figures.lost = len(scene.sent) - figures.completed
        figures.notes.append(f"worker up: {worker.alive()}")
        without = len(published) - len(ids)
        figures.notes.append(f"{seen}/{len(ids)} ids logged, {without} without id")
        if refused:
            figures.notes.append(
                f"{len(refused)} refused by the producer, e.g. {refused[0][:70]!r}"
            )
        figures.extra["refused"] = len(refused)
        figures.notes.append(f"RSS {first_rss // 1024} -> {last_rss // 1024} MiB (2nd half)")
        figures.notes.append(f"good tasks after them: {figures.completed}/5")
        figures.faults = count
        if not finished:
            figures.notes.append("progress stopped")
        figures.extra = {"alive": worker.alive(), "logged": seen, "ids": len(ids),
                         "rss_growth_kib": last_rss - first_rss}  # fmt: skip
    return figures
