"""The SQLAlchemy store's chord join: an atomic counter row per chord (no ``chord_unlock``).

``celeriac_chord`` holds one row per chord: its size, how many header tasks are in, and until
when a worker holds the claim to publish the body. ``celeriac_chord_part`` holds each header
task's result once (keyed by task id and group index, so a retried or redelivered task counts
once). A header task's report is one transaction that first locks the chord's row
(``SELECT ... FOR UPDATE``): the reports of one chord are serialized, whichever process or
machine makes them, while different chords never wait on each other. A worker killed after
claiming loses the claim when it expires, and the redelivered header task (``acks_late``)
completes the join. These are not Celery tables (Celery's database backend joins with
``chord_unlock``); they are created on first use, in the task table's schema, and Celery
ignores them.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

CHORD_TABLE = "celeriac_chord"
PART_TABLE = "celeriac_chord_part"

#: A header task's value: MySQL's BLOB stops at 64 KiB, so there it is a LONGBLOB.
_VALUE = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def chord_tables(schema: str | None) -> tuple[sa.MetaData, sa.Table, sa.Table]:
    """The two tables (in their own metadata: created only when a chord is first joined)."""
    metadata = sa.MetaData()
    chords = sa.Table(
        CHORD_TABLE,
        metadata,
        sa.Column("group_id", sa.String(155), primary_key=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("done", sa.Integer, nullable=False, default=0),
        sa.Column("claimed_until", sa.Double, nullable=False, default=0.0),
        sa.Column("finished", sa.Boolean, nullable=False, default=False),
        sa.Column("created", sa.Double, nullable=False, index=True),
        schema=schema,
    )
    parts = sa.Table(
        PART_TABLE,
        metadata,
        sa.Column("group_id", sa.String(155), primary_key=True),
        sa.Column("member", sa.String(200), primary_key=True),
        sa.Column("group_index", sa.Double, nullable=False),
        sa.Column("task_id", sa.String(155), nullable=False),
        sa.Column("state", sa.String(50), nullable=False),
        sa.Column("result", _VALUE, nullable=True),
        schema=schema,
    )
    return metadata, chords, parts


class ChordJoin:
    """The statements of the join over one pair of tables; each method runs inside the
    caller's transaction (``conn``)."""

    def __init__(self, schema: str | None) -> None:
        self.metadata, self.chords, self.parts = chord_tables(schema)

    def create(self, conn: sa.Connection) -> None:
        self.metadata.create_all(conn, checkfirst=True)

    def set_size(self, conn: sa.Connection, group_id: str, size: int) -> None:
        """Start (or start over) the chord ``group_id`` with ``size`` header tasks."""
        conn.execute(sa.delete(self.parts).where(self.parts.c.group_id == group_id))
        conn.execute(sa.delete(self.chords).where(self.chords.c.group_id == group_id))
        conn.execute(
            sa.insert(self.chords).values(
                group_id=group_id,
                size=size,
                done=0,
                claimed_until=0.0,
                finished=False,
                created=time.time(),
            )
        )

    def part_return(
        self,
        conn: sa.Connection,
        group_id: str,
        task_id: str,
        group_index: int | None,
        state: str,
        data: bytes,
        claim_seconds: float,
    ) -> list[tuple[str, str, bytes]] | None:
        """Record one header task; the parts, in order, for the one caller that claims the
        body (None for every other caller and while parts are missing)."""
        chords, parts = self.chords, self.parts
        locked = (
            sa.select(chords.c.size, chords.c.done, chords.c.claimed_until, chords.c.finished)
            .where(chords.c.group_id == group_id)
            .with_for_update()
        )
        row = conn.execute(locked).first()
        if row is None or row.finished:
            return None  # unknown here, or its body was published already
        member = f"{task_id}:{group_index}"
        known = sa.select(parts.c.member).where(
            parts.c.group_id == group_id, parts.c.member == member
        )
        done = int(row.done)
        if conn.execute(known).first() is None:  # the row lock makes check-then-insert safe
            index = float("inf") if group_index is None else float(group_index)
            conn.execute(
                sa.insert(parts).values(
                    group_id=group_id,
                    member=member,
                    group_index=min(index, 1e300),
                    task_id=task_id,
                    state=state,
                    result=data,
                )
            )
            done += 1
            conn.execute(sa.update(chords).where(chords.c.group_id == group_id).values(done=done))
        now = time.time()
        if done < int(row.size) or float(row.claimed_until) >= now:
            return None
        conn.execute(
            sa.update(chords)
            .where(chords.c.group_id == group_id)
            .values(claimed_until=now + claim_seconds)
        )
        query = (
            sa.select(parts.c.task_id, parts.c.state, parts.c.result)
            .where(parts.c.group_id == group_id)
            .order_by(parts.c.group_index)
        )
        return [(str(r[0]), str(r[1]), bytes(r[2])) for r in conn.execute(query)]

    def done(self, conn: sa.Connection, group_id: str) -> None:
        """The body is out: drop the parts, keep the row as finished (late copies do nothing)."""
        conn.execute(sa.delete(self.parts).where(self.parts.c.group_id == group_id))
        conn.execute(
            sa.update(self.chords).where(self.chords.c.group_id == group_id).values(finished=True)
        )

    def grow(self, conn: sa.Connection, group_id: str) -> None:
        """The chord has one header task more."""
        chords = self.chords
        conn.execute(
            sa.update(chords).where(chords.c.group_id == group_id).values(size=chords.c.size + 1)
        )

    def cleanup(self, conn: sa.Connection, older_than: float) -> int:
        """Forget chords started before ``older_than`` (a UNIX time); nothing when no chord
        was ever joined here (the tables do not exist)."""
        if not sa.inspect(conn).has_table(CHORD_TABLE, schema=self.chords.schema):
            return 0
        old = sa.select(self.chords.c.group_id).where(self.chords.c.created < older_than)
        ids = [r[0] for r in conn.execute(old)]
        if not ids:
            return 0
        conn.execute(sa.delete(self.parts).where(self.parts.c.group_id.in_(ids)))
        removed = conn.execute(sa.delete(self.chords).where(self.chords.c.group_id.in_(ids)))
        return int(removed.rowcount)


def retryable(exc: BaseException) -> bool:
    """A deadlock or serialization failure the database asks the client to retry."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code in ("40001", "40P01"):  # PostgreSQL: serialization failure, deadlock
        return True
    args: tuple[object, ...] = tuple(getattr(exc.orig, "args", ()))
    return bool(args) and args[0] in (1213, 1205)  # MySQL: deadlock, lock wait timeout


__all__ = ["CHORD_TABLE", "PART_TABLE", "ChordJoin", "chord_tables", "retryable"]
