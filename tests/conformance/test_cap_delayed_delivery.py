"""Delayed delivery: ``publish(not_before=...)`` keeps the message invisible until then.

A behaviour flag (``Transport.supports_delayed_delivery``) rather than a Protocol: every
transport accepts ``not_before``, and ``isinstance`` cannot tell a flag's value.
"""

from __future__ import annotations

import time

import pytest

from celeriac.transports.base import Transport
from tests.conformance.conftest import kind_ids, kinds_where
from tests.conformance.test_transport import bodies, msg

CLAIMERS = kinds_where(lambda transport: transport.supports_delayed_delivery)
on_claimers = pytest.mark.parametrize("broker", CLAIMERS, indirect=True)


def test_the_transports_that_claim_it() -> None:
    assert kind_ids(CLAIMERS) == {"memory", "sqlite", "postgresql"}


@on_claimers
def test_not_before_keeps_the_message_invisible(transport: Transport) -> None:
    due = time.time() + 0.4
    transport.publish(msg("later"), routing_key="q", not_before=due)
    transport.publish(msg("now"), routing_key="q")
    assert bodies(transport.get(["q"], max_messages=5)) == [b"now"]
    [later] = transport.get(["q"], timeout=10)
    assert later.message.body == b"later"
    assert time.time() >= due
