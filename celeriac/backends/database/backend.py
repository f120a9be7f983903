"""The SQLAlchemy result backend: ``db+postgresql://``, ``db+mysql+pymysql://`` and friends.

Same tables as Celery 5.7's database backend (``database_models``), so a Celery client reads
celeriac's results and the reverse. A store is one statement where the database has an upsert
with a condition (PostgreSQL, SQLite: ``ON CONFLICT ... DO UPDATE ... WHERE status <>
'SUCCESS'``, the write guard); elsewhere (MySQL/MariaDB) a guarded UPDATE, then an INSERT if
the row did not exist. SQLAlchemy is an extra: backends/schemes.py imports this module when a
``db+`` URL is first used.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.pool import NullPool

from celeriac import states
from celeriac.backends.base import ResultBackend
from celeriac.backends.capabilities import ChordParts
from celeriac.backends.database import models
from celeriac.backends.database.chord import ChordJoin, retryable
from celeriac.backends.database.models import missing_driver
from celeriac.backends.database.notify import CHANNEL, listener_for
from celeriac.backends.database.table_layout import (
    BASE_COLUMNS,
    EXTENDED_COLUMNS,
    meta_from_row,
    row_values,
)
from celeriac.backends.held_writes import HeldWrites
from celeriac.backends.helpers import ChangeNotifier, utcnow
from celeriac.drivers.urls import mask_url
from celeriac.exceptions import ImproperlyConfigured, OperationalError
from celeriac.utils import forksafe

if TYPE_CHECKING:
    from celeriac.app.config import Settings
    from celeriac.backends.database.notify import ResultListener

_T = TypeVar("_T")
_notifiers: dict[str, ChangeNotifier] = {}
_notifiers_lock = threading.Lock()


def naive_utc(value: datetime | None) -> datetime | None:
    """Celery's ``DateTime`` columns hold naive UTC."""
    if value is not None and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _notifier_for(url: str) -> ChangeNotifier:
    with _notifiers_lock:
        return _notifiers.setdefault(url, ChangeNotifier())


