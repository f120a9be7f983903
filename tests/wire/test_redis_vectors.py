"""Every Redis vector captured from Celery 5.7 / kombu 5.7: we read theirs and write the same.

Pure checks (key names, envelopes, restore payloads) need no server; the write-side checks
run the real transport and backend against the local Redis in the test DBs.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from celeriac import states
from celeriac.app.config import Settings
from celeriac.backends.redis import RedisBackend
from celeriac.protocol.entities import Exchange, Queue
from celeriac.protocol.envelope import dump_envelope, from_envelope
from celeriac.transports.redis.keys import Keyspace
from celeriac.transports.redis.transport import RedisTransport
from celeriac.transports.redis.unacked import redelivered
from tests.servers import REDIS_BROKER_DB, REDIS_RESULTS_DB, redis_namespace
from tests.vectors import vector_files

Vector = Callable[[str], dict[str, Any]]
TASK_FILES = [p.stem for p in vector_files("task_v*.json")]
KEYS0 = Keyspace({}, 0)
_ISO = re.compile(r'"date_done": "[^"]*"')


def _messages(vector: Any) -> Iterator[dict[str, Any]]:
    """Every captured LPUSH (``raw`` + ``redis_key``) in a vector file."""
    if isinstance(vector, dict):
        if "raw" in vector and "redis_key" in vector and "envelope" in vector:
            yield vector
        for value in vector.values():
            yield from _messages(value)
    elif isinstance(vector, list):
        for value in vector:
            yield from _messages(value)


@pytest.mark.parametrize("name", TASK_FILES)
def test_every_task_envelope_decodes_and_reencodes(name: str, load_vector: Vector) -> None:
    found = list(_messages(load_vector(name)))
    assert found, name
    for captured in found:
        message, info = from_envelope(captured["raw"])
        queue = KEYS0.queue_of(captured["redis_key"])
        # The list key follows from the queue and the message's priority.
        step = KEYS0.step_of(message.properties.get("priority"))
        assert KEYS0.queue_key(queue, step) == captured["redis_key"]
        again = dump_envelope(
            message,
            exchange=info["exchange"],
            routing_key=info["routing_key"],
            delivery_tag=info["delivery_tag"],
        )
        assert again == captured["raw"]


def test_restore_payload_matches_kombus_bytes(load_vector: Vector) -> None:
    snapshot = load_vector("redis_unacked_snapshot")
    [(tag, stored)] = snapshot["unacked"]["value"].items()
    envelope, exchange, routing_key, priority = redelivered(stored) or ("", "", "", None)
    assert envelope == snapshot["after_warm_shutdown_celery_list"]["value"][0]
    assert (exchange, routing_key, priority) == ("", "celery", 0)
    [[index_tag, _score]] = snapshot["unacked_index"]["value"]
    assert index_tag == tag


def test_binding_members_match_the_snapshot(load_vector: Vector) -> None:
    keys = load_vector("redis_bindings_snapshot")["keys"]
    assert keys["_kombu.binding.celery"]["value"] == [
        KEYS0.binding_member("direct", "celery", "celery")
    ]
    topic, fanout = sorted(keys["_kombu.binding.celeryev"]["value"])
    assert topic == KEYS0.binding_member("topic", "#", "capture.events")
    queue = fanout.rsplit("\x06\x16", 1)[1]
    assert fanout == KEYS0.binding_member("fanout", "worker.#", queue)
    assert keys["_kombu.binding.celery.pidbox"]["value"] == [
        KEYS0.binding_member("fanout", "", "w2@cap.celery.pidbox")
    ]
    assert KEYS0.binding_key("celery") in keys and KEYS0.permanent_binding_key("celery") in keys


def test_command_traces_use_our_names(load_vector: Vector) -> None:
    startup = [c["cmd"] for c in load_vector("redis_commands_worker_startup")["commands"]]
    assert ["BRPOP", *KEYS0.pop_order(["celery"]), "1"] in startup
    assert ["PSUBSCRIBE", *KEYS0.fanout_patterns_for("celery.pidbox", "")] in startup
    assert ["PSUBSCRIBE", KEYS0.fanout_patterns_for("celeryev", "worker.#")[0]] in startup
    trip = [c["cmd"] for c in load_vector("redis_commands_task_roundtrip")["commands"]]
    names = {(cmd[0], cmd[1]) for cmd in trip if len(cmd) > 1}
    assert ("PUBLISH", KEYS0.fanout_channel("celeryev", "task.sent")) in names
    assert ("ZADD", KEYS0.unacked_index) in names and ("HSET", KEYS0.unacked) in names
    assert ("SADD", KEYS0.permanent_binding_key("celery")) in names
    assert KEYS0.split_channel("/0.celery.pidbox") == ("celery.pidbox", "")
    assert KEYS0.split_channel("/0.celeryev/task.sent") == ("celeryev", "task.sent")


# -- write side, against the local Redis ---------------------------------------------------------
@pytest.fixture
def transport() -> Iterator[RedisTransport]:
    prefix = f"wire-{uuid.uuid4().hex[:8]}:"
    url = redis_namespace(REDIS_BROKER_DB, "wire-*")
    conn = RedisTransport(url, {"global_keyprefix": prefix})
    conn.open()
    yield conn
    conn.close()


def test_we_record_unacked_exactly_as_kombu(transport: RedisTransport, load_vector: Vector) -> None:
    snapshot = load_vector("redis_unacked_snapshot")
    [(tag, stored)] = snapshot["unacked"]["value"].items()
    raw = json.loads(stored)[0]
    envelope = json.dumps(raw)
    transport.client.lpush(transport.keys.queue_key("celery"), envelope)
    [delivery] = transport.get(["celery"], timeout=5)
    assert delivery.delivery_tag == tag
    assert transport.client.hget(transport.keys.unacked, tag) == stored.encode()
    transport.restore([delivery])
    pushed = transport.client.lrange(transport.keys.queue_key("celery"), 0, -1)
    assert pushed == [snapshot["after_warm_shutdown_celery_list"]["value"][0].encode()]


def test_we_write_kombus_bindings(transport: RedisTransport) -> None:
    transport.declare_queue(Queue("celery", Exchange("celery"), "celery"))
    member = b"celery\x06\x16\x06\x16celery"
    client, keys = transport.client, transport.keys
    assert client.smembers(keys.binding_key("celery")) == {member}
    assert client.smembers(keys.permanent_binding_key("celery")) == {member}


def test_result_documents_are_read_and_written_alike(load_vector: Vector) -> None:
    docs = load_vector("result_redis_documents")
    url = redis_namespace(REDIS_RESULTS_DB, "wire-*")
    prefix = f"wire-{uuid.uuid4().hex[:8]}:"
    backend = RedisBackend(
        url, Settings({"result_backend_transport_options": {"global_keyprefix": prefix}})
    )
    for name, entry in docs.items():
        if isinstance(entry, dict) and "raw" in entry and "redis_key" in entry:
            meta = backend.decode_document(entry["raw"])
            assert meta["status"] in states.ALL_STATES, name
    success = json.loads(docs["success"]["raw"])
    backend.mark_as_done(success["task_id"], 5)
    written = redis.Redis.from_url(url).get(backend.task_key(success["task_id"]))
    assert written is not None
    assert _ISO.sub("", written.decode()) == _ISO.sub("", docs["success"]["raw"])
    failure = json.loads(docs["failure"]["raw"])
    backend.mark_as_failure(failure["task_id"], ValueError("boom", 42), failure["traceback"])
    written = redis.Redis.from_url(url).get(backend.task_key(failure["task_id"]))
    assert written is not None
    assert _ISO.sub("", written.decode()) == _ISO.sub("", docs["failure"]["raw"])
    backend.close()
