"""kombu's Redis keyspace and the Redis URL forms, without a server."""

from __future__ import annotations

import ssl

import pytest

from celeriac.drivers.redis.client import describe, parse_url
from celeriac.exceptions import ImproperlyConfigured
from celeriac.transports.redis.keys import Keyspace, topic_regex


@pytest.mark.parametrize(
    ("priority", "step"),
    [(0, 0), (2, 0), (3, 3), (5, 3), (6, 6), (8, 6), (9, 9), (42, 9), (-1, 0), ("x", 0), (None, 0)],
)
def test_priority_steps_as_kombu(priority: object, step: int) -> None:
    assert Keyspace({}, 0).step_of(priority) == step


def test_queue_keys_and_pop_order() -> None:
    keys = Keyspace({}, 0)
    assert keys.queue_key("celery") == "celery"
    assert keys.queue_key("celery", 3) == "celery\x06\x163"
    assert keys.pop_order(["a", "b"])[:3] == ["a", "b", "a\x06\x163"]
    assert keys.queue_of("celery\x06\x169") == "celery"


def test_global_keyprefix_applies_everywhere() -> None:
    keys = Keyspace({"global_keyprefix": "p:", "sep": "|", "priority_steps": [0, 5]}, 2)
    assert keys.queue_key("q", 5) == "p:q|5"
    assert keys.queue_of("p:q|5") == "q"
    assert keys.unacked == "p:unacked" and keys.unacked_index == "p:unacked_index"
    assert keys.binding_key("celery") == "p:_kombu.binding.celery"
    assert keys.fanout_channel("celeryev", "task.sent") == "p:/2.celeryev/task.sent"
    assert keys.split_channel("p:/2.celeryev/task.sent") == ("celeryev", "task.sent")


def test_fanout_patterns() -> None:
    keys = Keyspace({}, 0)
    assert keys.fanout_patterns_for("celeryev", "worker.#") == ["/0.celeryev/worker.*"]
    assert keys.fanout_patterns_for("celery.pidbox", "") == ["/0.celery.pidbox"]
    assert keys.fanout_patterns_for("x", "#") == ["/0.x/*", "/0.x"]
    assert Keyspace({"fanout_prefix": False}, 0).fanout_channel("x") == "x"


def test_topic_regex_as_kombu() -> None:
    assert topic_regex("#") == "^.*?$"
    assert topic_regex("a.*.b_c") == r"^a\.[^\.]+\.b\_c$"


def test_priority_steps_must_start_at_zero() -> None:
    with pytest.raises(ImproperlyConfigured):
        Keyspace({"priority_steps": [1, 5]}, 0)


def test_url_forms() -> None:
    plain = parse_url("redis://:s3cret@host:6380/4")
    assert (plain.host, plain.port, plain.db, plain.password) == ("host", 6380, 4, "s3cret")
    assert "s3cret" not in describe(plain)
    secure = parse_url("rediss://host/0?ssl_cert_reqs=none")
    assert dict(secure.ssl or ())["ssl_cert_reqs"] == ssl.CERT_NONE
    assert dict(parse_url("rediss://host").ssl or ())["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    tls = parse_url("redis://host", use_ssl={"ssl_ca_certs": "/ca.pem"})
    assert dict(tls.ssl or ())["ssl_ca_certs"] == "/ca.pem"
    sock = parse_url("redis+socket:///tmp/redis.sock?virtual_host=3")
    assert (sock.path, sock.db) == ("/tmp/redis.sock", 3)
    sentinel = parse_url(
        "sentinel://:pw@s1:26379/1;sentinel://s2:26380/1", {"master_name": "mymaster"}
    )
    assert sentinel.sentinels == (("s1", 26379), ("s2", 26380))
    assert (sentinel.master_name, sentinel.db) == ("mymaster", 1)


def test_bad_urls_are_refused_clearly() -> None:
    with pytest.raises(ImproperlyConfigured, match="master_name"):
        parse_url("sentinel://s1:26379/0")
    with pytest.raises(ImproperlyConfigured, match="database must be a number"):
        parse_url("redis://host/zero")
    with pytest.raises(ImproperlyConfigured, match="ssl_cert_reqs"):
        parse_url("rediss://host/0?ssl_cert_reqs=sometimes")