class DatabaseBackend(ResultBackend):
    """Results in a SQL database through SQLAlchemy 2.x, laid out as Celery's."""

    def __init__(self, url: str, conf: Settings) -> None:
        super().__init__(url, conf)
        self.sa_url = models.sqlalchemy_url(url)
        names = conf.database_table_names or {}
        schemas = conf.database_table_schemas or {}
        self.task_name: str = names.get("task") or "celery_taskmeta"
        self.group_name: str = names.get("group") or "celery_tasksetmeta"
        self.task_schema: str | None = schemas.get("task")
        self.group_schema: str | None = schemas.get("group")
        self.engine_options: dict[str, Any] = dict(conf.database_engine_options or {})
        self.short_lived_sessions = bool(conf.database_short_lived_sessions)
        self._lock = threading.Lock()
        self._engine: sa.Engine | None = None
        self._pid = 0
        self._ready = False
        #: Columns of Celery's layout that the existing table lacks (older Celery versions).
        self._missing: frozenset[str] = frozenset()
        metadata = sa.MetaData()
        self.tasks = models.task_table(metadata, self.task_name, self.task_schema)
        self.groups = models.group_table(metadata, self.group_name, self.group_schema)
        self.metadata = metadata
        self._chords = ChordJoin(self.task_schema)
        self._chords_ready = False
        self._pg_statements: dict[tuple[str, ...], Any] = {}
        self._meta_queries: dict[tuple[str, ...], tuple[list[str], Any, Any]] = {}
        self._pg_many_texts: dict[tuple[str, ...], str] = {}  # columns and row count
        self._held: HeldWrites[tuple[str, dict[str, Any]]] = HeldWrites()  # WriteBatching
        # Stores made by this process wake its waiters at once; other processes poll.
        self._notifier = _notifier_for(self.sa_url)
        self._listener: ResultListener | None = None
        self._listener_pid = 0
        if conf.database_create_tables_at_setup:
            self._run(lambda conn: None)

    # -- engine ----------------------------------------------------------------------------
    def _get_engine(self) -> sa.Engine:
        """This process's engine; after ``fork`` the parent's pooled connections are dropped
        without being closed (closing would end the parent's sessions)."""
        with self._lock:
            if self._engine is not None and self._pid != forksafe.pid():
                self._engine.dispose(close=False)
                self._pid = forksafe.pid()
            if self._engine is None:
                self._engine = self._create_engine()
                self._pid = forksafe.pid()
            if not self._ready:
                try:
                    self._prepare(self._engine)
                except Exception as exc:
                    raise self._operational(exc) from exc
            return self._engine

    def _create_engine(self) -> sa.Engine:

        options = dict(self.engine_options)
        if self.short_lived_sessions:
            # A new connection per operation, as Celery's short-lived sessions amount to.
            options = {k: v for k, v in options.items() if not k.startswith("pool")}
            options["poolclass"] = NullPool
        try:
            return sa.create_engine(self.sa_url, **options)
        except ImportError as exc:
            raise missing_driver(self.url, exc) from exc
        except (TypeError, sa.exc.ArgumentError) as exc:
            raise ImproperlyConfigured(
                f"Bad result_backend {mask_url(self.url)!r} or database_engine_options: {exc}"
            ) from exc

    def _prepare(self, engine: sa.Engine) -> None:
        """Create missing tables and learn which extended columns the task table has.

        As in Celery, tables are created on first use whatever the settings say;
        ``database_create_tables_at_setup`` only moves that to the backend's construction.
        """
        for attempt in range(5):
            try:
                with engine.begin() as conn:
                    self.metadata.create_all(conn, checkfirst=True)
                    columns = sa.inspect(conn).get_columns(self.task_name, schema=self.task_schema)
                break
            except sa.exc.DatabaseError:
                # Two processes creating the same table: the loser sees it exists next time.
                if attempt == 4:
                    raise
        existing = {column["name"] for column in columns}
        self._missing = frozenset(c.name for c in self.tasks.columns if c.name not in existing)
        self._ready = True

    def _run(self, action: Callable[[sa.Connection], _T], *, autocommit: bool = False) -> _T:
        """Run ``action`` in one transaction (with ``autocommit``: each statement its own);
        a dropped connection is retried once."""
        for attempt in (1, 2):
            try:
                engine = self._get_engine()
                if autocommit:
                    with engine.connect() as conn:
                        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                        return action(conn)
                with engine.begin() as conn:
                    return action(conn)
            except sa.exc.DBAPIError as exc:
                if attempt == 1 and exc.connection_invalidated:
                    continue
                raise self._operational(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _operational(self, exc: Exception) -> OperationalError:
        reason = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        lines = str(reason).strip().splitlines()
        return OperationalError(
            f"Result database {mask_url(self.url)} failed: "
            f"{lines[0].strip(chr(39)) if lines else repr(reason)}"
        )

    def close(self) -> None:
        with self._lock:
            if self._listener is not None and self._listener_pid == forksafe.pid():
                self._listener.close()
            self._listener, self._listener_pid = None, 0
            if self._engine is not None:
                self._engine.dispose(close=self._pid == forksafe.pid())
            self._engine = None
            self._ready = False

    # -- primitives ------------------------------------------------------------------------
    def _values(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Every written column's value, encoded before the transaction starts."""
        return row_values(meta, self.encode, naive_utc)

    def _set_meta(self, task_id: str, meta: dict[str, Any], state: str) -> None:
        values = self._values(meta)
        self._get_engine()  # learn the columns before choosing which to write
        written = {k: v for k, v in values.items() if k not in self._missing}
        if self._held.hold((task_id, written)):
            return
        if self._engine is not None and self._engine.dialect.name == "postgresql":
            statement = self._pg_store(tuple(written))
            params = {"task_id": task_id, **written}
            self._run(lambda conn: conn.execute(statement, params), autocommit=True)
        else:
            self._run(lambda conn: self._upsert(conn, task_id, written))
        self._notifier.notify()

    # -- write batches (the worker: a run of results, one round trip on PostgreSQL) ---------
    def open_write_batch(self) -> bool:
        """Start holding this thread's final stores (:class:`WriteBatching`): on PostgreSQL
        :meth:`flush_writes` sends them as one multi-row upsert (one round trip); other
        databases write them one after another in one transaction."""
        self._held.open()
        return True

    def deferring(self) -> contextlib.AbstractContextManager[None]:
        return self._held.deferring()

    def pending_writes(self) -> int:
        return self._held.pending()

    def flush_writes(self, close: bool = False) -> None:
        """Write the held stores in order, each with the guard it has alone (a stored
        SUCCESS stays): on PostgreSQL as multi-row upserts, elsewhere in one transaction."""
        writes = self._held.take(close)
        if not writes:
            return
        if self._get_engine().dialect.name == "postgresql":
            self._send_pg_writes(writes)
        else:

            def each(conn: sa.Connection) -> None:
                for task_id, values in writes:
                    self._upsert(conn, task_id, values)

            self._run(each)
        self._notifier.notify()

    def _send_pg_writes(self, writes: list[tuple[str, dict[str, Any]]]) -> None:
        """The held stores as few statements as their order allows: each run of writes with
        the same columns and no task twice is one multi-row upsert (its own transaction,
        one round trip, every row with the guard it has alone); a task written again
        starts the next run, so the later write still sees the earlier one."""
        statements: list[tuple[str, dict[str, Any]]] = []
        run: list[tuple[str, dict[str, Any]]] = []
        for write in writes:
            if run and (tuple(write[1]) != tuple(run[0][1]) or write[0] in {t for t, _ in run}):
                statements.append(self._pg_many(run))
                run = []
            run.append(write)
        statements.append(self._pg_many(run))

        def send(conn: sa.Connection) -> None:
            for text, params in statements:
                conn.exec_driver_sql(text, params)

        self._run(send, autocommit=True)

    def _pg_many(self, run: list[tuple[str, dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
        """One multi-row upsert for ``run`` (same columns, distinct tasks): its SQL text and
        its parameters (``<column>_<row>``)."""
        names = tuple(run[0][1])
        key = (*names, str(len(run)))
        text = self._pg_many_texts.get(key)
        if text is None:
            text = self._pg_many_texts[key] = self._pg_many_text(names, len(run))
        params: dict[str, Any] = {}
        for n, (task_id, values) in enumerate(run):
            params[f"task_id_{n}"] = task_id
            for name in names:
                params[f"{name}_{n}"] = values[name]
        return text, params

    def _pg_many_text(self, names: tuple[str, ...], rows: int) -> str:
        """``INSERT ... VALUES (...), (...) ON CONFLICT DO UPDATE`` with the single store's
        guard and NOTIFY, for ``rows`` rows (psycopg prepares each size it sees often)."""
        dialect = self._get_engine().dialect
        table = self.tasks
        quote = dialect.identifier_preparer.quote
        full = dialect.identifier_preparer.format_table(table)
        columns = ("task_id", *names)
        sequence = table.c.id.default
        assert isinstance(sequence, sa.Sequence)
        nextval = str(sequence.next_value().compile(dialect=dialect))
        values = ", ".join(
            "(" + ", ".join([nextval, *(f"%({c}_{n})s" for c in columns)]) + ")"
            for n in range(rows)
        )
        updates = ", ".join(f"{quote(n)} = excluded.{quote(n)}" for n in names)
        return (
            f"INSERT INTO {full} (id, {', '.join(quote(n) for n in columns)}) "
            f"VALUES {values} "
            f"ON CONFLICT (task_id) DO UPDATE SET {updates} "
            f"WHERE {full}.status IS DISTINCT FROM '{states.SUCCESS}' "
            f"RETURNING pg_notify('{CHANNEL}', {full}.task_id)"
        )

    def _pg_store(self, names: tuple[str, ...]) -> Any:
        """PostgreSQL's store as one prepared statement: the upsert that leaves a stored
        SUCCESS alone, whose ``RETURNING`` sends the NOTIFY (delivered when it commits).
        Built once per set of columns; run in autocommit (one statement is its own
        transaction), so a store is one round trip."""
        statement = self._pg_statements.get(names)
        if statement is None:
            table = self.tasks
            bound = {"task_id": sa.bindparam("task_id", type_=table.c.task_id.type)}
            bound.update({n: sa.bindparam(n, type_=table.c[n].type) for n in names})
            insert = pg_insert(table).values(bound)
            statement = insert.on_conflict_do_update(
                index_elements=[table.c.task_id],
                set_={n: insert.excluded[n] for n in names},
                where=table.c.status.is_distinct_from(states.SUCCESS),
            ).returning(sa.func.pg_notify(CHANNEL, table.c.task_id))
            self._pg_statements[names] = statement
        return statement

    def _upsert(self, conn: sa.Connection, task_id: str, values: dict[str, Any]) -> None:
        table = self.tasks
        guard = table.c.status.is_distinct_from(states.SUCCESS)
        dialect = conn.dialect.name
        if dialect in ("postgresql", "sqlite"):
            insert = _dialect_insert(dialect)(table).values(task_id=task_id, **values)
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=[table.c.task_id], set_=values, where=guard
                )
            )
            if dialect == "postgresql":
                # Delivered at commit: waiters LISTENing elsewhere re-read at once.
                conn.execute(sa.select(sa.func.pg_notify(CHANNEL, task_id)))
            return
        if dialect in ("mysql", "mariadb"):
            conn.execute(_mysql_upsert(table, task_id, values))
            return
        update = sa.update(table).where(table.c.task_id == task_id, guard).values(**values)
        if not conn.execute(update).rowcount:
            exists = sa.select(table.c.id).where(table.c.task_id == task_id)
            if conn.execute(exists).first() is None:
                conn.execute(sa.insert(table).values(task_id=task_id, **values))

    def _meta_query(self) -> tuple[list[str], Any, Any]:
        """The columns read back and the two reads (one id, many ids), built once for the
        table's columns (learnt from the table on first use)."""
        self._get_engine()
        names = [c for c in (*BASE_COLUMNS, *EXTENDED_COLUMNS) if c not in self._missing]
        cached = self._meta_queries.get(tuple(names))
        if cached is None:
            read = sa.select(*(self.tasks.c[n] for n in names))
            one = read.where(self.tasks.c.task_id == sa.bindparam("task_id"))
            many = read.where(self.tasks.c.task_id.in_(sa.bindparam("ids", expanding=True)))
            cached = self._meta_queries[tuple(names)] = (names, one, many)
        return cached

    def _read(self, action: Callable[[sa.Connection], _T]) -> _T:
        """Run a read of one statement: on PostgreSQL in autocommit, so no BEGIN and COMMIT
        round trips surround it (psycopg's autocommit is a flag on the client; MySQL's
        drivers would spend a round trip each way setting it)."""
        postgres = self._get_engine().dialect.name == "postgresql"
        return self._run(action, autocommit=postgres)

    def _get_meta(self, task_id: str) -> dict[str, Any] | None:
        names, one, _ = self._meta_query()
        row = self._read(lambda conn: conn.execute(one, {"task_id": task_id}).first())
        if row is None:
            return None
        return meta_from_row(names, row, self.decode_stored)

    def _get_metas(self, task_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Every id's row in one query (a group's wait reads them all each turn)."""
        names, _, many = self._meta_query()
        wanted = list(dict.fromkeys(task_ids))
        rows = self._read(lambda conn: conn.execute(many, {"ids": wanted}).all())
        found = {row[0]: meta_from_row(names, row, self.decode_stored) for row in rows}
        return [found.get(task_id) for task_id in task_ids]

    def _delete_meta(self, task_id: str) -> None:
        statement = sa.delete(self.tasks).where(self.tasks.c.task_id == task_id)
        self._run(lambda conn: conn.execute(statement))

    def _get_group(self, group_id: str) -> Any | None:
        query = sa.select(self.groups.c.result).where(self.groups.c.taskset_id == group_id)
        row = self._read(lambda conn: conn.execute(query).first())
        if row is None or row[0] is None:
            return None
        return self.decode_stored(bytes(row[0]))

    def _set_group(self, group_id: str, value: Any) -> None:
        values = {"result": self.encode(value), "date_done": naive_utc(utcnow())}
        table = self.groups

        def write(conn: sa.Connection) -> None:
            # Delete then insert: one portable "replace" (Celery itself only inserts).
            conn.execute(sa.delete(table).where(table.c.taskset_id == group_id))
            conn.execute(sa.insert(table).values(taskset_id=group_id, **values))

        self._run(write)

    def _delete_group(self, group_id: str) -> None:
        statement = sa.delete(self.groups).where(self.groups.c.taskset_id == group_id)
        self._run(lambda conn: conn.execute(statement))

    def _cleanup(self, older_than: datetime) -> int:
        cutoff = naive_utc(older_than)

        def remove(conn: sa.Connection) -> int:
            tasks = conn.execute(sa.delete(self.tasks).where(self.tasks.c.date_done < cutoff))
            groups = conn.execute(sa.delete(self.groups).where(self.groups.c.date_done < cutoff))
            chords = self._chords.cleanup(conn, older_than.timestamp())
            return int(tasks.rowcount) + int(groups.rowcount) + chords

        return self._run(remove)

    # -- chords (JoinsChords: an atomic counter row, see database/chord.py) -----------------
    def _chord(self, action: Callable[[sa.Connection], _T]) -> _T:
        """Run ``action`` in one transaction on the chord tables (made on first use); a
        deadlock or serialization failure is retried, as the database asks."""
        for attempt in range(5):
            try:
                if not self._chords_ready:
                    self._run(self._chords.create)
                    self._chords_ready = True
                return self._run(action)
            except OperationalError as exc:
                # Two processes creating the tables at once: the loser sees them next time.
                creating = not self._chords_ready
                if attempt == 4 or not (creating or retryable(exc.__cause__ or exc)):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def set_chord_size(self, group_id: str, size: int) -> None:
        self._chord(lambda conn: self._chords.set_size(conn, group_id, size))

    def chord_part_return(
        self, group_id: str, task_id: str, group_index: int | None, state: str, result: Any
    ) -> ChordParts | None:
        data = self.encode_chord_part(result, state)
        claim = self.chord_claim_seconds()
        rows = self._chord(
            lambda conn: self._chords.part_return(
                conn, group_id, task_id, group_index, state, data, claim
            )
        )
        if rows is None:
            return None
        results = [(tid, st, self.decode_chord_part(d, st)) for tid, st, d in rows]
        return ChordParts(group_id, results, group_id)

    def chord_done(self, parts: ChordParts) -> None:
        self._chord(lambda conn: self._chords.done(conn, parts.group_id))

    def add_to_chord(self, group_id: str) -> None:
        self._chord(lambda conn: self._chords.grow(conn, group_id))

    def _result_listener(self) -> ResultListener | None:
        """This process's LISTEN connection (PostgreSQL with psycopg 3), made on first wait."""
        if self._listener_pid != forksafe.pid():
            self._listener_pid = forksafe.pid()
            self._listener = listener_for(self._get_engine())
        return self._listener

    def on_task_call(self, task_id: str) -> None:
        """In a process that already waits for results over ``LISTEN``, note the send: its
        first wait then waits for the NOTIFY instead of reading a result not stored yet."""
        if self._listener is not None and self._listener_pid == forksafe.pid():
            self._listener.sent(task_id)

    def _heard_since_send(self, task_id: str) -> bool:
        listener = self._listener if self._listener_pid == forksafe.pid() else None
        return listener is not None and listener.resume_from_send(task_id)

    def _before_read(self, task_ids: Any) -> None:
        self._notifier.mark()
        listener = self._result_listener()
        if listener is not None:
            listener.mark()

    def _wait(self, task_ids: Any, timeout: float) -> None:
        listener = self._result_listener()
        if listener is not None:
            listener.wait(task_ids, timeout)
        else:
            self._notifier.wait(timeout)


def _mysql_upsert(table: sa.Table, task_id: str, values: dict[str, Any]) -> Any:
    """``INSERT ... ON DUPLICATE KEY UPDATE`` that leaves a stored SUCCESS alone.

    MySQL applies the assignments left to right, each seeing the ones before: ``status``
    goes last so every other column still tests the stored state.
    """

    statement = mysql_insert(table).values(task_id=task_id, **values)
    keep = sa.func.coalesce(table.c.status, "") == states.SUCCESS
    names = [name for name in values if name != "status"] + ["status"]
    assignments = [
        (name, sa.func.IF(keep, table.c[name], statement.inserted[name])) for name in names
    ]
    return statement.on_duplicate_key_update(assignments)


def _dialect_insert(dialect: str) -> Any:
    return pg_insert if dialect == "postgresql" else sqlite_insert


__all__ = ["DatabaseBackend", "naive_utc"]
