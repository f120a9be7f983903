"""The ``Defers`` capability: a delivered message parked in the broker until a later time."""

from __future__ import annotations

import time

import pytest

from celeriac.transports.capabilities import Defers
from tests.conformance.conftest import kind_ids, kinds_where
from tests.conformance.test_transport import Broker, msg, take

CLAIMERS = kinds_where(lambda transport: isinstance(transport, Defers))
on_claimers = pytest.mark.parametrize("broker", CLAIMERS, indirect=True)


def test_the_transports_that_claim_it() -> None:
    assert kind_ids(CLAIMERS) == {"memory", "sqlite", "postgresql", "redis", "redis-plain"}


@on_claimers
def test_defer_parks_a_delivered_message_until_due(broker: Broker) -> None:
    first = broker.connect()
    assert isinstance(first, Defers)
    first.publish(msg("eta", task="t"), routing_key="q")
    [delivery] = take(first, ["q"], 1)
    due = time.time() + 0.4
    first.defer(delivery, due)
    first.close()  # settled: closing must not bring it back early
    second = broker.connect()
    assert second.get(["q"], max_messages=5) == []
    [again] = second.get(["q"], timeout=10)
    assert time.time() >= due
    assert again.message.body == b"eta"
    assert again.message.headers == {"task": "t"}
    second.ack([again])
    assert second.get(["q"], timeout=0.2) == []
