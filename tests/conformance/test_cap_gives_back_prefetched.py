"""The ``GivesBackPrefetched`` capability: what the broker pushed ahead goes back on demand."""

from __future__ import annotations

import pytest

from celeriac.transports.capabilities import GivesBackPrefetched
from tests.conformance.conftest import kind_ids, kinds_where
from tests.conformance.test_transport import Broker, bodies, msg, take

CLAIMERS = kinds_where(lambda transport: isinstance(transport, GivesBackPrefetched))
on_claimers = pytest.mark.parametrize("broker", CLAIMERS, indirect=True)


def test_the_transports_that_claim_it() -> None:
    assert kind_ids(CLAIMERS) == {"amqp"}


@on_claimers
def test_release_prefetched_loses_and_repeats_nothing(broker: Broker) -> None:
    # A prefork child calls it (from another thread) while its task runs long: what the
    # broker pushed ahead goes back to the queue, what get returned stays with its taker.
    first, second = broker.connect(), broker.connect()
    assert isinstance(first, GivesBackPrefetched)
    first.qos(4)
    first.publish_many([(msg(f"m{i}"), "", "q") for i in range(5)])
    [running] = take(first, ["q"], 1)
    given_back = first.release_prefetched()
    assert given_back is not None
    assert given_back == 3  # prefetch 4, one of them returned by get
    rest = take(second, ["q"], 4)
    assert sorted(bodies([running, *rest])) == [f"m{i}".encode() for i in range(5)]
    first.ack([running])
    second.ack(rest)
    first.publish(msg("later"), routing_key="q")
    assert bodies(take(first, ["q"], 1)) == [b"later"]  # it takes messages again
