"""Redis-only behaviour on the local server: leases, restores, parking, errors when down."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac.exceptions import OperationalError
from celeriac.protocol.message import Message
from celeriac.transports.redis.transport import RedisTransport
from tests.integration.conftest import wait_until
from tests.servers import REDIS_BROKER_DB, REDIS_HOST, REDIS_PORT, redis_namespace
from tests.tcp_proxy import tcp_proxy

FAST = {"visibility_timeout": 0.5, "unacked_restore_interval": 0.0}


def msg(body: str, **properties: Any) -> Message:
    return Message(body.encode(), "application/json", "utf-8", {"id": body}, properties)


@pytest.fixture
def connect() -> Iterator[Any]:
    """Transports on one fresh key prefix; closed after the test."""
    url = redis_namespace(REDIS_BROKER_DB, "itest-*")
    prefix = f"itest-{uuid.uuid4().hex[:8]}:"
    made: list[RedisTransport] = []

    def make(**options: Any) -> RedisTransport:
        transport = RedisTransport(url, {"global_keyprefix": prefix, **options})
        transport.open()
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


def test_an_expired_lease_is_restored_by_any_consumer(connect: Any) -> None:
    first, second = connect(**FAST), connect(**FAST)
    first.publish(msg("m"), routing_key="q")
    [held] = first.get(["q"], timeout=5)
    [again] = wait_until(lambda: second.get(["q"], timeout=0.2), "the restore")
    assert (again.message.body, again.redelivered, again.delivery_tag) == (
        b"m",
        True,
        held.delivery_tag,
    )
    assert again.message.headers["redelivered"] is True


def test_extend_keeps_a_long_task_from_being_redelivered(connect: Any) -> None:
    worker, other = connect(**FAST), connect(**FAST)
    worker.publish(msg("long"), routing_key="q")
    held = worker.get(["q"], timeout=5)
    deadline = time.monotonic() + 1.5  # three visibility timeouts
    while time.monotonic() < deadline:
        worker.extend(held)
        assert other.get(["q"], timeout=0.1) == []
    worker.ack(held)
    assert worker.client.hlen(worker.keys.unacked) == 0


def test_broker_side_eta_option_parks_published_messages(connect: Any) -> None:
    producer, consumer = connect(broker_side_eta=True), connect()
    due = time.time() + 0.3
    producer.publish(msg("later"), routing_key="q", not_before=due)
    assert producer.size("q") == 1 and producer.client.llen(producer.keys.queue_key("q")) == 0
    assert consumer.get(["q"]) == []
    [later] = consumer.get(["q"], timeout=5)
    assert later.message.body == b"later" and time.time() >= due


def test_default_publish_with_eta_is_a_plain_lpush(connect: Any) -> None:
    transport = connect()
    transport.publish(msg("eta"), routing_key="q", not_before=time.time() + 3600)
    assert transport.client.llen(transport.keys.queue_key("q")) == 1


def test_priorities_use_kombus_lists(connect: Any) -> None:
    transport = connect()
    for priority in (9, 5, 0):
        transport.publish(msg(f"p{priority}", priority=priority), routing_key="q")
    keys = transport.keys
    assert [transport.client.llen(keys.queue_key("q", s)) for s in (0, 3, 6, 9)] == [1, 1, 0, 1]
    got = transport.get(["q"], max_messages=3, timeout=5)
    assert [d.message.body for d in got] == [b"p0", b"p5", b"p9"]


def test_publish_to_a_dead_server_fails_fast_with_a_masked_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = RedisTransport("redis://:hunter2@127.0.0.1:1/0", {"socket_connect_timeout": 0.2})
    caplog.set_level(logging.ERROR, "celeriac.transports.redis")
    started = time.monotonic()
    with pytest.raises(OperationalError, match="Cannot reach the Redis broker") as info:
        dead.publish(msg("x"), routing_key="q")
    assert time.monotonic() - started < 5
    assert "hunter2" not in str(info.value) and ":**@" in str(info.value)
    assert caplog.records and all("hunter2" not in r.getMessage() for r in caplog.records)


def test_open_without_retry_on_startup_fails_at_once() -> None:
    options = {"socket_connect_timeout": 0.2, "broker_connection_retry_on_startup": False}
    dead = RedisTransport("redis://127.0.0.1:1/0", options)
    with pytest.raises(OperationalError, match="while connecting"):
        dead.open()


def _through_brpop(consumer: RedisTransport, producer: RedisTransport, body: str) -> Any:
    """Publish ``body`` while ``consumer`` is blocked in BRPOP; return its delivery."""
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.extend(consumer.get(["q"], timeout=10)))
    thread.start()
    wait_until(lambda: _blocked_in_brpop(consumer), "the consumer to block in BRPOP")
    producer.publish(msg(body), routing_key="q")
    thread.join(10)
    [delivery] = got
    return delivery


def _blocked_in_brpop(transport: RedisTransport) -> bool:
    return any(
        c.get("cmd") == "brpop" and str(c.get("db")) == str(REDIS_BROKER_DB)
        for c in transport.client.client_list()
    )


def _recorded(transport: RedisTransport, tag: str) -> bool:
    return bool(transport.client.hexists(transport.keys.unacked, tag))


def test_a_message_brpop_takes_is_recorded_as_unacked_without_a_wait(connect: Any) -> None:
    consumer, producer = connect(key_tracking=False), connect()
    delivery = _through_brpop(consumer, producer, "b")
    wait_until(lambda: _recorded(consumer, delivery.delivery_tag), "the unacked record")
    consumer.ack([delivery])
    assert not _recorded(consumer, delivery.delivery_tag)


def test_a_record_whose_reply_was_lost_is_made_again_on_the_next_call(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer, producer = connect(key_tracking=False), connect()
    lost: list[Any] = []

    def lose(client: Any, commands: Any, on_replies: Any) -> None:  # never reaches Redis
        lost.append(commands)
        on_replies(ConnectionError("connection lost before the reply"))

    monkeypatch.setattr(consumer._wire, "send", lose)
    producer.publish(msg("first"), routing_key="q")
    [delivery] = consumer.get(["q"], timeout=5)  # popped by the script: recorded at once
    consumer.ack([delivery])
    second = _through_brpop(consumer, producer, "second")
    assert len(lost) == 1
    assert not _recorded(consumer, second.delivery_tag)
    assert consumer.get(["q"], timeout=0) == []  # the next call records it again
    assert _recorded(consumer, second.delivery_tag)


def test_a_connection_cut_while_a_consumer_waits_takes_no_message(connect: Any) -> None:
    """The server's answer to a waiting consumer is dropped on the way (a network cut): with
    BRPOP that answer was the message itself, popped and gone; with key tracking it is only
    the news of a change, and the message is still in its list when the consumer is back."""
    producer = connect()
    prefix = producer.keys.prefix
    with tcp_proxy(REDIS_HOST, REDIS_PORT) as proxy:
        url = f"redis://{proxy.address}/{REDIS_BROKER_DB}"
        consumer = RedisTransport(url, {"global_keyprefix": prefix, "socket_timeout": 5})
        consumer.open()
        got: list[Any] = []
        waiting = threading.Thread(target=lambda: got.extend(consumer.get(["q"], timeout=30)))
        waiting.start()
        wait_until(lambda: _waiting_on(producer, prefix + "q"), "the consumer to wait")
        proxy.hold()
        producer.publish(msg("kept"), routing_key="q")
        wait_until(lambda: proxy.held, "the server's answer to reach the proxy")
        proxy.cut()  # the answer is dropped with the connection
        assert producer.client.llen(prefix + "q") == 1  # nothing was taken
        proxy.release()
        proxy.restore()
        waiting.join(30)
        assert [d.message.body for d in got] == [b"kept"]
        consumer.close()


def _waiting_on(transport: RedisTransport, key: str) -> bool:
    """Is a connection of this database watching ``key`` (key tracking) or blocked on it?"""
    for c in transport.client.client_list():
        if str(c.get("db")) != str(REDIS_BROKER_DB):
            continue
        if "t" in str(c.get("flags")) or c.get("cmd") == "brpop":
            return True
    return False


def test_a_server_refusing_key_tracking_is_named_and_brpop_serves(
    connect: Any, caplog: pytest.LogCaptureFixture
) -> None:
    admin = connect()
    name, password = f"celeriac-notrack-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    admin.client.acl_setuser(
        name,
        enabled=True,
        passwords=[f"+{password}"],
        keys=[admin.keys.prefix + "*"],
        commands=["+@all", "-client|tracking"],
    )
    try:
        url = f"redis://{name}:{password}@{REDIS_HOST}:{REDIS_PORT}/{REDIS_BROKER_DB}"
        consumer = RedisTransport(url, {"global_keyprefix": admin.keys.prefix})
        consumer.open()
        caplog.set_level(logging.WARNING, "celeriac.transports.redis")
        waiting = threading.Thread(target=lambda: got.extend(consumer.get(["q"], timeout=20)))
        got: list[Any] = []
        waiting.start()
        wait_until(lambda: _blocked_in_brpop(consumer), "the consumer to block in BRPOP")
        admin.publish(msg("served"), routing_key="q")
        waiting.join(20)
        assert [d.message.body for d in got] == [b"served"]
        [warning] = [r.getMessage() for r in caplog.records if "key tracking" in r.getMessage()]
        assert "client|tracking" in warning and "BRPOP" in warning
        consumer.close()
    finally:
        admin.client.acl_deluser(name)


def test_confirm_keeps_a_renewed_lease_and_drops_one_another_consumer_took(
    connect: Any,
) -> None:
    """A lease that ran out was restored and taken by another consumer under the same tag:
    only the lease score tells the holders apart (ConfirmsLeases)."""
    first, second = connect(**FAST), connect(**FAST)
    first.publish(msg("kept"), routing_key="q")
    first.publish(msg("taken"), routing_key="q")
    kept, taken = first.get(["q"], max_messages=2, timeout=5)
    assert first.confirm([kept, taken]) == [kept, taken]

    def renew_and_look() -> list[Any]:
        first.extend([kept])  # "taken" is not renewed: its lease runs out
        return second.get(["q"], timeout=0.2)

    [again] = wait_until(renew_and_look, "the other consumer to take the expired message")
    assert (again.message.body, again.delivery_tag) == (b"taken", taken.delivery_tag)
    assert first.confirm([kept, taken]) == [kept]
    assert second.confirm([again]) == [again]
    first.ack([kept])
    assert first.confirm([kept]) == []  # settled: no longer held
