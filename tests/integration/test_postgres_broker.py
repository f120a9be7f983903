"""The PostgreSQL broker beyond the conformance suite: wake latency, idle cost, leases,
and a real worker process draining tasks with PostgreSQL results."""

from __future__ import annotations

import itertools
import os
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celery
from celeriac.exceptions import OperationalError
from celeriac.protocol.message import Message
from celeriac.transports.postgres.transport import PostgresTransport
from tests.integration.conftest import WorkerFactory
from tests.servers import POSTGRES_HOST, POSTGRES_PORT, run_database
from tests.tcp_proxy import tcp_proxy

_schemas = itertools.count()


@pytest.fixture
def schema() -> str:
    return f"it_{os.getpid()}_{next(_schemas)}"


@pytest.fixture
def make(schema: str) -> Iterator[Any]:
    made: list[PostgresTransport] = []

    def factory(**options: Any) -> PostgresTransport:
        transport = PostgresTransport(run_database("postgres"), {"schema": schema, **options})
        transport.open()
        made.append(transport)
        return transport

    yield factory
    for transport in made:
        transport.close()


def _msg(body: str) -> Message:
    return Message(body.encode(), "application/json", "utf-8", {}, {})


def test_idle_consumer_wakes_within_milliseconds(make: Any) -> None:
    consumer, producer = make(), make()
    listener = consumer._listening()
    waiting = threading.Event()
    original_wait = listener.wait

    def observed_wait(wanted: set[str], timeout: float) -> bool:
        waiting.set()  # the consumer is idle in LISTEN now
        return bool(original_wait(wanted, timeout))

    listener.wait = observed_wait
    latencies: list[float] = []
    for n in range(15):
        got: list[float] = []
        waiting.clear()
        thread = threading.Thread(target=lambda got=got: _timed_get(consumer, got))
        thread.start()
        assert waiting.wait(5)
        published = time.perf_counter()
        producer.publish(_msg(f"m{n}"), routing_key="q")
        thread.join(10)
        assert got, "the consumer did not wake"
        latencies.append(got[0] - published)
    median = statistics.median(latencies)
    print(f"\nwake latency: median {median * 1000:.2f} ms, max {max(latencies) * 1000:.2f} ms")
    assert median < 0.05


def _timed_get(consumer: PostgresTransport, got: list[float]) -> None:
    if consumer.get(["q"], timeout=10):
        got.append(time.perf_counter())


def test_idle_consumer_does_not_hammer_the_database(make: Any) -> None:
    consumer = make(polling_interval=0.5)
    claims = 0
    original = consumer._claim

    def counting(*args: Any) -> Any:
        nonlocal claims
        claims += 1
        return original(*args)

    consumer._claim = counting  # type: ignore[method-assign]
    assert consumer.get(["q"], timeout=1.6) == []
    assert claims <= 6  # one at start, then about one per polling_interval


def test_delayed_row_wakes_the_consumer_when_due(make: Any) -> None:
    consumer = make(polling_interval=30)
    consumer.publish(_msg("later"), routing_key="q", not_before=time.time() + 0.3)
    started = time.monotonic()
    [delivery] = consumer.get(["q"], timeout=5)
    assert 0.25 <= time.monotonic() - started < 2
    assert delivery.message.body == b"later"


def test_expired_lease_is_redelivered(make: Any) -> None:
    first, second = make(visibility_timeout=0.3), make(visibility_timeout=0.3)
    first.publish(_msg("x"), routing_key="q")
    [held] = first.get(["q"], timeout=5)
    [again] = second.get(["q"], timeout=5)
    assert again.message.body == b"x" and again.redelivered
    first.ack([held])  # a late ack from the first consumer deletes the row as well
    second.ack([again])
    assert second.size("q") == 0


def test_a_task_publish_does_not_wake_fanout_subscribers(make: Any) -> None:
    """Every worker LISTENs for remote control too: a task's NOTIFY must wake its consumers
    only, a fanout publish its subscribers only."""
    producer = make()
    subscription = producer.fanout_subscribe("celery.pidbox")
    assert subscription.get(timeout=0.01) == []  # now LISTENing
    listener = subscription._listener
    assert listener is not None
    producer.publish(_msg("task"), routing_key="q")
    assert list(listener.conn.notifies(timeout=0.3, stop_after=1)) == []
    producer.fanout_publish("celery.pidbox", _msg("ping"))
    assert [n.payload for n in listener.conn.notifies(timeout=5, stop_after=1)] == [
        "\x1ffanout:celery.pidbox"
    ]
    subscription.close()


