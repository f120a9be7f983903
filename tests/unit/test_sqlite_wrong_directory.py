"""A client alone with a broker file it created says so (the wrong-directory trap)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from celeriac.protocol.message import Message
from celeriac.transports.sqlite.transport import SQLiteTransport

LOGGER = "celeriac.transports.sqlite"


def _send(transport: SQLiteTransport) -> None:
    transport.publish_many([(Message(b"{}", "application/json", "utf-8"), "", "q")])


def test_the_first_send_into_a_file_this_client_created_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    transport = SQLiteTransport(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    try:
        _send(transport)
        _send(transport)
    finally:
        transport.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1
    assert str(tmp_path / "fresh.sqlite") in warnings[0] and "broker_url=" in warnings[0]


def test_no_warning_for_a_file_that_existed_or_a_worker_that_consumed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    worker = SQLiteTransport(url)
    client = SQLiteTransport(url)
    try:
        worker.get(["q"])  # a worker consumes first: it created the file, and is not alone
        _send(worker)
        _send(client)  # the file existed when the client opened it
    finally:
        worker.close()
        client.close()
    assert [r for r in caplog.records if r.name == LOGGER] == []
