"""The Transport conformance suite: every broker must pass it unchanged.

What only some brokers can do is proved by one module per capability
(``test_cap_<name>.py``), run on exactly the transports that claim it. Tests here that depend
on a behaviour flag (``supports_priority``, ``priority_higher_first``) check the flag, never
the transport's type.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

import pytest

from celeriac.protocol.entities import Exchange, Queue
from celeriac.protocol.message import Message
from celeriac.transports.base import Delivery, Transport


class Broker(Protocol):
    """The ``broker`` fixture (tests/conformance/conftest.py): one isolated namespace."""

    def connect(self, **options: Any) -> Transport: ...


def msg(body: bytes | str, *, priority: int | None = None, **headers: Any) -> Message:
    raw = body.encode() if isinstance(body, str) else body
    properties: dict[str, Any] = {"correlation_id": raw.decode("latin-1")}
    if priority is not None:
        properties["priority"] = priority
    return Message(raw, "application/json", "utf-8", headers, properties)


def bodies(deliveries: Sequence[Delivery]) -> list[bytes]:
    return [d.message.body for d in deliveries]


def take(transport: Transport, queues: Sequence[str], count: int, **kw: Any) -> list[Delivery]:
    """Collect ``count`` deliveries one at a time (fails if they do not come in 10 s)."""
    deadline = time.monotonic() + 10
    taken: list[Delivery] = []
    while len(taken) < count and time.monotonic() < deadline:
        taken += transport.get(queues, max_messages=1, timeout=0.5, **kw)
    assert len(taken) == count, f"got {len(taken)} of {count}"
    return taken


def test_round_trip_keeps_every_field(transport: Transport) -> None:
    headers = {
        "lang": "py",
        "task": "tasks.add",
        "id": "0e5d6c2a",
        "eta": None,
        "retries": 3,
        "timelimit": [None, 10.5],
        "ignore_result": False,
        "stamps": {"a": ["b", 1]},
        "unicode": "héllo ☃",
    }
    properties = {
        "correlation_id": "0e5d6c2a",
        "reply_to": "c2f2-reply",
        "delivery_mode": 2,
        "priority": 3,
        "body_encoding": "base64",
        "delivery_info": {"exchange": "", "routing_key": "q"},
    }
    message = Message(bytes(range(256)) * 3, "application/x-test", "binary", headers, properties)
    transport.publish(message, routing_key="q")
    [delivery] = transport.get(["q"], timeout=5)
    # body_encoding and delivery_info are the transport's own envelope fields, not the
    # publisher's: kombu's virtual transports write their own values, AMQP has no such
    # properties. Every other field must come back as it was sent.
    envelope = ("body_encoding", "delivery_info")
    got = delivery.message
    assert {k: v for k, v in got.properties.items() if k not in envelope} == {
        k: v for k, v in properties.items() if k not in envelope
    }
    assert (got.body, got.content_type, got.content_encoding, got.headers) == (
        message.body,
        message.content_type,
        message.content_encoding,
        message.headers,
    )
    assert type(delivery.message.body) is bytes
    assert (delivery.queue, delivery.exchange, delivery.routing_key) == ("q", "", "q")
    assert delivery.redelivered is False
    assert delivery.transport is transport
    assert delivery.delivery_info == {
        "exchange": "",
        "routing_key": "q",
        "priority": 3,
        "redelivered": False,
    }


def test_fifo_order(transport: Transport) -> None:
    for i in range(20):
        transport.publish(msg(f"m{i}"), routing_key="q")
    assert bodies(take(transport, ["q"], 20)) == [f"m{i}".encode() for i in range(20)]


def test_priority_order(transport: Transport) -> None:
    if not transport.supports_priority:
        pytest.skip("transport has no priorities")
    priorities = [0, 5, 9, 1, 9, 0, 5]
    for i, priority in enumerate(priorities):
        transport.publish(msg(f"{priority}-{i}", priority=priority), routing_key="q")
    sign = -1 if transport.priority_higher_first else 1
    expected = sorted(range(len(priorities)), key=lambda i: (sign * priorities[i], i))
    got = bodies(transport.get(["q"], max_messages=10, timeout=5))
    assert got == [f"{priorities[i]}-{i}".encode() for i in expected]


def test_queues_are_served_round_robin(transport: Transport) -> None:
    for i in range(3):
        transport.publish(msg(f"a{i}"), routing_key="a")
        transport.publish(msg(f"b{i}"), routing_key="b")
    served = [d.queue for d in take(transport, ["a", "b"], 6)]
    assert served == ["a", "b", "a", "b", "a", "b"]


def test_get_without_timeout_does_not_block(transport: Transport) -> None:
    started = time.monotonic()
    assert transport.get(["q"]) == []
    assert time.monotonic() - started < 1.0


def test_get_timeout_returns_empty_near_the_deadline(transport: Transport) -> None:
    started = time.monotonic()
    assert transport.get(["q"], timeout=0.3) == []
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 2.0


def test_blocking_get_wakes_on_publish_from_another_thread(broker: Broker) -> None:
    consumer, producer = broker.connect(), broker.connect()
    waiting = threading.Event()
    result: list[Delivery] = []

    def consume() -> None:
        waiting.set()
        result.extend(consumer.get(["q"], timeout=20))

    thread = threading.Thread(target=consume)
    started = time.monotonic()
    thread.start()
    assert waiting.wait(5)
    producer.publish(msg("wake"), routing_key="q")
    thread.join(20)
    assert bodies(result) == [b"wake"]
    assert time.monotonic() - started < 5


def test_ack_removes_the_message(broker: Broker) -> None:
    consumer = broker.connect()
    consumer.publish(msg("x"), routing_key="q")
    [delivery] = consumer.get(["q"], timeout=5)
    delivery.ack()
    consumer.close()
    assert broker.connect().get(["q"], timeout=0.2) == []
    assert consumer.size("q") == 0


def test_reject_with_requeue_redelivers_at_the_end(transport: Transport) -> None:
    transport.publish(msg("first"), routing_key="q")
    transport.publish(msg("second"), routing_key="q")
    [first] = transport.get(["q"], timeout=5)
    transport.reject([first], requeue=True)
    again = take(transport, ["q"], 2)
    assert bodies(again) == [b"second", b"first"]
    assert [d.redelivered for d in again] == [False, True]


def test_reject_without_requeue_drops(broker: Broker) -> None:
    consumer = broker.connect()
    consumer.publish(msg("x"), routing_key="q")
    [delivery] = consumer.get(["q"], timeout=5)
    delivery.reject(requeue=False)
    consumer.close()
    assert broker.connect().get(["q"], timeout=0.2) == []


def test_restore_puts_messages_back_in_front(transport: Transport) -> None:
    for name in ("m1", "m2", "m3"):
        transport.publish(msg(name), routing_key="q")
    held = transport.get(["q"], max_messages=2, timeout=5)
    transport.restore(held)
    again = transport.get(["q"], max_messages=3, timeout=5)
    assert bodies(again) == [b"m1", b"m2", b"m3"]
    assert [d.redelivered for d in again] == [True, True, False]


def test_close_without_ack_gives_the_message_to_a_new_consumer(broker: Broker) -> None:
    first = broker.connect()
    first.publish(msg("x"), routing_key="q")
    assert bodies(first.get(["q"], timeout=5)) == [b"x"]
    first.close()
    [again] = broker.connect().get(["q"], timeout=5)
    assert again.message.body == b"x"
    assert again.redelivered is True


def test_get_never_returns_more_than_max_messages(transport: Transport) -> None:
    transport.publish_many([(msg(f"m{i}"), "", "q") for i in range(10)])
    assert len(transport.get(["q"], max_messages=3, timeout=5)) == 3
    assert len(transport.get(["q"], max_messages=1, timeout=5)) == 1
    assert len(transport.get(["q"], max_messages=100, timeout=5)) == 6
    assert transport.get(["q"], max_messages=100) == []


def test_purge_and_size(transport: Transport) -> None:
    assert transport.size("q") == 0
    transport.publish_many([(msg(f"m{i}"), "", "q") for i in range(5)])
    transport.publish(msg("other"), routing_key="other")
    assert transport.size("q") == 5
    [held] = transport.get(["q"], timeout=5)
    assert transport.size("q") == 4
    assert transport.purge("q") == 4
    assert transport.size("q") == 0
    assert transport.size("other") == 1
    held.ack()
    assert transport.get(["q"]) == []


def test_publish_many(transport: Transport) -> None:
    items = [(msg(f"m{i}"), "", "a" if i % 2 else "b") for i in range(100)]
    transport.publish_many(items)
    assert (transport.size("a"), transport.size("b")) == (50, 50)
    got = transport.get(["b"], max_messages=100, timeout=5)
    assert bodies(got) == [f"m{i}".encode() for i in range(0, 100, 2)]


def test_two_consumers_never_share_a_message(broker: Broker) -> None:
    total = 500
    broker.connect().publish_many([(msg(f"m{i}"), "", "q") for i in range(total)])
    seen: list[list[bytes]] = [[], [], []]

    def consume(index: int) -> None:
        consumer = broker.connect()
        deadline = time.monotonic() + 30
        while sum(map(len, seen)) < total and time.monotonic() < deadline:
            got = consumer.get(["q"], max_messages=7, timeout=0.05)
            seen[index].extend(bodies(got))
            consumer.ack(got)

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(40)
    everything = [body for part in seen for body in part]
    assert sorted(everything) == sorted(f"m{i}".encode() for i in range(total))


def _declare(transport: Transport, exchange: Exchange, **bindings: str) -> None:
    transport.declare_exchange(exchange)
    for queue, key in bindings.items():
        transport.declare_queue(Queue(queue, exchange, key))


def _sizes(transport: Transport, *queues: str) -> list[int]:
    return [transport.size(q) for q in queues]


def test_direct_exchange_routes_by_exact_key(transport: Transport) -> None:
    _declare(transport, Exchange("ex", "direct"), q1="k1", q2="k2")
    transport.publish(msg("x"), exchange="ex", routing_key="k1")
    transport.publish(msg("lost"), exchange="ex", routing_key="nobody")
    assert _sizes(transport, "q1", "q2", "nobody") == [1, 0, 0]
    [delivery] = transport.get(["q1"], timeout=5)
    assert (delivery.exchange, delivery.routing_key, delivery.queue) == ("ex", "k1", "q1")


def test_topic_exchange_matches_wildcards(transport: Transport) -> None:
    _declare(transport, Exchange("tx", "topic"), t1="a.*", t2="a.#", t3="#.c")
    transport.publish(msg("ab"), exchange="tx", routing_key="a.b")
    assert _sizes(transport, "t1", "t2", "t3") == [1, 1, 0]
    transport.publish(msg("abc"), exchange="tx", routing_key="a.b.c")
    assert _sizes(transport, "t1", "t2", "t3") == [1, 2, 1]
    transport.publish(msg("a"), exchange="tx", routing_key="a")
    assert _sizes(transport, "t1", "t2", "t3") == [1, 3, 1]


def test_fanout_exchange_reaches_every_bound_queue(transport: Transport) -> None:
    _declare(transport, Exchange("fx", "fanout"), f1="", f2="whatever")
    transport.publish(msg("x"), exchange="fx", routing_key="any.key")
    assert _sizes(transport, "f1", "f2") == [1, 1]


def test_bind_adds_a_route(transport: Transport) -> None:
    transport.declare_queue(Queue("plain"))
    transport.declare_exchange(Exchange("extra", "direct"))
    transport.bind("plain", "extra", "rk")
    transport.publish(msg("x"), exchange="extra", routing_key="rk")
    assert bodies(transport.get(["plain"], timeout=5)) == [b"x"]
