"""The Redis chord join writes what Celery 5.7 writes (vector ``redis_commands_chord``): the size
in ``.s``, one ``[1, id, state, result]`` entry per header task in the ``.j`` zset scored by
group index, ``id:index`` members in ``.d``, the ``.c`` claim ending as ``done``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from celeriac import Celery, states
from celeriac.backends.redis import RedisBackend
from tests.servers import (
    REDIS_HOST,
    REDIS_PORT,
    REDIS_RESULTS_DB,
    delete_redis_keys,
    redis_url,
    require_redis,
)
from tests.vectors import load_vector

PREFIX = f"celeriac-chordkeys-{os.getpid()}-"


@pytest.fixture
def store() -> Iterator[tuple[RedisBackend, redis.Redis]]:
    require_redis()
    app = Celery("t", backend=redis_url(REDIS_RESULTS_DB))
    app.conf.result_backend_transport_options = {"global_keyprefix": PREFIX}
    backend = app.backend
    assert isinstance(backend, RedisBackend)
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_RESULTS_DB)
    yield backend, client
    client.close()
    app.close()
    delete_redis_keys(REDIS_RESULTS_DB, PREFIX + "*")


def test_the_keys_and_values_are_celerys(store: tuple[RedisBackend, redis.Redis]) -> None:
    backend, client = store
    commands = [c["cmd"] for c in load_vector("redis_commands_chord")["commands"]]
    gid = str(uuid.uuid4())
    key = f"{PREFIX}celery-taskset-meta-{gid}"
    backend.set_chord_size(gid, 3)
    assert client.get(key + ".s") == b"3" and 0 < client.ttl(key + ".s") <= 86400
    ids = [str(uuid.uuid4()) for _ in range(3)]
    assert backend.chord_part_return(gid, ids[0], 0, states.SUCCESS, 0) is None
    assert backend.chord_part_return(gid, ids[1], 1, states.SUCCESS, 2) is None
    # as captured: ZADD .j <index> '[1, "<id>", "SUCCESS", <result>]' and SADD .d '<id>:<index>'
    captured = next(c for c in commands if c[0] == "ZADD")
    assert captured[3] == f'[1, "{captured[3].split(chr(34))[1]}", "SUCCESS", 0]'
    assert client.zrange(key + ".j", 0, -1, withscores=True) == [
        (f'[1, "{ids[0]}", "SUCCESS", 0]'.encode(), 0.0),
        (f'[1, "{ids[1]}", "SUCCESS", 2]'.encode(), 1.0),
    ]
    assert client.smembers(key + ".d") == {f"{ids[0]}:0".encode(), f"{ids[1]}:1".encode()}
    parts = backend.chord_part_return(gid, ids[2], 2, states.SUCCESS, 4)
    assert parts is not None and [v for _, _, v in parts.results] == [0, 2, 4]
    assert client.get(key + ".c") == parts.token.encode()  # the claim, as SET .c <token> NX EX
    backend.chord_done(parts)
    assert client.get(key + ".c") == b"done"
    assert not any(client.exists(key + s) for s in (".j", ".t", ".s", ".d"))
    assert 0 < client.ttl(key + ".c") <= 300
