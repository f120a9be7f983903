"""The ``Fanout`` capability: broadcast without storage (events, remote control)."""

from __future__ import annotations

import threading
import time

import pytest

from celeriac.transports.base import FanoutSubscription
from celeriac.transports.capabilities import Fanout
from tests.conformance.conftest import kind_ids, kinds_where
from tests.conformance.test_transport import Broker, msg

CLAIMERS = kinds_where(lambda transport: isinstance(transport, Fanout))
on_claimers = pytest.mark.parametrize("broker", CLAIMERS, indirect=True)


def test_the_transports_that_claim_it() -> None:
    expected = {"memory", "sqlite", "postgresql", "redis", "redis-plain", "amqp"}
    assert kind_ids(CLAIMERS) == expected


def _pair(broker: Broker) -> tuple[Fanout, Fanout]:
    subscriber, producer = broker.connect(), broker.connect()
    assert isinstance(subscriber, Fanout) and isinstance(producer, Fanout)
    return subscriber, producer


@on_claimers
def test_fanout_publish_and_subscribe(broker: Broker) -> None:
    subscriber, producer = _pair(broker)
    everything = subscriber.fanout_subscribe("celeryev")
    tasks_only = subscriber.fanout_subscribe("celeryev", "task.#")
    elsewhere = subscriber.fanout_subscribe("other")
    producer.fanout_publish("celeryev", msg("hb"), routing_key="worker.heartbeat")
    producer.fanout_publish("celeryev", msg("sent"), routing_key="task.sent")
    assert _collect(everything, 2) == [b"hb", b"sent"]
    assert _collect(tasks_only, 1) == [b"sent"]
    assert elsewhere.get(timeout=0.1) == []
    late = subscriber.fanout_subscribe("celeryev")
    assert late.get(timeout=0.1) == []
    for subscription in (everything, tasks_only, elsewhere, late):
        subscription.close()


@on_claimers
def test_fanout_subscriber_wakes_on_publish(broker: Broker) -> None:
    subscriber, producer = _pair(broker)
    subscription = subscriber.fanout_subscribe("pidbox", "")
    waiting = threading.Event()
    received: list[bytes] = []

    def listen() -> None:
        waiting.set()
        received.extend(m.body for m in subscription.get(timeout=20))

    thread = threading.Thread(target=listen)
    thread.start()
    assert waiting.wait(5)
    producer.fanout_publish("pidbox", msg("ping"))
    thread.join(20)
    assert received == [b"ping"]
    subscription.close()


def _collect(subscription: FanoutSubscription, count: int) -> list[bytes]:
    deadline = time.monotonic() + 10
    got: list[bytes] = []
    while len(got) < count and time.monotonic() < deadline:
        got += [m.body for m in subscription.get(timeout=0.5)]
    return got
