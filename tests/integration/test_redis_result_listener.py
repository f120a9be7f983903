"""The Redis result backend's waiting connection: one subscription per waited result,
channels of finished waits unsubscribed in batches, messages of those channels dropped."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
import redis

from celeriac import states
from celeriac.app.config import Settings
from celeriac.backends.redis import RedisBackend
from celeriac.drivers.redis.wire import STALE_CHANNELS
from tests.servers import REDIS_HOST, REDIS_PORT, REDIS_RESULTS_DB, redis_namespace

_names = itertools.count()


@pytest.fixture
def prefix() -> str:
    return f"listener-{os.getpid()}-{next(_names)}:"


def _backend(prefix: str) -> RedisBackend:
    url = redis_namespace(REDIS_RESULTS_DB, f"listener-{os.getpid()}-*")
    conf = Settings({"result_backend_transport_options": {"global_keyprefix": prefix}})
    return RedisBackend(url, conf)


@pytest.fixture
def pair(prefix: str) -> Iterator[tuple[RedisBackend, RedisBackend]]:
    client, worker = _backend(prefix), _backend(prefix)
    yield client, worker
    client.close()
    worker.close()


def _subscribers(prefix: str, task_ids: list[str]) -> list[int]:
    server = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_RESULTS_DB)
    channels = [f"{prefix}celery-task-meta-{t}" for t in task_ids]
    counts = dict(server.pubsub_numsub(*channels))
    server.close()
    return [int(counts[c.encode()]) for c in channels]


def test_a_result_stored_while_waiting_is_heard(pair: tuple[RedisBackend, RedisBackend]) -> None:
    client, worker = pair
    client._before_read(["t-heard"])  # subscribed, and read: nothing stored yet
    assert client.get_task_meta("t-heard")["status"] == states.PENDING
    worker.mark_as_done("t-heard", 42)
    client._wait(["t-heard"], 10.0)
    assert client._listener.take(client.task_key("t-heard")) != (False, None)


def test_finished_waits_are_unsubscribed_in_batches(
    pair: tuple[RedisBackend, RedisBackend], prefix: str
) -> None:
    client, worker = pair
    ids = [f"t-{i}" for i in range(STALE_CHANNELS + 1)]
    for task_id in ids[:STALE_CHANNELS]:
        worker.mark_as_done(task_id, task_id)
        assert client.wait_for(task_id, timeout=10)["result"] == task_id
    # Every finished wait is still subscribed: no UNSUBSCRIBE per get().
    assert _subscribers(prefix, ids[:STALE_CHANNELS]) == [1] * STALE_CHANNELS
    worker.mark_as_done(ids[-1], "last")
    assert client.wait_for(ids[-1], timeout=10)["result"] == "last"
    # The batch went in one UNSUBSCRIBE with the next wait.
    assert _subscribers(prefix, ids) == [0] * STALE_CHANNELS + [1]


def test_a_stale_channels_message_is_not_kept(
    pair: tuple[RedisBackend, RedisBackend],
) -> None:
    client, worker = pair
    worker.mark_as_done("t-a", "first")
    assert client.wait_for("t-a", timeout=10)["result"] == "first"
    client._before_read(["t-b"])  # t-a is no longer waited for, still subscribed
    worker.store_result("t-a", None, states.STARTED)  # heard on t-a's channel: dropped
    worker.mark_as_done("t-b", "b")
    assert client.wait_for("t-b", timeout=10)["result"] == "b"
    assert client._listener.take(client.task_key("t-a")) == (False, None)


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "plain"])
def test_many_results_are_read_in_one_round_trip(
    prefix: str, lean: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``get_task_metas`` (``join_native``): one ``MGET``, or what the waiting connection read
    with its SUBSCRIBE, never a ``GET`` per result."""
    url = redis_namespace(REDIS_RESULTS_DB, f"listener-{os.getpid()}-*")
    conf = Settings(
        {
            "result_backend_transport_options": {"global_keyprefix": prefix},
            "redis_lean_resp": lean,
        }
    )
    client, worker = RedisBackend(url, conf), RedisBackend(url, conf)
    ids = [f"many-{i}" for i in range(5)]
    for i in (0, 3):
        worker.mark_as_done(ids[i], i)
    sent: list[list[tuple[str, ...]]] = []
    execute = client._wire.execute

    def counted(redis_client: object, commands: list[tuple[str, ...]]) -> list[object]:
        sent.append(commands)
        return execute(redis_client, commands)  # type: ignore[arg-type]

    monkeypatch.setattr(client._wire, "execute", counted)
    metas = client.get_task_metas(ids)
    assert [m["result"] for m in metas] == [0, None, None, 3, None]
    assert [[c[0] for c in batch] for batch in sent] == [["MGET"]]
    client.close()
    worker.close()
