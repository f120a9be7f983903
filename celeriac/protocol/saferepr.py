"""A truncating, depth-limited ``repr`` with Celery's exact output (``argsrepr``/``kwargsrepr``).

Celery's ``saferepr`` differs from ``repr`` in ways that show in headers and events: strings
are quoted without escaping (only ``'`` is escaped), undecodable bytes are shown as hex,
containers deeper than ``maxlevels`` become ``[...]``, and once ``maxlen`` characters are
written the rest becomes ``, ...`` followed by the closing brackets that are still open.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain
from numbers import Number
from typing import Any, TypeAlias


@dataclass(frozen=True, slots=True)
class _Literal:
    value: str
    truncatable: bool
    direction: int  # +1 opens a container, -1 closes one


@dataclass(frozen=True, slots=True)
class _Key:
    value: Any


@dataclass(frozen=True, slots=True)
class _Quoted:
    value: str | bytes


_Token: TypeAlias = _Literal | _Key | _Quoted | str

_SEP = _Literal(", ", True, 0)
_KVSEP = _Literal(": ", True, 0)


def truncate(s: str, maxlen: int | None, suffix: str = "...") -> str:
    """Cut ``s`` to ``maxlen`` characters at a word boundary (Celery's ``truncate``)."""
    if maxlen and len(s) >= maxlen:
        return s[:maxlen].rsplit(" ", 1)[0] + suffix
    return s


def _safe_repr(obj: Any) -> str:
    try:
        return repr(obj)
    except Exception as exc:  # a broken __repr__ must not break publishing
        return f"<Unrepresentable {type(obj)!r}{id(obj):#x}: {exc!r}>"


def _brackets(o: Any) -> tuple[str, str] | None:
    """Opening/closing text for a container Celery expands, None for anything else."""
    if isinstance(o, (set, frozenset)):
        if type(o) is set:
            return "{", "}"
        return f"{type(o).__name__}({{", "})"
    if isinstance(o, tuple):
        return "(", ",)" if len(o) == 1 else ")"
    if isinstance(o, dict):
        return "{", "}"
    if isinstance(o, list):
        return "[", "]"
    return None


def _tokens(o: Any, level: int, maxlevels: int, seen: set[int]) -> Iterator[_Token]:
    if isinstance(o, Decimal):
        yield _safe_repr(o)
        return
    if isinstance(o, Number):
        yield str(o)
        return
    if isinstance(o, (str, bytes)):
        yield _Quoted(o)
        return
    if isinstance(o, (set, frozenset)) and not o:
        yield f"{type(o).__name__}()"
        return
    brackets = _brackets(o)
    if brackets is None:
        yield _safe_repr(o)
        return
    start, end = brackets
    if maxlevels and level >= maxlevels:
        yield _Literal(f"{start}...{end}", False, 0)
        return
    if id(o) in seen:
        yield f"<Recursion on {type(o).__name__} with id={id(o)}>"
        return
    seen.add(id(o))
    yield _Literal(start, False, +1)
    if isinstance(o, dict):
        for i, (key, value) in enumerate(o.items()):
            if i:
                yield _SEP
            yield _Key(key)
            yield _KVSEP
            yield from _tokens(value, level + 1, maxlevels, seen)
    else:
        for i, value in enumerate(o):
            if i:
                yield _SEP
            yield from _tokens(value, level + 1, maxlevels, seen)
    seen.discard(id(o))
    yield _Literal(end, False, -1)


def _format_bytes(val: bytes, maxlen: int | None) -> str:
    def text(b: bytes) -> str:
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return b.hex()

    if maxlen and len(val) > maxlen:
        return f"b'{text(val[:maxlen])}...'"
    return f"b'{text(val)}'"


def _format_quoted(val: str | bytes, maxlen: int | None) -> str:
    if isinstance(val, bytes):
        return _format_bytes(val, maxlen)
    return "'{}'".format(truncate(val, maxlen).replace("'", "\\'"))


def _dangling(rest: Iterator[_Token]) -> Iterator[str]:
    """Closing brackets of the containers already opened when the limit was hit."""
    depth = 0
    for token in rest:
        if isinstance(token, _Literal) and not token.truncatable:
            depth += token.direction
            if depth < 0:
                depth = 0
                yield token.value


def _stream(o: Any, maxlen: int | None, maxlevels: int) -> Iterator[str]:
    tokens = _tokens(o, 0, maxlevels, set())
    for token in tokens:
        if maxlen is not None and maxlen <= 0:
            if isinstance(token, _Literal) and token.direction < 0:
                yield token.value  # nothing is left out of this container: just close it
                continue
            yield ", ..."
            yield from _dangling(chain([token], tokens))
            return
        if isinstance(token, _Literal):
            text = token.value
        elif isinstance(token, _Key):
            text = saferepr(token.value, maxlen, maxlevels)
        elif isinstance(token, _Quoted):
            text = _format_quoted(token.value, maxlen)
        else:
            text = truncate(token, maxlen)
        yield text
        if maxlen is not None:
            maxlen -= len(text)


_SCALARS = frozenset({int, float, bool, type(None)})


def saferepr(o: Any, maxlen: int | None = None, maxlevels: int = 3) -> str:
    """Celery's ``saferepr``: ``repr`` cut to about ``maxlen`` chars and ``maxlevels`` deep."""
    kind = type(o)
    # The usual argsrepr/kwargsrepr (numbers, or nothing) is plain repr when short enough.
    if kind is tuple and all(type(v) in _SCALARS for v in o):
        text = repr(o)
        if maxlen is None or len(text) <= maxlen:
            return text
    elif kind is dict and not o:
        return "{}"
    return "".join(_stream(o, maxlen, maxlevels))


__all__ = ["saferepr", "truncate"]
