"""Result documents and rows captured from Celery 5.7: we read theirs and write the same."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from celeriac import states
from celeriac.app.config import Settings
from celeriac.backends.helpers import parse_date_done
from celeriac.backends.memory import MemoryBackend
from celeriac.backends.sqlite import SQLiteBackend
from celeriac.exceptions import TaskRevokedError
from celeriac.result import AsyncResult, GroupResult

Vector = Callable[[str], dict[str, Any]]
BLOB_COLUMNS = ("result", "children", "args", "kwargs", "stamps")
TASK_COLUMNS = (
    "task_id", "status", "result", "traceback", "children", "name", "args", "kwargs", "worker",
    "retries", "queue", "stamps",
)  # fmt: skip


def _celery_db(path: Path, vector: dict[str, Any]) -> None:
    """The database exactly as Celery's SQLAlchemy backend left it."""
    conn = sqlite3.connect(path)
    for statement in vector["schema_sql"]:
        if "sqlite_sequence" not in statement:  # SQLite creates that one itself
            conn.execute(statement)
    for table, rows in vector["rows"].items():
        for row in rows:
            values = {
                k: v.encode() if k in BLOB_COLUMNS and isinstance(v, str) else v
                for k, v in row.items()
            }
            names = ", ".join(values)
            marks = ", ".join("?" for _ in values)
            conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(values.values()))
    conn.commit()
    conn.close()


