"""Events on Redis as Celery 5.7 publishes them (vector ``events_redis_pubsub``): the same
channels, envelope, headers and body keys (in Celery's order), and one list body per
``task.multi`` batch; and every captured event decodes in celeriac's receiver."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from celeriac.events.dispatcher import EventDispatcher
from celeriac.events.receiver import EventReceiver
from celeriac.protocol.envelope import from_envelope
from celeriac.transports.redis.transport import RedisTransport
from tests.servers import REDIS_BROKER_DB, redis_url, require_redis
from tests.vectors import load_vector

VECTOR = load_vector("events_redis_pubsub")["events"]


def _captured(type_: str, channel_suffix: str) -> dict[str, Any]:
    for name, captured in VECTOR.items():
        if name.split(" ")[1] == type_ and captured["channel"].endswith(channel_suffix):
            return dict(captured)
    raise KeyError(type_)


@pytest.fixture
def pubsub() -> Iterator[tuple[redis.client.PubSub, RedisTransport, str]]:
    require_redis()
    exchange = f"celeryev-wire-{uuid.uuid4().hex[:8]}"  # this test's own channels
    client = redis.Redis.from_url(redis_url(REDIS_BROKER_DB))
    sub = client.pubsub()
    sub.psubscribe(f"/{REDIS_BROKER_DB}.{exchange}/*")
    assert sub.get_message(timeout=5)["type"] == "psubscribe"
    transport = RedisTransport(redis_url(REDIS_BROKER_DB))
    try:
        yield sub, transport, exchange
    finally:
        transport.close()
        sub.close()
        client.close()


def _next(sub: redis.client.PubSub) -> dict[str, Any]:
    message = sub.get_message(timeout=5)
    assert message is not None and message["type"] == "pmessage"
    return dict(message)


def test_worker_and_batched_task_events_match_celerys(
    pubsub: tuple[redis.client.PubSub, RedisTransport, str],
) -> None:
    sub, transport, exchange = pubsub
    dispatcher = EventDispatcher(transport, "w1@cap", exchange=exchange, buffer_group={"task"})
    online = _captured("worker-online", "worker.online")
    dispatcher.send(
        "worker-online",
        **{
            k: online["body_json"][k]
            for k in ("freq", "active", "processed", "loadavg", "sw_ident", "sw_ver", "sw_sys")
        },
    )
    got = _next(sub)
    assert got["channel"].decode() == f"/{REDIS_BROKER_DB}.{exchange}/worker.online"
    envelope = json.loads(got["data"])
    captured = online["envelope"]
    assert set(envelope) == set(captured)
    assert envelope["headers"] == {"hostname": "w1@cap"}
    assert envelope["content-type"] == captured["content-type"]
    assert envelope["content-encoding"] == captured["content-encoding"]
    props = envelope["properties"]
    assert set(props) == set(captured["properties"])
    assert props["delivery_mode"] == 1 and props["priority"] == 0
    assert props["body_encoding"] == "base64"
    assert props["delivery_info"] == {"exchange": exchange, "routing_key": "worker.online"}
    message, _ = from_envelope(got["data"])
    body = json.loads(message.body)
    assert list(body) == list(online["body_json"])  # Celery's key order

    received = _captured("task-received", "task.multi")["body_json"][0]
    fields = {
        k: v
        for k, v in received.items()
        if k not in ("hostname", "utcoffset", "pid", "clock", "timestamp", "type")
    }
    dispatcher.send("task-received", **fields)
    dispatcher.send("task-started", uuid=fields["uuid"])
    assert sub.get_message(timeout=0.2) is None  # buffered
    dispatcher.flush()
    got = _next(sub)
    assert got["channel"].decode().endswith("/task.multi")
    message, _ = from_envelope(got["data"])
    batch = json.loads(message.body)
    assert [e["type"] for e in batch] == ["task-received", "task-started"]
    assert list(batch[0]) == list(received)
    assert [e["clock"] for e in batch] == [2, 3]


def test_every_captured_event_is_received() -> None:
    seen: list[dict[str, Any]] = []
    receiver = EventReceiver(RedisTransport("redis://127.0.0.1:1/0"), handlers={"*": seen.append})
    count = 0
    for captured in VECTOR.values():
        message, _ = from_envelope(captured["raw"])
        receiver.receive_message(message)
        body = captured["body_json"]
        count += len(body) if isinstance(body, list) else 1
    assert len(seen) == count
    sent = next(e for e in seen if e["type"] == "task-sent")
    assert sent["clock"] == 0  # the receiver's clock (minus one), not the client's (1)
    assert all("local_received" in e for e in seen)
