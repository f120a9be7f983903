"""The lean RESP path and its way out (``redis_lean_resp``) on the local Redis: the setting
chooses the path for the broker and the result backend, error replies and the ``NOSCRIPT``
reload behave alike on both paths, and a pipelined error leaves the connection in step.

``NOSCRIPT`` is provoked with scripts this server has never seen (a unique comment in the
script's text), never with ``SCRIPT FLUSH``, which is server-wide."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from celeriac import Celery, states
from celeriac.app.config import Settings
from celeriac.backends import redis as redis_backend
from celeriac.backends.redis import RedisBackend
from celeriac.drivers.redis import wire as _redis_wire
from celeriac.drivers.redis.plain import PlainWire
from celeriac.drivers.redis.wire import Wire
from celeriac.protocol.message import Message
from celeriac.transports.redis import pop as _redis_pop
from celeriac.transports.redis.transport import RedisTransport
from tests.servers import (
    REDIS_BROKER_DB,
    REDIS_HOST,
    REDIS_PORT,
    REDIS_RESULTS_DB,
    redis_namespace,
)

MODES = [pytest.param(True, id="lean"), pytest.param(False, id="plain")]


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own (the run's ``lean-resp-*`` keys are removed at exit)."""
    redis_namespace(REDIS_BROKER_DB, "lean-resp-*")
    redis_namespace(REDIS_RESULTS_DB, "lean-resp-*")
    return f"lean-resp-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    made = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_BROKER_DB)
    yield made
    made.close()


def unseen_script(body: str) -> tuple[str, str]:
    """``body`` with a comment no server has seen, and its SHA1."""
    script = f"{body}\n-- celeriac test {uuid.uuid4().hex}\n"
    return script, hashlib.sha1(script.encode()).hexdigest()


def script_known(client: redis.Redis, sha: str) -> bool:
    return bool(client.script_exists(sha)[0])


def msg(body: str) -> Message:
    return Message(body.encode(), "application/json", "utf-8", {"id": body}, {})


