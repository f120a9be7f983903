"""AMQP behaviour beyond the conformance suite, on this run's RabbitMQ vhost."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import amqp
import pytest

from celeriac import Celery
from celeriac.exceptions import EncodeError, OperationalError
from celeriac.protocol.entities import Exchange, Queue
from celeriac.protocol.message import Message
from celeriac.transports.amqp.conn import CONNECTION_ERRORS
from celeriac.transports.amqp.transport import AMQPTransport
from celeriac.transports.base import Delivery
from tests.servers import RABBITMQ_HOST, RABBITMQ_PORT, rabbitmq_url
from tests.tcp_proxy import tcp_proxy

Connect = Callable[..., AMQPTransport]


def msg(body: str, **properties: object) -> Message:
    return Message(body.encode(), "application/json", "utf-8", {"id": body}, dict(properties))


@pytest.fixture
def qname() -> str:
    return f"amqp-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def connect() -> Iterator[Connect]:
    opened: list[AMQPTransport] = []

    def make(**options: object) -> AMQPTransport:
        transport = AMQPTransport(rabbitmq_url(), options)
        opened.append(transport)
        return transport

    yield make
    for transport in opened:
        transport.close()


def _server_side(name: str) -> tuple[int, int]:
    """(ready, consumers) of queue ``name`` seen by a fresh connection."""
    t = AMQPTransport(rabbitmq_url())
    try:
        t.open()
        _, ready, consumers = t._admin_channel().queue_declare(name, passive=True)
        return int(ready), int(consumers)
    finally:
        t.close()


def test_qos_limits_what_the_broker_pushes(connect: Connect, qname: str) -> None:
    producer, consumer = connect(), connect()
    producer.publish_many([(msg(f"m{i}"), "", qname) for i in range(10)])
    consumer.qos(3)
    first = consumer.get([qname], max_messages=1, timeout=5)
    assert len(first) == 1
    # One returned + two buffered are unacked: the broker holds the other seven back.
    assert _server_side(qname) == (7, 1)
    consumer.ack(first)
    more = consumer.get([qname], max_messages=10, timeout=5)
    assert 1 <= len(more) <= 3
    assert [d.message.body for d in first + more] == [
        f"m{i}".encode() for i in range(1 + len(more))
    ]


def test_release_prefetched_gives_back_what_was_pushed_ahead(connect: Connect, qname: str) -> None:
    producer, consumer, other = connect(), connect(), connect()
    producer.publish_many([(msg(f"m{i}"), "", qname) for i in range(6)])
    consumer.qos(4)
    [running] = consumer.get([qname], max_messages=1, timeout=5)
    # Three more were pushed to it ahead: they go back, the one taken stays with its taker.
    assert consumer.release_prefetched() == 3
    assert _server_side(qname) == (5, 0)  # m1..m5 ready, and no consumer until the next get
    assert consumer.release_prefetched() == 0
    taken: list[Delivery] = []
    while len(taken) < 5:  # in their order, m1..m5 (each get returns at least one or fails)
        got = other.get([qname], max_messages=10, timeout=5)
        assert got, f"only {len(taken)} of 5 came back"
        other.ack(got)
        taken += got
    assert [d.message.body for d in taken] == [f"m{i}".encode() for i in range(1, 6)]
    consumer.ack([running])  # its delivery stayed valid
    assert consumer.get([qname], timeout=0.2) == []  # it consumes again, and nothing is left


def test_release_prefetched_waits_for_a_connection_in_use(connect: Connect, qname: str) -> None:
    consumer = connect()
    consumer.qos(4)
    assert consumer.get([qname], timeout=0.1) == []
    with consumer._lock:  # the owner is inside an operation: come back later
        outcome: list[int | None] = []
        thread = threading.Thread(target=lambda: outcome.append(consumer.release_prefetched()))
        thread.start()
        thread.join(5)
    assert outcome == [None]


def test_unacked_messages_come_back_when_the_connection_dies(connect: Connect, qname: str) -> None:
    first = connect()
    first.publish(msg("x"), routing_key=qname)
    [_held] = first.get([qname], timeout=5)
    first._lost()  # the socket goes away without a goodbye, as when a worker is killed
    [again] = connect().get([qname], timeout=5)
    assert again.message.body == b"x" and again.redelivered


def test_priorities_need_x_max_priority(connect: Connect, qname: str) -> None:
    transport = connect()
    transport.declare_queue(Queue(qname, Exchange(""), qname, max_priority=10))
    for i, priority in enumerate([1, 9, 5]):
        transport.publish(msg(f"{priority}-{i}", priority=priority), routing_key=qname)
    got = transport.get([qname], max_messages=3, timeout=5)
    assert [d.message.body for d in got] == [b"9-1", b"5-2", b"1-0"]


def test_queue_arguments_reach_the_broker(connect: Connect, qname: str) -> None:
    transport = connect()
    dead = f"{qname}.dead"
    transport.declare_queue(Queue(dead, Exchange(f"{qname}.dlx", "fanout"), ""))
    transport.declare_queue(
        Queue(
            qname,
            Exchange(f"{qname}.ex", "topic"),
            "jobs.#",
            queue_arguments={"x-dead-letter-exchange": f"{qname}.dlx"},
        )
    )
    transport.publish(msg("job"), exchange=f"{qname}.ex", routing_key="jobs.a.b")
    [delivery] = transport.get([qname], timeout=5)
    delivery.reject(requeue=False)  # dead-lettered by RabbitMQ itself
    [dead_letter] = transport.get([dead], timeout=5)
    assert dead_letter.message.body == b"job"
    assert dead_letter.message.headers["x-death"][0]["reason"] == "rejected"
    # Declaring the same queue with other arguments fails loudly, as in Celery.
    with pytest.raises(OperationalError, match="PRECONDITION_FAILED"):
        transport.declare_queue(Queue(qname, Exchange(f"{qname}.ex", "topic"), "jobs.#"))


def test_publishing_to_an_unknown_exchange_is_a_clear_error(connect: Connect) -> None:
    with pytest.raises(OperationalError, match="does not exist"):
        connect().publish(msg("x"), exchange=f"nope-{uuid.uuid4().hex}", routing_key="k")


def test_publish_reconnects_and_logs_masked(
    connect: Connect, qname: str, caplog: pytest.LogCaptureFixture
) -> None:
    transport = connect()
    transport.publish(msg("before"), routing_key=qname)
    transport._conn.transport.sock.shutdown(2)  # the broker connection breaks under us
    with caplog.at_level(logging.WARNING, "celeriac.transports.amqp"):
        transport.publish(msg("after"), routing_key=qname)
    assert transport.size(qname) == 2
    assert "Publishing: cannot reach amqp://guest:**@" in caplog.text
    assert ":guest@" not in caplog.text


def test_unreachable_broker_names_the_masked_url() -> None:
    transport = AMQPTransport(
        "amqp://guest:secret@127.0.0.1:1//",
        {"task_publish_retry_policy": {"max_retries": 1, "interval_start": 0}},
    )
    with pytest.raises(OperationalError) as err:
        transport.publish(msg("x"), routing_key="q")
    assert "amqp://guest:**@127.0.0.1:1//" in str(err.value)
    assert "secret" not in str(err.value)


def test_headers_travel_as_an_amqp_table(connect: Connect, qname: str) -> None:
    headers = {"eta": None, "timelimit": [None, 1.5], "stamps": {"a": [1, "b"]}, "flag": True}
    transport = connect()
    transport.publish(Message(b"{}", "application/json", "utf-8", headers, {}), routing_key=qname)
    # What any AMQP client sees; publishing is not confirmed, so the broker may take a moment.
    deadline = time.monotonic() + 10
    raw = None
    while raw is None and time.monotonic() < deadline:
        raw = transport._channel.basic_get(qname, no_ack=True)
    assert isinstance(raw, amqp.Message)
    assert raw.properties["application_headers"] == headers
    assert raw.properties["content_type"] == "application/json"
    assert raw.body == b"{}"


def test_confirm_publish_waits_for_the_broker(connect: Connect, qname: str) -> None:
    producer, reader = connect(confirm_publish=True), connect()
    producer.publish_many([(msg(f"m{i}"), "", qname) for i in range(50)])
    assert reader.size(qname) == 50  # another connection sees them all at once


def test_timed_reads_keep_the_socket_blocking(connect: Connect, qname: str) -> None:
    """A wait with a timeout ends on time, leaves the socket in blocking mode, and a message
    split across two reads (the wait ran out between them) still arrives whole."""
    producer, consumer = connect(), connect()
    consumer.qos(10)
    started = time.monotonic()
    assert consumer.get([qname], timeout=0.2) == []
    assert 0.15 <= time.monotonic() - started < 2.0
    assert consumer.get([qname], timeout=0) == []
    conn = consumer._conn
    assert conn is not None and conn.transport.sock.gettimeout() is None
    producer.publish_many([(msg("late"), "", qname)])
    got = consumer.get([qname], timeout=5)
    assert [d.message.body for d in got] == [b"late"]
    assert conn.transport.sock.gettimeout() is None
    # A partial frame: the transport keeps it and completes it on the next read.
    frame = b"\x08\x00\x00\x00\x00\x00\x00\xce"  # a heartbeat frame
    transport = conn.transport
    transport._read_buffer = frame[:3]
    with pytest.raises(TimeoutError), transport.having_timeout(0):
        transport._read(len(frame))
    assert transport._read_buffer == frame[:3]
    transport._read_buffer = frame
    with transport.having_timeout(0):
        assert transport._read(len(frame)) == frame


def test_a_transport_reads_its_own_writes(connect: Connect, qname: str) -> None:
    """A transport's publishes are confirmed (not waited for) and awaited before it reads, so
    a read right after publishing counts every message."""
    transport = connect()
    transport.publish_many([(msg(f"m{i}"), "", qname) for i in range(5)])
    assert transport._publisher is not None and transport._publisher.confirms is not None
    assert transport.size(qname) == 5
    assert transport._publisher.unconfirmed == 0


def test_a_send_only_transport_stays_out_of_confirm_mode(connect: Connect, qname: str) -> None:
    """A send-only transport (the producer's pool) never makes RabbitMQ answer its publishes;
    a read switches it to confirm mode, and every later publish is counted at once."""
    producer = connect()
    producer.send_only = True
    producer.publish_many([(msg(f"m{i}"), "", qname) for i in range(5)])
    assert producer._publisher is not None and producer._publisher.confirms is None
    deadline = time.monotonic() + 5  # those sent before the switch: RabbitMQ's count may lag
    while producer.size(qname) != 5 and time.monotonic() < deadline:
        pass
    assert producer.size(qname) == 5
    assert producer._publisher.confirms is not None
    producer.publish_many([(msg("m5"), "", qname)])
    assert producer.size(qname) == 6


def test_the_producer_pool_connections_are_send_only() -> None:
    app = Celery("sendonly", broker=rabbitmq_url(), backend="cache+memory://", set_as_current=False)
    with app.producer.pool.acquire() as transport:
        assert transport.send_only
    app.close()


def test_confirm_publish_puts_the_channel_in_confirm_mode_at_once(
    connect: Connect, qname: str
) -> None:
    producer = connect(confirm_publish=True)
    producer.publish_many([(msg("m"), "", qname)])
    confirms = producer._publisher.confirms if producer._publisher is not None else None
    assert confirms is not None and confirms.pending == 0


def test_broker_pool_limit_caps_the_connections_threads_send_on(qname: str) -> None:
    """Eight threads sending at once over RabbitMQ share at most broker_pool_limit
    connections, and every message arrives."""
    app = Celery("pooled", broker=rabbitmq_url(), backend="cache+memory://", set_as_current=False)
    app.conf.update(broker_pool_limit=2, task_default_queue=qname)
    barrier = threading.Barrier(8)

    def send(n: int) -> None:
        barrier.wait(timeout=10)
        for i in range(25):
            app.send_task("tasks.add", (n, i), ignore_result=True)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    pool = app.producer.pool
    assert 1 <= pool._made <= 2 and pool.in_use == 0
    assert _server_side(qname)[0] == 200
    app.close()  # the queue goes with this run's vhost


def test_a_fanout_subscription_subscribes_again_after_a_lost_connection(
    connect: Connect, qname: str
) -> None:
    # The worker's remote control reads a subscription like this one: after a broker restart
    # (here: the proxy cuts every connection) it failed on every read until the worker ended.
    url = rabbitmq_url()
    host_port = f"{RABBITMQ_HOST}:{RABBITMQ_PORT}"
    with tcp_proxy(RABBITMQ_HOST, RABBITMQ_PORT) as proxy:
        listener = AMQPTransport(url.replace(host_port, proxy.address, 1))
        subscription = listener.fanout_subscribe(f"{qname}.bcast")
        sender = connect()
        try:
            proxy.cut()
            with pytest.raises(CONNECTION_ERRORS):
                subscription.get(timeout=1)
            proxy.restore()
            assert subscription.get(timeout=0.1) == []  # subscribed again, nothing missed yet
            sender.fanout_publish(f"{qname}.bcast", msg("after"))
            got = subscription.get(timeout=5)
            assert [m.body for m in got] == [b"after"]
        finally:
            subscription.close()
            listener.close()


@pytest.mark.parametrize(
    "value, said",
    [
        (2**70, "64-bit"),  # py-amqp: struct.error "int too large to convert"
        (float("inf"), "float inf"),  # RabbitMQ: its channel process crashes on the table
        (float("nan"), "float nan"),
    ],
)
def test_a_header_the_broker_cannot_carry_is_named_and_what_follows_arrives(
    connect: Connect, qname: str, value: object, said: str
) -> None:
    """The error names the message, the header and what to do instead; nothing reaches
    RabbitMQ, so the channel lives and the messages published after it arrive (before, a
    non-finite float closed the channel and lost what was sent on it next)."""
    producer, consumer = connect(), connect()
    bad = Message(b"[]", "application/json", "utf-8", {"id": "bad", "meta": {"n": [value]}}, {})
    with pytest.raises(EncodeError) as info:
        producer.publish_many([(bad, "", qname)])
    text = str(info.value)
    assert "message bad" in text and "header 'meta'['n'][0]" in text, text
    assert said in text and "as a string" in text, text
    producer.publish_many([(msg(f"after{i}"), "", qname) for i in range(20)])
    got = take_all(consumer, qname, 20)
    assert [d.message.body for d in got] == [f"after{i}".encode() for i in range(20)]
    consumer.ack(got)


def take_all(consumer: AMQPTransport, qname: str, count: int) -> list[Delivery]:
    deadline = time.monotonic() + 10
    got: list[Delivery] = []
    while len(got) < count and time.monotonic() < deadline:
        got += consumer.get([qname], max_messages=count - len(got), timeout=1)
    return got


def test_confirm_keeps_deliveries_while_the_connection_lives_and_none_after_it_closed(
    connect: Connect, qname: str
) -> None:
    """RabbitMQ's lease is the connection: a worker frozen past two heartbeats finds it
    closed by the server (here: the proxy closes it) and its prefetched messages requeued;
    ``confirm`` says so instead of letting them run a second time."""
    url = rabbitmq_url()
    host_port = f"{RABBITMQ_HOST}:{RABBITMQ_PORT}"
    producer, other = connect(), connect()
    producer.publish_many([(msg("held"), "", qname)])
    with tcp_proxy(RABBITMQ_HOST, RABBITMQ_PORT) as proxy:
        stalled = AMQPTransport(url.replace(host_port, proxy.address, 1), {"heartbeat": 2})
        try:
            assert stalled.lease_period == 4.0
            [held] = stalled.get([qname], timeout=5)
            assert stalled.confirm([held]) == [held]
            proxy.cut()  # the broker's side of the connection is gone
            assert stalled.confirm([held]) == []
            [again] = other.get([qname], timeout=10)  # requeued for the others
            assert again.message.body == b"held" and again.redelivered
            other.ack([again])
        finally:
            stalled.close()