def test_unreachable_broker_names_the_masked_url(caplog: pytest.LogCaptureFixture) -> None:
    options = {"broker_connection_max_retries": 1}
    transport = PostgresTransport("postgresql://u:hunter2@127.0.0.1:1/db", options)
    with pytest.raises(OperationalError) as info:
        transport.open()
    assert "postgresql://u:**@127.0.0.1:1/db" in str(info.value)
    assert "hunter2" not in str(info.value)
    # The one retry was logged, the password masked there too.
    assert "unreachable while connecting" in caplog.text and "hunter2" not in caplog.text


def test_a_consumer_rides_out_a_lost_connection(
    make: Any, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The server restarts (here: every connection cut, new ones refused, for a second): the
    # consumer's ack and its next claim wait and reconnect instead of failing (a worker used
    # to die of the first error).
    producer = make()
    producer.publish(_msg("a"), routing_key="q")
    producer.publish(_msg("b"), routing_key="q")
    with tcp_proxy(POSTGRES_HOST, POSTGRES_PORT) as proxy:
        url = run_database("postgres").replace(f"{POSTGRES_HOST}:{POSTGRES_PORT}", proxy.address)
        consumer = PostgresTransport(url, {"schema": schema})
        try:
            [first] = consumer.get(["q"], timeout=5)
            proxy.cut()
            back = threading.Timer(1.0, proxy.restore)  # the outage lasts a second
            back.start()
            consumer.ack([first])
            [second] = consumer.get(["q"], timeout=5)
            consumer.ack([second])
            back.join()
        finally:
            consumer.close()
    assert [first.message.body, second.message.body] == [b"a", b"b"]
    assert producer.size("q") == 0
    assert "unreachable while acknowledging" in caplog.text
    assert "reachable again: acknowledging goes on" in caplog.text


@pytest.mark.slow
def test_worker_drains_tasks_on_postgres(start_worker: WorkerFactory, schema: str) -> None:
    url = run_database("postgres")
    conf = {
        "broker_url": url,
        "broker_transport_options": {"schema": schema},
        "result_backend": "db+" + url,
    }
    worker = start_worker("-P", "threads", "-c", "4", conf=conf)
    client = Celery("client", broker=url, backend="db+" + url, set_as_current=False)
    client.conf.broker_transport_options = {"schema": schema}
    try:
        results = [client.send_task("tasks.add", (n, n)) for n in range(100)]
        values = [r.get(timeout=30) for r in results]
        assert values == [2 * n for n in range(100)]
        failing = client.send_task("tasks.boom", ("kaput",))
        with pytest.raises(ValueError, match="kaput"):
            failing.get(timeout=30)
    finally:
        client.close()
    assert worker.stop() == 0


def test_a_draining_worker_sends_its_acks_with_its_claims(
    schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer's acks ride on its next claim (one statement, ACK_AND_CLAIM), not a
    DELETE of their own each turn; and none waits past the turn: once the worker idles,
    no row of a finished task is left."""
    from celeriac.testing import start_worker

    calls = {"ack": 0, "ack_and_get": 0}
    for name in calls:
        original = getattr(PostgresTransport, name)

        def counted(
            self: PostgresTransport, *args: Any, _f: Any = original, _n: str = name, **kwargs: Any
        ) -> Any:
            calls[_n] += 1
            return _f(self, *args, **kwargs)

        monkeypatch.setattr(PostgresTransport, name, counted)
    url = run_database("postgres")
    app = Celery("acks", broker=url, backend="cache+memory://", set_as_current=False)
    app.conf.broker_transport_options = {"schema": schema}
    ran: list[int] = []
    done = threading.Event()
    n = 300

    @app.task(name="acks.note")
    def note(i: int) -> None:
        ran.append(i)
        if len(ran) == n:
            done.set()

    app.send_many([note.s(i) for i in range(n)])
    with start_worker(app, pool="threads", concurrency=2):
        assert done.wait(30)
        reader = make_reader(url, schema)
        deadline = time.monotonic() + 10
        while reader() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reader() == 0
    app.close()
    assert sorted(ran) == list(range(n))
    assert calls["ack_and_get"] > 10
    assert calls["ack"] * 4 < calls["ack_and_get"], calls


def make_reader(url: str, schema: str) -> Any:
    """How many rows the broker's messages table holds (claimed or not)."""
    import psycopg

    def count() -> int:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(f'SELECT count(*) FROM "{schema}".messages').fetchone()
        return int(row[0]) if row else 0

    return count