@pytest.fixture
def lean_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the commands written by the lean path (each write goes through ``pack``)."""
    calls: list[int] = []
    real = _redis_wire.pack

    def counting(commands: Any) -> bytes:
        calls.append(len(commands))
        return real(commands)

    monkeypatch.setattr(_redis_wire, "pack", counting)
    return calls


@pytest.mark.parametrize("lean", MODES)
def test_the_setting_chooses_the_path_for_broker_and_backend(
    lean: bool, prefix: str, lean_calls: list[int]
) -> None:
    app = Celery(
        "lean",
        broker=redis_namespace(REDIS_BROKER_DB, "lean-resp-*"),
        backend=redis_namespace(REDIS_RESULTS_DB, "lean-resp-*"),
    )
    app.conf.update(
        redis_lean_resp=lean,
        broker_transport_options={"global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
    )
    transport = app.connection()
    backend = app.backend
    assert isinstance(transport, RedisTransport) and isinstance(backend, RedisBackend)
    try:
        transport.open()
        transport.publish(msg("m"), routing_key="q")
        [delivery] = transport.get(["q"], timeout=5)
        transport.ack([delivery])
        backend.mark_as_done("t-1", 42)
        assert backend.get_task_meta("t-1")["result"] == 42
        assert backend.wait_for("t-1", timeout=5)["result"] == 42  # the waiting connection
        assert transport.get(["q"], timeout=0) == []
    finally:
        transport.close()
        backend.close()
    assert delivery.message.body == b"m"
    assert type(transport._wire) is (Wire if lean else PlainWire)
    assert type(backend._wire) is (Wire if lean else PlainWire)
    if lean:
        assert len(lean_calls) >= 5  # publish, pop, ack, store, read (at least)
    else:
        assert lean_calls == []


@pytest.mark.parametrize("lean", MODES)
def test_noscript_is_redis_pys_error_and_the_connection_stays_usable(
    lean: bool, prefix: str, client: redis.Redis
) -> None:
    _script, sha = unseen_script("return 1")
    with pytest.raises(redis.exceptions.NoScriptError) as plain_error:
        client.evalsha(sha, 0)
    wire = Wire() if lean else PlainWire()
    key = f"{prefix}k"
    try:
        before = wire.execute(client, [("CLIENT", "ID")])[0]
        with pytest.raises(redis.exceptions.NoScriptError) as error:
            wire.execute(client, [("EVALSHA", sha, 0)])
        assert str(error.value) == str(plain_error.value)
        # Pipelined: the replies after the error are read too, the writes before it done.
        with pytest.raises(redis.exceptions.NoScriptError):
            wire.execute(client, [("SET", key, "1"), ("EVALSHA", sha, 0), ("INCR", key)])
        assert wire.execute(client, [("GET", key)]) == [b"2"]
        if lean:  # one connection of its own, kept through the error replies
            assert wire.execute(client, [("CLIENT", "ID")])[0] == before
    finally:
        wire.close()
        client.delete(key)


@pytest.mark.parametrize("lean", MODES)
def test_send_hands_error_replies_to_the_callback(
    lean: bool, prefix: str, client: redis.Redis
) -> None:
    _script, sha = unseen_script("return 1")
    wire = Wire() if lean else PlainWire()
    got: list[Any] = []
    key = f"{prefix}k"
    try:
        wire.send(client, [("EVALSHA", sha, 0), ("INCR", key)], got.append)
        wire.flush()
        [[missing, count]] = got
        assert isinstance(missing, redis.exceptions.NoScriptError) and count == 1
    finally:
        wire.close()
        client.delete(key)


@pytest.mark.parametrize("lean", MODES)
def test_the_pop_script_is_loaded_again_when_the_server_lacks_it(
    lean: bool, prefix: str, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    script, sha = unseen_script(_redis_pop.POP_AND_RECORD)
    monkeypatch.setattr(_redis_pop, "POP_AND_RECORD", script)
    monkeypatch.setattr(_redis_pop, "SHA", sha)
    url = redis_namespace(REDIS_BROKER_DB, "lean-resp-*")
    transport = RedisTransport(url, {"global_keyprefix": prefix, "redis_lean_resp": lean})
    try:
        transport.open()
        transport.publish(msg("first"), routing_key="q")
        assert not script_known(client, sha)
        [delivery] = transport.get(["q"], timeout=5)  # EVALSHA: NOSCRIPT, load, again
        assert delivery.message.body == b"first"
        assert script_known(client, sha)
        # Recorded as unacked by the script, and the ack goes through it too.
        assert client.hexists(f"{prefix}unacked", delivery.delivery_tag)
        transport.ack([delivery])
        assert not client.hexists(f"{prefix}unacked", delivery.delivery_tag)
    finally:
        transport.close()


@pytest.mark.parametrize("lean", MODES)
def test_the_store_script_is_loaded_again_when_the_server_lacks_it(
    lean: bool, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    script, sha = unseen_script(redis_backend._STORE)
    monkeypatch.setattr(redis_backend, "_STORE", script)
    url = redis_namespace(REDIS_RESULTS_DB, "lean-resp-*")
    conf = Settings(
        {
            "redis_lean_resp": lean,
            "result_backend_transport_options": {"global_keyprefix": prefix},
        }
    )
    backend = RedisBackend(url, conf)
    server = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_RESULTS_DB)
    try:
        assert not script_known(server, sha)
        # A pipelined batch whose every EVALSHA is answered NOSCRIPT: loaded, sent again.
        assert backend.open_write_batch()
        with backend.deferring():
            for n in range(3):
                backend.mark_as_done(f"t-{n}", n)
        backend.flush_writes()
        assert script_known(server, sha)
        for n in range(3):
            meta = backend.get_task_meta(f"t-{n}")
            assert (meta["status"], meta["result"]) == (states.SUCCESS, n)
    finally:
        backend.close()
        server.close()
