"""The ``Leases`` capability: an unacknowledged delivery returns after ``visibility_timeout``
unless its holder renews the lease with ``extend``."""

from __future__ import annotations

import pytest

from celeriac.transports.capabilities import Leases
from tests.conformance.conftest import kind_ids, kinds_where
from tests.conformance.test_transport import Broker, msg

CLAIMERS = kinds_where(lambda transport: isinstance(transport, Leases))
on_claimers = pytest.mark.parametrize("broker", CLAIMERS, indirect=True)


def test_the_transports_that_claim_it() -> None:
    assert kind_ids(CLAIMERS) == {"sqlite", "postgresql", "redis", "redis-plain"}


@on_claimers
def test_extend_keeps_the_message_held(broker: Broker) -> None:
    consumer = broker.connect()
    assert isinstance(consumer, Leases)
    consumer.publish(msg("x"), routing_key="q")
    held = consumer.get(["q"], timeout=5)
    consumer.extend(held)
    assert broker.connect().get(["q"], timeout=0.1) == []
    consumer.ack(held)
    consumer.close()
    assert broker.connect().get(["q"], timeout=0.1) == []
