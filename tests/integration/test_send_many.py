"""``app.send_many``, ``group(...).apply_async`` and ``chunks`` publish in pipelined batches.

On every broker: the messages arrive all, in order, in ``ceil(n / batch_size)`` calls of the
transport's ``publish_many`` (a Redis pipeline, one AMQP batch, one SQL transaction) instead
of one publish each; and a batched message is byte for byte the one ``apply_async`` makes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, group, signals
from celeriac.protocol.message import Message
from celeriac.transports.base import Delivery, Transport
from celeriac.transports.capabilities import PublishesEnvelopes
from tests.integration.broker_envs import BrokerEnv, make_env
from tests.servers import run_database

BROKERS = ["memory", "sqlite", "redis", "amqp", "postgresql"]


@pytest.fixture(params=BROKERS)
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrokerEnv]:
    kind = str(request.param)
    if kind == "postgresql":
        schema = f"sendmany_{os.getpid()}_{time.monotonic_ns()}"
        settings = {
            "broker_url": run_database("postgres"),
            "broker_transport_options": {"schema": schema},
            "result_backend": f"cache+memory://sendmany-{schema}",
        }
        built = BrokerEnv(kind, tmp_path, settings)
    else:
        built = make_env(kind, tmp_path)
    try:
        yield built
    finally:
        built.cleanup()


@pytest.fixture
def app(env: BrokerEnv) -> Iterator[Celery]:
    app = env.app("sendmany")
    app.conf.task_default_queue = "celery"
    yield app
    app.close()


def _count_batches(app: Celery, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of every ``publish_many`` call of the app's transport class (and of
    ``publish_envelopes``, which plain sends use where the broker keeps envelopes)."""
    sizes: list[int] = []
    cls = type(app.connection())
    original = cls.publish_many

    def counting(self: Transport, items: Any, *, not_before: float | None = None) -> None:
        sizes.append(len(items))
        original(self, items, not_before=not_before)

    monkeypatch.setattr(cls, "publish_many", counting)
    if issubclass(cls, PublishesEnvelopes):
        envelopes = cls.publish_envelopes

        def counting_envelopes(self: Any, items: Any) -> None:
            sizes.append(len(items))
            envelopes(self, items)

        monkeypatch.setattr(cls, "publish_envelopes", counting_envelopes)
    return sizes


def _drain(app: Celery, wanted: int) -> list[Delivery]:
    consumer = app.connection()
    got: list[Delivery] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < wanted and time.monotonic() < deadline:
            batch = consumer.get(["celery"], max_messages=wanted - len(got), timeout=0.5)
            consumer.ack(batch)
            got += batch
        assert consumer.get(["celery"], timeout=0.2) == []
    finally:
        consumer.close()
    return got


def test_send_many_publishes_every_message_in_order_in_batches(
    app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    @app.task(name="sendmany.add")
    def add(x: int, y: int) -> int:
        return x + y

    sizes = _count_batches(app, monkeypatch)
    monkeypatch.setattr(app.producer, "batch_size", 10)
    results = app.send_many(add.s(i, i) for i in range(25))
    assert sizes == [10, 10, 5]
    got = _drain(app, 25)
    assert [d.message.headers["id"] for d in got] == [r.id for r in results]
    assert [d.message.headers["argsrepr"] for d in got] == [f"({i}, {i})" for i in range(25)]


def test_group_and_chunks_publish_in_one_batch(
    app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    @app.task(name="sendmany.mul")
    def mul(x: int, y: int) -> int:
        return x * y

    sizes = _count_batches(app, monkeypatch)
    grouped = group(mul.s(i, 2) for i in range(6)).apply_async()
    mul.chunks([(i, 3) for i in range(8)], 2).apply_async()
    assert sizes == [6, 4]
    got = _drain(app, 10)
    assert [d.message.headers["id"] for d in got[:6]] == [r.id for r in grouped.results]
    assert {d.message.headers["group"] for d in got[:6]} == {grouped.id}


# -- one broker is enough for what does not depend on it -----------------------------------


@pytest.fixture
def memory_app() -> Iterator[Celery]:
    app = Celery("sendmany", broker=f"memory://sendmany-{time.monotonic_ns()}")
    yield app
    app.close()


def _messages(app: Celery, count: int) -> list[Message]:
    return [d.message for d in _drain(app, count)]


def test_a_batched_message_is_the_bytes_apply_async_makes(memory_app: Celery) -> None:
    @memory_app.task(name="sendmany.echo")
    def echo(*args: Any, **kwargs: Any) -> None:
        return None

    options = {"task_id": "fixed-id", "priority": 3, "headers": {"x": 1}}
    echo.apply_async((1, "two"), {"k": [3]}, **options)
    memory_app.send_many([echo.s(1, "two", k=[3]).set(**options)])
    single, batched = _messages(memory_app, 2)
    assert batched == single


def test_messages_with_different_etas_go_out_in_order(
    memory_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    @memory_app.task(name="sendmany.later")
    def later(i: int) -> int:
        return i

    sizes = _count_batches(memory_app, monkeypatch)
    when = datetime.now(timezone.utc) + timedelta(minutes=1)
    published: list[str] = []
    after = signals.after_task_publish.connect(
        lambda sender=None, headers=None, **_: published.append(headers["id"])
    )
    try:
        results = memory_app.send_many(
            [later.s(0), later.s(1).set(eta=when), later.s(2).set(eta=when), later.s(3)]
        )
    finally:
        signals.after_task_publish.disconnect(after)
    assert sizes == [1, 2, 1]  # one publish_many per run of equal ETAs, in send order
    assert published == [r.id for r in results]


def test_send_many_names_what_is_not_a_signature(memory_app: Celery) -> None:
    with pytest.raises(TypeError, match=r"item 1 is a tuple.*task\.s\("):
        memory_app.send_many([memory_app.signature("t.x"), ("t.x", (1,))])  # type: ignore[list-item]


def test_what_was_held_is_sent_when_the_block_raises(memory_app: Celery) -> None:
    sig = memory_app.signature("sendmany.named")
    with pytest.raises(RuntimeError), memory_app.producer.batch():
        first = sig.apply_async()
        raise RuntimeError("after the first send")
    assert [m.headers["id"] for m in _messages(memory_app, 1)] == [first.id]


def test_the_docs_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "calling.md").read_text()
    marker = "<!-- send_many example: run by tests/integration/test_send_many.py -->"
    code = page.split(marker, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)  # the embedded default's files go here
    namespace: dict[str, Any] = {"__name__": "docs_send_many"}
    exec(compile(code, "docs/calling.md", "exec"), namespace)
    app: Celery = namespace["app"]
    try:
        probe = app.connection()
        assert (probe.size("celery"), probe.size("urgent")) == (1000, 2)
        probe.close()
    finally:
        app.close()
