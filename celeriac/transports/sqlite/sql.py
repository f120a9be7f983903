"""The SQLite broker's schema, statements and row <-> Message conversion.

Two partial indexes keep the hot statements cheap whatever the backlog: ``messages_ready``
holds only unleased rows in delivery order (the claim walks it from the front), and
``messages_leases`` holds only leased rows by expiry (the lease sweep is one index seek).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from celeriac.exceptions import EncodeError
from celeriac.protocol.message import Message
from celeriac.transports.base import Delivery

if TYPE_CHECKING:
    from celeriac.transports.base import Transport

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    body BLOB NOT NULL,
    content_type TEXT NOT NULL,
    content_encoding TEXT NOT NULL,
    headers TEXT NOT NULL,
    properties TEXT NOT NULL,
    exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    visible_at REAL NOT NULL,
    claimed_by TEXT,
    claim_expires REAL,
    redelivered INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_ready
    ON messages (queue, priority DESC, id) WHERE claimed_by IS NULL;
CREATE INDEX IF NOT EXISTS messages_leases
    ON messages (claim_expires) WHERE claimed_by IS NOT NULL;
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY, created REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bindings (
    exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    queue TEXT NOT NULL,
    PRIMARY KEY (exchange, routing_key, queue)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fanout (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    body BLOB NOT NULL,
    content_type TEXT NOT NULL,
    content_encoding TEXT NOT NULL,
    headers TEXT NOT NULL,
    properties TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS fanout_created ON fanout (created);
"""

# AUTOINCREMENT: ids are never reused, so a late ack of a stale delivery tag can never delete
# a newer message that happened to get the same id.
INSERT = """INSERT INTO messages (queue, priority, body, content_type, content_encoding, headers,
    properties, exchange, routing_key, visible_at) VALUES (?,?,?,?,?,?,?,?,?,?)"""

_COLUMNS = "id, queue, priority, body, content_type, content_encoding, headers, properties, "
_COLUMNS += "exchange, routing_key, redelivered"

CLAIM = f"""UPDATE messages SET claimed_by = ?, claim_expires = ? WHERE id IN (
    SELECT id FROM messages WHERE queue = ? AND claimed_by IS NULL AND visible_at <= ?
    ORDER BY priority DESC, id LIMIT ?) RETURNING {_COLUMNS}"""

RECLAIM_EXPIRED = """UPDATE messages SET claimed_by = NULL, claim_expires = NULL, redelivered = 1
    WHERE claimed_by IS NOT NULL AND claim_expires <= ?"""

READY_PROBE = """SELECT EXISTS (SELECT 1 FROM messages WHERE queue IN ({marks})
        AND claimed_by IS NULL AND visible_at <= ?)
    OR EXISTS (SELECT 1 FROM messages WHERE claimed_by IS NOT NULL AND claim_expires <= ?)"""

DELETE_IDS = "DELETE FROM messages WHERE id IN ({marks})"
DELETE_HELD = "DELETE FROM messages WHERE id = ? AND claimed_by = ?"
UNCLAIM = """UPDATE messages SET claimed_by = NULL, claim_expires = NULL, redelivered = 1
    WHERE id = ? AND claimed_by = ?"""
EXTEND = "UPDATE messages SET claim_expires = ? WHERE id = ? AND claimed_by = ?"
DEFER = """UPDATE messages SET claimed_by = NULL, claim_expires = NULL, visible_at = ?
    WHERE id = ? AND claimed_by = ?"""
REQUEUE_AT_END = """INSERT INTO messages (queue, priority, body, content_type, content_encoding,
    headers, properties, exchange, routing_key, visible_at, redelivered)
    SELECT queue, priority, body, content_type, content_encoding, headers, properties,
    exchange, routing_key, ?, 1 FROM messages WHERE id = ? AND claimed_by = ?"""
PURGE = "DELETE FROM messages WHERE queue = ? AND claimed_by IS NULL"
SIZE = "SELECT COUNT(*) FROM messages WHERE queue = ? AND claimed_by IS NULL"

DECLARE_QUEUE = "INSERT OR IGNORE INTO queues (name, created) VALUES (?, ?)"
BIND = "INSERT OR IGNORE INTO bindings (exchange, routing_key, queue) VALUES (?, ?, ?)"
BINDINGS = "SELECT routing_key, queue FROM bindings WHERE exchange = ?"

FANOUT_INSERT = """INSERT INTO fanout (exchange, routing_key, body, content_type, content_encoding,
    headers, properties, created) VALUES (?,?,?,?,?,?,?,?)"""
FANOUT_PRUNE = "DELETE FROM fanout WHERE created < ?"
FANOUT_LAST_ID = "SELECT COALESCE(MAX(id), 0) FROM fanout"
FANOUT_SINCE = """SELECT id, routing_key, body, content_type, content_encoding, headers, properties
    FROM fanout WHERE id > ? AND exchange = ? ORDER BY id"""

_EMPTY = "{}"


def _dumps(value: Mapping[str, Any], what: str) -> str:
    if not value:
        return _EMPTY
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise EncodeError(
            f"Message {what} must be JSON-serialisable to travel through the SQLite broker: {exc}"
        ) from exc


def _loads(text: str) -> dict[str, Any]:
    if text == _EMPTY:
        return {}
    value: dict[str, Any] = json.loads(text)
    return value


def encode(message: Message) -> tuple[int, bytes, str, str, str, str]:
    """``(priority, body, content_type, content_encoding, headers, properties)`` columns."""
    return (
        message.priority,
        bytes(message.body),
        message.content_type,
        message.content_encoding,
        _dumps(message.headers, "headers"),
        _dumps(message.properties, "properties"),
    )


def order_key(row: tuple[Any, ...]) -> tuple[int, int]:
    """Delivery order of claimed rows: priority descending, then id."""
    return (-row[2], row[0])


def delivery(row: tuple[Any, ...], transport: Transport) -> Delivery:
    """A Delivery from a CLAIM row; the delivery tag is the row id."""
    message = Message(
        body=row[3],
        content_type=row[4],
        content_encoding=row[5],
        headers=_loads(row[6]),
        properties=_loads(row[7]),
    )
    return Delivery(
        message=message,
        queue=row[1],
        exchange=row[8],
        routing_key=row[9],
        delivery_tag=str(row[0]),
        redelivered=bool(row[10]),
        transport=transport,
    )


def fanout_message(row: tuple[Any, ...]) -> Message:
    """A Message from a FANOUT_SINCE row."""
    return Message(
        body=row[2],
        content_type=row[3],
        content_encoding=row[4],
        headers=_loads(row[5]),
        properties=_loads(row[6]),
    )
