"""``EventReceiver`` outlives a lost broker connection (the monitor and ``celeriac events``)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from celeriac.events import receiver as receiver_module
from celeriac.events.dispatcher import EventDispatcher
from celeriac.events.receiver import EventReceiver
from celeriac.protocol.message import Message
from celeriac.transports.memory import MemoryTransport


def test_a_failed_read_is_logged_once_and_capture_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(receiver_module, "RETRY", 0.01)
    transport = MemoryTransport()
    seen: list[dict[str, Any]] = []
    receiver = EventReceiver(transport, handlers={"*": seen.append})
    subscription = receiver.subscribe()
    real_get = subscription.get
    failures = [ConnectionError("connection lost"), ConnectionError("still down")]

    def flaky_get(timeout: float | None = None) -> list[Message]:
        if failures:
            raise failures.pop(0)
        return real_get(timeout)

    monkeypatch.setattr(subscription, "get", flaky_get)
    EventDispatcher(transport, "w@host").send("worker-heartbeat", active=0)
    with caplog.at_level(logging.DEBUG, logger="celeriac.events"):
        receiver.capture(limit=1, timeout=5, wakeup=False)
    assert [event["type"] for event in seen] == ["worker-heartbeat"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # One warning for the outage (the second failure is a debug line), one when it is back.
    assert len(warnings) == 2, warnings
    assert "connection lost" in warnings[0] and warnings[1] == "Reading events again"
    receiver.close()
