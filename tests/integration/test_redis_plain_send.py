"""A plain ``delay()`` on Redis writes its envelope from a stencil (``PublishesEnvelopes``):
the bytes in the list are those of the general path (here forced with ``headers={}``), for
the same ids; a publish signal's receiver sends it the general way."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from celeriac import Celery, signals
from celeriac.app import producer as producer_module
from celeriac.transports.redis import transport as transport_module
from tests.servers import REDIS_BROKER_DB, redis_namespace


@pytest.fixture
def app() -> Iterator[Celery]:
    prefix = f"plain-{uuid.uuid4().hex[:8]}:"
    url = redis_namespace(REDIS_BROKER_DB, "plain-*")
    app = Celery("t", broker=url, backend="cache+memory://")
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    yield app
    app.close()


def _sent(app: Celery, send: Any, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """What ``send()`` LPUSHed, with ids from a fixed sequence."""
    ids = (f"00000000-0000-4000-8000-{n:012d}" for n in itertools.count())
    for module in (producer_module, transport_module):  # task id first, delivery tag next
        monkeypatch.setattr(module, "uuid4", lambda: next(ids))
    prefix = app.conf.broker_transport_options["global_keyprefix"]
    client = redis.Redis.from_url(app.conf.broker_url)
    send()
    raw = client.rpop(prefix + "celery")
    assert raw is not None
    return bytes(raw)


@pytest.mark.parametrize(
    "args, kwargs",
    [((1, "a"), {}), ([1, 2], {"x": [1.5, None]}), (("é\x00\"'",), {"k\n": {"n": 2**70}})],
)
def test_a_plain_delay_writes_the_general_paths_bytes(
    app: Celery, monkeypatch: pytest.MonkeyPatch, args: Any, kwargs: dict[str, Any]
) -> None:
    @app.task(name="t.add")
    def add(*a: Any, **k: Any) -> None: ...

    plain = _sent(app, lambda: add.apply_async(args, kwargs), monkeypatch)
    general = _sent(app, lambda: add.apply_async(args, kwargs, headers={}), monkeypatch)
    assert plain == general
    assert app.producer.settings().envelopes is True  # the plain path did run


def test_a_publish_signal_receiver_gets_the_plain_send_too(app: Celery) -> None:
    @app.task(name="t.noop")
    def noop() -> None: ...

    seen: list[str] = []

    def receiver(headers: dict[str, Any], **_: Any) -> None:
        seen.append(headers["id"])

    signals.before_task_publish.connect(receiver)
    try:
        result = noop.delay()
    finally:
        signals.before_task_publish.disconnect(receiver)
    assert seen == [result.id]


def test_a_bulk_send_writes_the_general_paths_bytes_in_order(
    app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    @app.task(name="t.add")
    def add(*a: Any, **k: Any) -> None: ...

    prefix = app.conf.broker_transport_options["global_keyprefix"]
    client = redis.Redis.from_url(app.conf.broker_url)
    lists = []
    for extra in ({}, {"headers": {}}):  # plain (stencils), then the general path
        ids = (f"00000000-0000-4000-8000-{n:012d}" for n in itertools.count())
        for module in (producer_module, transport_module):
            monkeypatch.setattr(module, "uuid4", ids.__next__)
        # A plain run, a send with an option in the middle, a plain run again.
        sigs = [add.s(i) for i in range(3)] + [add.s(9).set(priority=3)]
        sigs += [add.s(i, k=i) for i in range(3)]
        app.send_many(sigs, **extra)
        lists.append(client.lrange(prefix + "celery", 0, -1))
        lists[-1] += client.lrange(prefix + "celery\x06\x163", 0, -1)
        client.delete(prefix + "celery", prefix + "celery\x06\x163")
    plain, general = (_canonical(found) for found in lists)
    assert len(plain) == 7 and plain == general


def _canonical(envelopes: list[bytes]) -> list[bytes]:
    """The envelopes with their delivery tags blanked and task ids numbered by first
    appearance (a batch takes delivery tags when it publishes, a stencil when it fills)."""
    names: dict[bytes, bytes] = {}
    out = []
    for raw in envelopes:
        raw = re.sub(rb'"delivery_tag": "[^"]*"', b'"delivery_tag": ""', raw)
        out.append(
            re.sub(
                rb"00000000-0000-4000-8000-\d{12}",
                lambda m: names.setdefault(m[0], b"id%d" % len(names)),
                raw,
            )
        )
    return out
