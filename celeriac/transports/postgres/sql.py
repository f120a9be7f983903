"""The PostgreSQL broker's schema and statements (``{s}`` is the quoted schema name).

The layout mirrors the SQLite broker's (``_sqlite_sql``): one ``messages`` table with a
partial index of ready rows in delivery order and one of leased rows by expiry, so the
claim and the lease sweep stay index seeks whatever the backlog. Rows are converted to and
from :class:`Message` by the SQLite module's helpers (same columns, same JSON text).
"""

from __future__ import annotations

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.messages (
    id BIGSERIAL PRIMARY KEY,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    body BYTEA NOT NULL,
    content_type TEXT NOT NULL,
    content_encoding TEXT NOT NULL,
    headers TEXT NOT NULL,
    properties TEXT NOT NULL,
    exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    visible_at DOUBLE PRECISION NOT NULL,
    claimed_by TEXT,
    claim_expires DOUBLE PRECISION,
    redelivered BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX IF NOT EXISTS messages_ready
    ON {s}.messages (queue, priority DESC, id) WHERE claimed_by IS NULL;
CREATE INDEX IF NOT EXISTS messages_leases
    ON {s}.messages (claim_expires) WHERE claimed_by IS NOT NULL;
CREATE TABLE IF NOT EXISTS {s}.queues (name TEXT PRIMARY KEY, created DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.bindings (
    exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    queue TEXT NOT NULL,
    PRIMARY KEY (exchange, routing_key, queue)
);
CREATE TABLE IF NOT EXISTS {s}.fanout (
    id BIGSERIAL PRIMARY KEY,
    exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    body BYTEA NOT NULL,
    content_type TEXT NOT NULL,
    content_encoding TEXT NOT NULL,
    headers TEXT NOT NULL,
    properties TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS fanout_created ON {s}.fanout (created);
"""

#: Serialises schema creation between processes (concurrent CREATE ... IF NOT EXISTS races).
SETUP_LOCK = "SELECT pg_advisory_xact_lock(hashtext('celeriac-broker-setup'))"
EXISTS = "SELECT to_regclass(%s) IS NOT NULL"

_COLUMNS = "id, queue, priority, body, content_type, content_encoding, headers, properties, "
_COLUMNS += "exchange, routing_key, redelivered"
_PAYLOAD = "queue, priority, body, content_type, content_encoding, headers, properties, "
_PAYLOAD += "exchange, routing_key"

INSERT = f"""INSERT INTO {{s}}.messages ({_PAYLOAD}, visible_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"""

#: The same insert, then one NOTIFY per distinct queue, as one statement (one round trip).
INSERT_NOTIFY = f"""WITH ins AS (
    INSERT INTO {{s}}.messages ({_PAYLOAD}, visible_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING queue)
    SELECT pg_notify(%s, queue) FROM ins"""

NOTIFY = "SELECT pg_notify(%s, q) FROM unnest(%s::text[]) AS q"

#: Many rows as one multi-row INSERT (one array per column, rows in array order), then one
#: NOTIFY per distinct queue: a bulk send is one statement, one round trip.
INSERT_MANY_NOTIFY = f"""WITH ins AS (
    INSERT INTO {{s}}.messages ({_PAYLOAD}, visible_at)
    SELECT {_PAYLOAD}, visible_at FROM unnest(
        %s::text[], %s::int[], %s::bytea[], %s::text[], %s::text[], %s::text[], %s::text[],
        %s::text[], %s::text[], %s::float8[])
        WITH ORDINALITY AS r({_PAYLOAD}, visible_at, n)
    ORDER BY n RETURNING queue)
SELECT pg_notify(%s, q) FROM (SELECT DISTINCT queue AS q FROM ins) AS x"""

# SKIP LOCKED: concurrent claimers pass over rows another transaction is taking instead
# of waiting for it, so N consumers claim N disjoint batches at once.
_RETURNED = ", ".join("m." + c for c in _COLUMNS.split(", "))
CLAIM = f"""WITH picked AS (
    SELECT id FROM {{s}}.messages
    WHERE queue = %s AND claimed_by IS NULL AND visible_at <= %s
    ORDER BY priority DESC, id LIMIT %s FOR UPDATE SKIP LOCKED)
UPDATE {{s}}.messages m SET claimed_by = %s, claim_expires = %s
    FROM picked WHERE m.id = picked.id RETURNING {_RETURNED}"""

#: The claim with this consumer's pending acknowledgements deleted in the same statement
#: (one round trip for both; the deleted rows are leased, so the claim never sees them).
ACK_AND_CLAIM = CLAIM.replace(
    "WITH picked AS (", "WITH acked AS (DELETE FROM {s}.messages WHERE id = ANY(%s)),\npicked AS ("
)

RECLAIM_EXPIRED = """UPDATE {s}.messages SET claimed_by = NULL, claim_expires = NULL,
    redelivered = TRUE WHERE id IN (SELECT id FROM {s}.messages
        WHERE claimed_by IS NOT NULL AND claim_expires <= %s FOR UPDATE SKIP LOCKED)
    RETURNING queue"""

#: When something may next become claimable: a delayed row of these queues, or a lease end.
NEXT_DUE = """SELECT LEAST(
    (SELECT MIN(visible_at) FROM {s}.messages WHERE queue = ANY(%s) AND claimed_by IS NULL),
    (SELECT MIN(claim_expires) FROM {s}.messages WHERE claimed_by IS NOT NULL))"""

DELETE_IDS = "DELETE FROM {s}.messages WHERE id = ANY(%s)"
UNCLAIM = """UPDATE {s}.messages SET claimed_by = NULL, claim_expires = NULL, redelivered = TRUE
    WHERE id = ANY(%s) AND claimed_by = %s RETURNING queue"""
EXTEND = "UPDATE {s}.messages SET claim_expires = %s WHERE id = ANY(%s) AND claimed_by = %s"
#: EXTEND that says which rows were still ours (ConfirmsLeases).
CONFIRM = """UPDATE {s}.messages SET claim_expires = %s WHERE id = ANY(%s) AND claimed_by = %s
    RETURNING id"""
DEFER = """UPDATE {s}.messages SET claimed_by = NULL, claim_expires = NULL, visible_at = %s
    WHERE id = %s AND claimed_by = %s"""
#: Move held rows to the end of their queues (new ids), in their order, then wake consumers.
REQUEUE_AT_END = f"""WITH moved AS (
    DELETE FROM {{s}}.messages WHERE id = ANY(%s) AND claimed_by = %s RETURNING *),
ins AS (
    INSERT INTO {{s}}.messages ({_PAYLOAD}, visible_at, redelivered)
    SELECT {_PAYLOAD}, %s, TRUE FROM moved ORDER BY id RETURNING queue)
SELECT pg_notify(%s, q) FROM (SELECT DISTINCT queue AS q FROM ins) AS x"""
PURGE = "DELETE FROM {s}.messages WHERE queue = %s AND claimed_by IS NULL"
SIZE = "SELECT COUNT(*) FROM {s}.messages WHERE queue = %s AND claimed_by IS NULL"

DECLARE_QUEUE = "INSERT INTO {s}.queues (name, created) VALUES (%s, %s) ON CONFLICT DO NOTHING"
BIND = """INSERT INTO {s}.bindings (exchange, routing_key, queue) VALUES (%s, %s, %s)
    ON CONFLICT DO NOTHING"""
BINDINGS = "SELECT routing_key, queue FROM {s}.bindings WHERE exchange = %s"

#: Fanout ids must become visible in id order (subscribers read "id > last seen"), so
#: publishers take turns for the few statements of one publish.
FANOUT_LOCK = "SELECT pg_advisory_xact_lock(hashtext(%s))"
FANOUT_INSERT = """INSERT INTO {s}.fanout (exchange, routing_key, body, content_type,
    content_encoding, headers, properties, created) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"""
FANOUT_PRUNE = "DELETE FROM {s}.fanout WHERE created < %s"
FANOUT_LAST_ID = "SELECT COALESCE(MAX(id), 0) FROM {s}.fanout"
FANOUT_SINCE = """SELECT id, routing_key, body, content_type, content_encoding, headers,
    properties FROM {s}.fanout WHERE id > %s AND exchange = %s ORDER BY id"""

#: NOTIFY payload that wakes every consumer (a fanout message, restored rows).
EVERYONE = "*"
FANOUT_PREFIX = "\x1ffanout:"


def render(statement: str, schema: str) -> str:
    """``statement`` with its schema placeholder filled (``schema`` already quoted)."""
    return statement.replace("{s}", schema)


__all__ = ["EVERYONE", "FANOUT_PREFIX", "SCHEMA", "render"]
