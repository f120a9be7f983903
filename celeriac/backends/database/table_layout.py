"""Celery's ``celery_taskmeta`` row layout, shared by the two SQL result stores (the stdlib
SQLite one and the SQLAlchemy one): which columns exist and how a meta maps to them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

BASE_COLUMNS = ("task_id", "status", "result", "date_done", "traceback", "children")
#: Written only when the table has them (Celery's TaskExtended model, ``result_extended``).
EXTENDED_COLUMNS = ("name", "args", "kwargs", "worker", "retries", "queue")
#: Extended columns holding serializer bytes rather than plain values.
ENCODED_COLUMNS = frozenset({"args", "kwargs"})
#: Columns whose bytes are decoded with the result serializer when read.
_DECODED_COLUMNS = ("result", "children", *sorted(ENCODED_COLUMNS))


def row_values(
    meta: dict[str, Any], encode: Callable[[Any], bytes], date: Callable[[Any], Any]
) -> dict[str, Any]:
    """Every column's value but ``task_id``, encoded (5.7 stores serializer bytes)."""
    children = meta.get("children")
    values: dict[str, Any] = {
        "status": meta["status"],
        "result": encode(meta.get("result")),
        "date_done": date(meta.get("date_done")),
        "traceback": meta.get("traceback"),
        "children": encode(children) if children else None,
    }
    for column in EXTENDED_COLUMNS:
        value = meta.get(column)
        if column in ENCODED_COLUMNS:
            value = encode(value) if column in meta else None
        values[column] = value
    return values


def meta_from_row(
    columns: Iterable[str], row: Sequence[Any], decode: Callable[[bytes], Any]
) -> dict[str, Any]:
    """A stored meta (result still prepared) from a row read in ``columns`` order."""
    meta = dict(zip(columns, row, strict=True))
    for column in _DECODED_COLUMNS:
        if meta.get(column) is not None:
            meta[column] = decode(bytes(meta[column]))
    return meta


__all__ = ["BASE_COLUMNS", "ENCODED_COLUMNS", "EXTENDED_COLUMNS", "meta_from_row", "row_values"]
