"""``app.control`` when the broker cannot be reached: an error that names the broker."""

from __future__ import annotations

import socket

import pytest

from celeriac import Celery
from celeriac.exceptions import OperationalError


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("reply", [True, False])
def test_an_unreachable_broker_is_named_with_its_password_masked(reply: bool) -> None:
    pytest.importorskip("amqp")
    url = f"amqp://guest:s3cret-pw@127.0.0.1:{_closed_port()}//"
    app = Celery("t", broker=url, set_as_current=False)
    app.conf.broker_connection_retry_on_startup = False
    app.conf.broker_connection_max_retries = 0
    # Before: the reply case failed with UnboundLocalError ('ticket'), the other with a bare
    # ConnectionRefusedError that did not say where.
    with pytest.raises(OperationalError) as raised:
        app.control.broadcast("ping", reply=reply, timeout=0.1)
    message = str(raised.value)
    assert f"127.0.0.1:{url.rsplit(':', 1)[1][:-2]}" in message and "s3cret-pw" not in message
    assert "Check broker_url" in message
    app.close()
