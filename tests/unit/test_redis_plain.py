"""PlainWire (``redis_lean_resp = False``) without a server: a reply lost with the connection
reaches the ``send`` callback, as on the lean path, so the pop script's record is retried."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from celeriac.drivers.redis.plain import PlainWire


class LostConnection(redis.Redis):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(args)
        raise redis.ConnectionError("Connection closed by server.")


def test_send_hands_a_lost_connection_to_the_callback() -> None:
    client = LostConnection()
    got: list[Any] = []
    PlainWire().send(client, [("EVALSHA", "f" * 40, 0)], got.append)
    assert client.sent == [("EVALSHA", "f" * 40, 0)]
    [lost] = got
    assert isinstance(lost, redis.ConnectionError)


def test_execute_raises_a_lost_connection() -> None:
    with pytest.raises(redis.ConnectionError):
        PlainWire().execute(LostConnection(), [("GET", "k")])
