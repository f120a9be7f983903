"""The ``AckAndGet`` capability: acknowledge and refill in one round trip."""

from __future__ import annotations

import pytest

from celeriac.transports.capabilities import AckAndGet
from tests.conformance.conftest import kind_ids, kinds_where
from tests.conformance.test_transport import Broker, bodies, msg, take

CLAIMERS = kinds_where(lambda transport: isinstance(transport, AckAndGet))
on_claimers = pytest.mark.parametrize("broker", CLAIMERS, indirect=True)


def test_the_transports_that_claim_it() -> None:
    assert kind_ids(CLAIMERS) == {"sqlite", "redis", "redis-plain", "postgresql"}


@on_claimers
def test_ack_and_get_is_ack_then_a_non_blocking_get(broker: Broker) -> None:
    consumer = broker.connect()
    assert isinstance(consumer, AckAndGet)
    consumer.publish_many([(msg(f"m{i}"), "", "q") for i in range(4)])
    first = take(consumer, ["q"], 1)
    rest = consumer.ack_and_get(["q"], first, max_messages=5)
    assert sorted(bodies([*first, *rest])) == [f"m{i}".encode() for i in range(4)]
    assert consumer.ack_and_get(["q"], rest, max_messages=0) == []  # acknowledges only
    assert consumer.ack_and_get(["q"], [], max_messages=5) == []  # nothing waits: no block
    consumer.close()
    assert broker.connect().get(["q"], timeout=0.2) == []  # every one was acknowledged


@on_claimers
def test_acks_of_one_queue_go_with_a_claim_from_another(broker: Broker) -> None:
    consumer = broker.connect()
    assert isinstance(consumer, AckAndGet)
    consumer.publish_many([(msg("a"), "", "qa"), (msg("b"), "", "qb")])
    held = take(consumer, ["qa"], 1)
    assert bodies(consumer.ack_and_get(["qb"], held, max_messages=3)) == [b"b"]
    consumer.close()  # gives back what it holds unacknowledged: nothing from qa
    assert broker.connect().get(["qa"], timeout=0.2) == []
