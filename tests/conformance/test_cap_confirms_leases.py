"""The ``ConfirmsLeases`` capability: a consumer asks which of its leased deliveries are still
its own (renewing those); one whose lease ran out and that another consumer took is not."""

from __future__ import annotations

import pytest

from celeriac.transports.capabilities import ConfirmsLeases, Leases
from tests.conformance.conftest import kind_ids, kinds_where
from tests.conformance.test_transport import Broker, msg

CLAIMERS = kinds_where(lambda transport: isinstance(transport, ConfirmsLeases))
# Leased brokers: a lease runs out by time. RabbitMQ's "lease" is its connection (a closed
# one's deliveries are requeued): tests/integration/test_amqp_transport.py.
LEASED = kinds_where(lambda t: isinstance(t, ConfirmsLeases) and isinstance(t, Leases))
on_claimers = pytest.mark.parametrize("broker", LEASED, indirect=True)


def test_the_transports_that_claim_it() -> None:
    assert kind_ids(CLAIMERS) == {"sqlite", "postgresql", "redis", "redis-plain", "amqp"}
    assert kind_ids(LEASED) == {"sqlite", "postgresql", "redis", "redis-plain"}


@on_claimers
def test_a_held_delivery_is_confirmed_and_renewed(broker: Broker) -> None:
    consumer = broker.connect(visibility_timeout=0.5)
    assert isinstance(consumer, ConfirmsLeases)
    consumer.publish(msg("x"), routing_key="q")
    held = consumer.get(["q"], timeout=5)
    assert consumer.confirm(held) == held
    consumer.ack(held)
    assert consumer.confirm([]) == []


@on_claimers
def test_a_delivery_taken_by_another_consumer_is_not_confirmed(broker: Broker) -> None:
    stalled = broker.connect(visibility_timeout=0.2)
    assert isinstance(stalled, ConfirmsLeases)
    stalled.publish(msg("x"), routing_key="q")
    held = stalled.get(["q"], timeout=5)
    # On Redis the consumer that sweeps judges a lease by its own visibility_timeout (kombu).
    other = broker.connect(visibility_timeout=0.2, unacked_restore_interval=0.0)
    assert isinstance(other, ConfirmsLeases)
    taken = other.get(["q"], timeout=10)  # once the first lease runs out
    assert [d.message.body for d in taken] == [d.message.body for d in held]
    assert stalled.confirm(held) == []
    assert other.confirm(taken) == taken
    other.ack(taken)
