"""The SQLite broker shared by several real processes on one file."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import warnings
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from celeriac.exceptions import EncodeError
from celeriac.protocol.message import Message
from celeriac.transports.sqlite.transport import SQLiteTransport

SPAWN = multiprocessing.get_context("spawn")


def message(body: str) -> Message:
    return Message(body.encode(), "application/json", "utf-8", {"id": body}, {"priority": 0})


def _drain(url: str, start: Barrier, out: Any) -> None:
    """Child: wait until every process is ready, then claim and ack until the queue is empty."""
    transport = SQLiteTransport(url)
    transport.open()
    got: list[str] = []
    start.wait(60)
    while batch := transport.get(["q"], max_messages=16, timeout=0.3):
        got.extend(d.message.body.decode() for d in batch)
        transport.ack(batch)
    transport.close()
    out.put(got)


def _claim_and_hang(url: str, out: Any) -> None:
    """Child: claim one message with a short lease, report it, then hang until killed."""
    transport = SQLiteTransport(url, {"visibility_timeout": 0.5})
    [delivery] = transport.get(["q"], timeout=30)
    out.put((delivery.message.body.decode(), time.time()))
    threading.Event().wait(120)


@pytest.mark.slow
def test_processes_drain_one_file_exactly_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/broker.sqlite"
    total = 2000
    producer = SQLiteTransport(url)
    producer.publish_many([(message(f"m{i}"), "", "q") for i in range(total)])
    start, out = SPAWN.Barrier(4), SPAWN.Queue()
    workers = [SPAWN.Process(target=_drain, args=(url, start, out)) for _ in range(3)]
    for worker in workers:
        worker.start()
    start.wait(50)
    parts = [out.get(timeout=50) for _ in workers]
    print("per process:", [len(part) for part in parts])
    for worker in workers:
        worker.join(10)
        assert worker.exitcode == 0
    everything = [body for part in parts for body in part]
    assert len(everything) == total
    assert set(everything) == {f"m{i}" for i in range(total)}
    assert producer.size("q") == 0
    producer.close()


@pytest.mark.slow
def test_killed_consumer_message_returns_after_visibility_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/broker.sqlite"
    producer = SQLiteTransport(url, {"visibility_timeout": 0.5})
    producer.publish(message("work"), routing_key="q")
    out = SPAWN.Queue()
    child = SPAWN.Process(target=_claim_and_hang, args=(url, out))
    child.start()
    body, claimed_at = out.get(timeout=50)
    child.kill()
    child.join(10)
    assert body == "work"
    if time.time() - claimed_at < 0.4:
        assert producer.get(["q"]) == []  # the lease still holds
    [again] = producer.get(["q"], timeout=20)
    assert again.message.body == b"work"
    assert again.redelivered is True
    assert time.time() >= claimed_at + 0.5
    again.ack()
    producer.close()


def test_extend_renews_the_lease(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/broker.sqlite"
    holder = SQLiteTransport(url, {"visibility_timeout": 0.3})
    other = SQLiteTransport(url, {"visibility_timeout": 0.3})
    holder.publish(message("x"), routing_key="q")
    held = holder.get(["q"], timeout=5)
    renewals_until = time.monotonic() + 0.9
    while time.monotonic() < renewals_until:
        holder.extend(held)
        assert other.get(["q"], timeout=0.05) == []
    holder.ack(held)
    assert other.get(["q"], timeout=0.4) == []


def test_header_that_is_not_json_raises_encode_error(tmp_path: Path) -> None:
    transport = SQLiteTransport(f"sqlite:///{tmp_path}/broker.sqlite")
    bad = Message(b"x", "application/json", "utf-8", {"when": object()})
    with pytest.raises(EncodeError, match="headers"):
        transport.publish(bad, routing_key="q")
    with pytest.raises(EncodeError):
        transport.publish_many([(message("ok"), "", "q"), (bad, "", "q")])
    assert transport.size("q") == 0  # the batch is all or nothing
    transport.close()


def test_wal_mode_and_pragmas(tmp_path: Path) -> None:
    transport = SQLiteTransport(f"sqlite:///{tmp_path}/broker.sqlite", {"busy_timeout": 7})
    transport.open()
    assert transport._conn is not None
    assert transport._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert transport.busy_timeout == 7.0  # applied by the transport's own retry loop
    assert transport._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    transport.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    transport = SQLiteTransport(f"sqlite:///{tmp_path}/broker.sqlite")
    transport.publish(message("before-fork"), routing_key="q")
    parent_consumer = transport.consumer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, 3.12+
        pid = os.fork()
    if pid == 0:  # child: use the inherited object; it must reconnect and not reuse the token
        code = 1
        try:
            transport.publish(message("from-child"), routing_key="q")
            code = 0 if transport.consumer != parent_consumer else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    got = transport.get(["q"], max_messages=5, timeout=5)
    assert [d.message.body for d in got] == [b"before-fork", b"from-child"]
    transport.close()