def _rows(path: Path, table: str, key: str) -> dict[str, dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    found = {row[key]: dict(row) for row in conn.execute(f"SELECT * FROM {table}")}
    conn.close()
    return found


@pytest.fixture
def db_vector(load_vector: Vector) -> dict[str, Any]:
    return load_vector("result_database_sqlite")


def test_we_read_celerys_database(tmp_path: Path, db_vector: dict[str, Any]) -> None:
    path = tmp_path / "celery.sqlite"
    _celery_db(path, db_vector)
    backend = SQLiteBackend(f"db+sqlite:///{path}", Settings({"result_extended": True}))
    success, failure, member0, member1 = db_vector["rows"]["celery_taskmeta"]

    meta = backend.get_task_meta(success["task_id"])
    assert meta["status"] == states.SUCCESS and meta["result"] == 3
    assert meta["date_done"] == datetime(2026, 11, 24, 3, 14, 52, 332546, tzinfo=timezone.utc)
    assert (meta["name"], meta["args"], meta["kwargs"]) == ("tasks.add", [1, 2], {})
    assert (meta["worker"], meta["retries"], meta["queue"]) == ("w6@cap", 0, "celery")

    result: AsyncResult[Any] = AsyncResult(failure["task_id"], backend=backend)
    with pytest.raises(ValueError) as info:
        result.get(timeout=1)
    assert info.value.args == ("dbboom", 42)
    assert result.traceback == failure["traceback"]

    group_row = db_vector["rows"]["celery_tasksetmeta"][0]
    group = GroupResult.restore(group_row["taskset_id"], backend=backend)
    assert group is not None
    assert [r.id for r in group.results] == [member0["task_id"], member1["task_id"]]
    assert group.join(timeout=1) == [0, 2]


def _request(row: dict[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(
        task=row["name"],
        args=json.loads(row["args"]),
        kwargs=json.loads(row["kwargs"]),
        hostname=row["worker"],
        retries=row["retries"],
        delivery_info={"routing_key": row["queue"]},
    )


def test_we_write_celerys_rows(tmp_path: Path, db_vector: dict[str, Any]) -> None:
    path = tmp_path / "ours.sqlite"
    backend = SQLiteBackend(f"db+sqlite:///{path}", Settings({"result_extended": True}))
    success, failure, *_ = db_vector["rows"]["celery_taskmeta"]
    backend.mark_as_done(success["task_id"], 3, request=_request(success))
    backend.mark_as_failure(
        failure["task_id"],
        ValueError("dbboom", 42),
        traceback=failure["traceback"],
        request=_request(failure),
    )
    group_row = db_vector["rows"]["celery_tasksetmeta"][0]
    group_tuple = json.loads(group_row["result"])
    backend.save_group(group_row["taskset_id"], group_tuple)

    rows = _rows(path, "celery_taskmeta", "task_id")
    for captured in (success, failure):
        ours = rows[captured["task_id"]]
        for column in TASK_COLUMNS:
            expected = captured[column]
            if column in BLOB_COLUMNS and isinstance(expected, str):
                expected = expected.encode()
            assert ours[column] == expected, column
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", ours["date_done"])

    groups = _rows(path, "celery_tasksetmeta", "taskset_id")
    assert groups[group_row["taskset_id"]]["result"] == group_row["result"].encode()

    conn = sqlite3.connect(path)
    schema = {row[0] for row in conn.execute("SELECT sql FROM sqlite_master") if row[0]}
    conn.close()
    assert schema == set(db_vector["schema_sql"])


def test_celery_can_keep_using_a_database_we_created(
    tmp_path: Path, db_vector: dict[str, Any]
) -> None:
    """Celery's rows land in our tables and we read them back (same DDL, upsert by id)."""
    path = tmp_path / "mixed.sqlite"
    ours = SQLiteBackend(f"db+sqlite:///{path}", Settings({"result_extended": True}))
    ours.mark_as_done("ours-1", "x")
    conn = sqlite3.connect(path)
    row = db_vector["rows"]["celery_taskmeta"][0]
    conn.execute(
        "INSERT INTO celery_taskmeta (task_id, status, result, date_done) VALUES (?, ?, ?, ?)",
        (row["task_id"], row["status"], row["result"].encode(), row["date_done"]),
    )
    conn.commit()
    conn.close()
    assert ours.get_result(row["task_id"]) == 3
    assert ours.get_result("ours-1") == "x"


# -- Redis documents ---------------------------------------------------------------------


@pytest.fixture
def documents(load_vector: Vector) -> dict[str, Any]:
    vector = load_vector("result_redis_documents")
    return {name: entry for name, entry in vector.items() if isinstance(entry, dict)}


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend("memory://wire-result-vectors", Settings({"result_extended": True}))


def _doc(documents: dict[str, Any], prefix: str) -> dict[str, Any]:
    return next(v for k, v in documents.items() if k.startswith(prefix))


def test_decode_captured_documents(backend: MemoryBackend, documents: dict[str, Any]) -> None:
    success = backend.decode_document(documents["success"]["raw"])
    assert success["status"] == states.SUCCESS and success["result"] == 5
    assert success["date_done"] == datetime(2026, 11, 24, 3, 11, 6, 127682, tzinfo=timezone.utc)

    failure = backend.decode_document(documents["failure"]["raw"])
    assert type(failure["result"]) is ValueError
    assert failure["result"].args == ("boom", 42)
    assert failure["traceback"].endswith("ValueError: ('boom', 42)\n")

    retry = backend.decode_document(documents["retry_state_as_published"]["raw"])
    assert retry["status"] == states.RETRY and isinstance(retry["result"], KeyError)
    assert retry["date_done"] is None

    for name in ("revoked_before_receive", "revoked_terminated", "revoked_by_id_only"):
        revoked = backend.decode_document(_doc(documents, name)["raw"])
        assert type(revoked["result"]) is TaskRevokedError

    extended = backend.decode_document(_doc(documents, "result_extended")["raw"])
    assert (extended["name"], extended["args"], extended["worker"]) == (
        "tasks.add",
        [5, 6],
        "w2@cap",
    )

    special = backend.decode_document(documents["special_types_result"]["raw"])
    assert special["result"]["args"][4].hex == "12345678123456781234567812345678"
    assert special["result"]["args"][6] == b"\xff\xfe\x00binary"


def _encode_like(
    backend: MemoryBackend, raw: str, result: Any, request: SimpleNamespace | None = None
) -> bytes:
    captured = json.loads(raw)
    meta = backend.build_meta(
        captured["task_id"],
        backend.encode_result(result, captured["status"]),
        captured["status"],
        captured["traceback"],
        request,
    )
    # The one value no encoder can reproduce: when the task finished.
    meta["date_done"] = parse_date_done(captured["date_done"])
    return backend.encode_document(meta)


@pytest.mark.parametrize(
    ("name", "result", "request_fields"),
    [
        ("success", 5, None),
        ("failure", ValueError("boom", 42), None),
        ("revoked_before_receive", TaskRevokedError("revoked"), None),
        ("group_member", 0, {"group": "9a4fa39e-c729-4eb5-a1cb-061cced6c499"}),
        (
            "chord_body",
            6,
            {
                "group": "21909c9a-f4a0-4dfb-9f0e-815eede45c27",
                "parent_id": "9c7548f2-3dc5-4392-bf3c-c5d82ae9a118",
            },
        ),
        (
            "chain_parent_with_children",
            4,
            {"children": [AsyncResult("1e49e51c-11e9-44d9-822c-c9f66fdf9fbe", backend=None)]},
        ),
        (
            "result_extended",
            11,
            {
                "task": "tasks.add",
                "args": [5, 6],
                "kwargs": {},
                "hostname": "w2@cap",
                "retries": 0,
                "delivery_info": {"routing_key": "celery"},
            },
        ),
    ],
)
def test_encode_matches_captured_bytes(
    documents: dict[str, Any], name: str, result: Any, request_fields: dict[str, Any] | None
) -> None:
    extended = name == "result_extended"
    backend = MemoryBackend("memory://wire-encode", Settings({"result_extended": extended}))
    raw = _doc(documents, name)["raw"]
    request = SimpleNamespace(**request_fields) if request_fields is not None else None
    assert _encode_like(backend, raw, result, request) == raw.encode()
