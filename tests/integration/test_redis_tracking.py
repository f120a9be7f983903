"""Waiting on key tracking (RESP2 and RESP3) on the local server: a push to a watched list
wakes the wait, other keys under the same prefix do not, and a server that refuses tracking
is reported so the transport can fall back to BRPOP."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from celeriac.drivers.redis.tracking import KeyWatch
from tests.servers import REDIS_BROKER_DB, REDIS_HOST, REDIS_PORT, redis_namespace


@pytest.fixture
def prefix() -> str:
    redis_namespace(REDIS_BROKER_DB, "track-*")
    return f"track-{uuid.uuid4().hex[:8]}:"


def client(protocol: int, **options: object) -> redis.Redis:
    return redis.Redis(REDIS_HOST, REDIS_PORT, REDIS_BROKER_DB, protocol=protocol, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_push_to_a_watched_list_wakes_the_wait(prefix: str, protocol: int) -> None:
    watched, other = client(protocol), client(3)
    watch = KeyWatch()
    try:
        assert watch.arm(watched, [prefix + "q", prefix + "q\x06\x163"])
        other.set(prefix + "q-meta", "not a queue")  # same prefix, not watched
        assert not watch.wait(0.3)
        pusher = threading.Timer(0.2, lambda: other.lpush(prefix + "q\x06\x163", "m"))
        pusher.start()
        started = time.monotonic()
        assert watch.wait(10)
        assert time.monotonic() - started < 5
        pusher.join()
        # Armed again: what was heard is forgotten; a pop is a change too.
        assert watch.arm(watched, [prefix + "q", prefix + "q\x06\x163"])
        assert not watch.wait(0.05)
        other.rpop(prefix + "q\x06\x163")
        assert watch.wait(10)
    finally:
        watch.close()
        other.delete(prefix + "q-meta", prefix + "q\x06\x163")


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_change_between_arm_and_wait_is_not_missed(prefix: str, protocol: int) -> None:
    watched, other = client(protocol), client(3)
    watch = KeyWatch()
    try:
        assert watch.arm(watched, [prefix + "q"])
        other.lpush(prefix + "q", "m")  # after the arm, before the wait
        assert watch.wait(10)
    finally:
        watch.close()
        other.delete(prefix + "q")


@pytest.fixture
def untracked_user() -> Iterator[tuple[str, str]]:
    """An ACL user that may use lists but not CLIENT (as some managed servers and proxies
    refuse CLIENT TRACKING); removed afterwards."""
    admin = client(3)
    name, password = f"celeriac-notrack-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    admin.acl_setuser(
        name,
        enabled=True,
        passwords=[f"+{password}"],
        keys=["track-*"],
        commands=["+@all", "-client|tracking"],
    )
    try:
        yield name, password
    finally:
        admin.acl_deluser(name)


def test_a_server_that_refuses_tracking_is_reported(
    prefix: str, untracked_user: tuple[str, str]
) -> None:
    name, password = untracked_user
    for protocol in (2, 3):
        refused = client(protocol, username=name, password=password)
        watch = KeyWatch()
        assert not watch.arm(refused, [prefix + "q"])
        assert watch.unsupported is not None and "client|tracking" in watch.unsupported
        assert not watch.arm(refused, [prefix + "q"])  # asked once, not on every wait
