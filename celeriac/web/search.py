"""The task list's ``search``: Flower 2.2's query language, read into SQL for the history.

A query is terms, joined by ``AND`` (also implied by a space) and ``OR`` (``AND`` binds
first), grouped with parentheses; ``"a phrase"`` keeps its spaces (``\\"`` a quote). A term
may name its field: ``name:``, ``state:`` (the exact state), ``worker:``, ``args:``,
``kwargs:`` (``kwargs:key=value`` an exact pair), ``result:``; a term without one matches an
id (or its start) or text in the arguments (Flower's also looks in the name, state, worker
and result: name them here, a scan of every task is not paid on every search). Matching
ignores case.
Flower's limits and refusals are kept (2,048 characters, 128 tokens, 5 levels; no ``NOT``),
except that a term shorter than three characters, or starting with ``-``, is searched for as
it is rather than refused. :func:`parse` raises :class:`QueryError` naming the position of
the mistake.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

#: The fields a term may name.
FIELDS = frozenset({"name", "state", "worker", "args", "kwargs", "result"})
MAX_LENGTH = 2048
MAX_TOKENS = 128
MAX_DEPTH = 5
#: Shorter text is found by a scan; longer text through the trigram index.
TRIGRAM = 3


class QueryError(ValueError):
    """A query that cannot be read: the message says what and where."""


@dataclass(frozen=True, slots=True)
class Term:
    field: str | None
    value: str


@dataclass(frozen=True, slots=True)
class All:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Any_:
    children: tuple[Node, ...]


Node = Term | All | Any_


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # TERM, AND, OR, LPAREN, RPAREN, EOF
    value: str
    position: int


def parse(query: str) -> Node | None:
    """The query's tree; None for an empty query (everything matches)."""
    query = query.strip()
    if len(query) > MAX_LENGTH:
        raise QueryError(f"search is longer than {MAX_LENGTH} characters")
    tokens = _tokens(query)
    if tokens[0].kind == "EOF":
        return None
    parser = _Parser(tokens)
    node = parser.either(0)
    if parser.current.kind != "EOF":
        raise _error(f"unexpected {parser.current.value!r}", parser.current)
    return node


def _error(message: str, token: _Token) -> QueryError:
    return QueryError(f"search: {message} at position {token.position}")


def _tokens(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    index, length = 0, len(query)
    while index < length:
        char = query[index]
        if char.isspace():
            index += 1
            continue
        start = index
        if char in "()":
            tokens.append(_Token("LPAREN" if char == "(" else "RPAREN", char, start))
            index += 1
        else:
            value: list[str] = []
            quoted = in_quote = False
            while index < length:
                char = query[index]
                if char == "\\" and index + 1 < length and query[index + 1] in '"\\':
                    value.append(query[index + 1])
                    index += 2
                    continue
                if char == '"':
                    quoted, in_quote = True, not in_quote
                    index += 1
                    continue
                if not in_quote and (char.isspace() or char in "()"):
                    break
                value.append(char)
                index += 1
            text = "".join(value)
            token = _Token("TERM", text, start)
            if in_quote:
                raise _error("a quoted phrase is not closed", token)
            if not text:
                raise _error("an empty term", token)
            if not quoted and text in ("AND", "OR"):
                token = _Token(text, text, start)
            elif not quoted and text == "NOT":
                raise _error("NOT is not supported", token)
            tokens.append(token)
        if len(tokens) > MAX_TOKENS:
            raise QueryError(f"search has more than {MAX_TOKENS} terms and operators")
    tokens.append(_Token("EOF", "", length))
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.current
        self.index += 1
        return token

    def either(self, depth: int) -> Node:
        children = [self.both(depth)]
        while self.current.kind == "OR":
            operator = self.advance()
            if self.current.kind in ("EOF", "RPAREN", "AND", "OR"):
                raise _error("OR must be followed by a term", operator)
            children.append(self.both(depth))
        return _combine(Any_, children)

    def both(self, depth: int) -> Node:
        children = [self.primary(depth)]
        while self.current.kind not in ("EOF", "RPAREN", "OR"):
            if self.current.kind == "AND":
                operator = self.advance()
                if self.current.kind in ("EOF", "RPAREN", "AND", "OR"):
                    raise _error("AND must be followed by a term", operator)
            children.append(self.primary(depth))
        return _combine(All, children)

    def primary(self, depth: int) -> Node:
        token = self.current
        if token.kind == "LPAREN":
            if depth >= MAX_DEPTH:
                raise _error(f"parentheses nested deeper than {MAX_DEPTH}", token)
            self.advance()
            if self.current.kind == "RPAREN":
                raise _error("empty parentheses", token)
            node = self.either(depth + 1)
            if self.current.kind != "RPAREN":
                raise _error("a parenthesis is not closed", token)
            self.advance()
            return node
        if token.kind != "TERM":
            raise _error("expected a term", token)
        self.advance()
        return _term(token)


def _combine(kind: type[All] | type[Any_], children: list[Node]) -> Node:
    flat: list[Node] = []
    for child in children:
        for one in child.children if isinstance(child, kind) else (child,):
            if one not in flat:
                flat.append(one)
    return flat[0] if len(flat) == 1 else kind(tuple(flat))


def _term(token: _Token) -> Term:
    field: str | None = None
    value = token.value
    name, colon, rest = value.partition(":")
    if colon and name.casefold() in FIELDS:
        field, value = name.casefold(), rest
    if not value:
        raise _error(f"{field}: needs a value", token)
    return Term(field, value)


# -- SQL -------------------------------------------------------------------------------------
def sql(node: Node) -> tuple[str, list[Any]]:
    """A ``WHERE`` condition on the ``tasks`` table (with ``docs`` reachable by uuid)."""
    if isinstance(node, Term):
        return _term_sql(node)
    parts = [sql(child) for child in node.children]
    joiner = " AND " if isinstance(node, All) else " OR "
    return (
        "(" + joiner.join(text for text, _ in parts) + ")",
        [param for _, params in parts for param in params],
    )


def _term_sql(term: Term) -> tuple[str, list[Any]]:
    value = term.value.casefold()
    if term.field == "state":
        return "lower(state) = ?", [value]
    if term.field in ("name", "worker"):
        return f"instr(lower({term.field}), ?) > 0", [value]
    if term.field == "result":
        return (
            "uuid IN (SELECT uuid FROM docs "
            "WHERE instr(lower(json_extract(doc, '$.result')), ?) > 0)",
            [value],
        )
    if term.field == "kwargs" and "=" in value:
        return _pair_sql(*(side.strip() for side in value.split("=", 1)))
    if term.field in ("args", "kwargs"):
        return _text([term.field], term.value)
    # no field: an id or its start (the primary key), or text in the arguments (the index)
    text, params = _text(["args", "kwargs"], term.value)
    return f"((uuid >= ? AND uuid < ?) OR {text})", [term.value, term.value + "\U0010ffff", *params]


def _pair_sql(key: str, item: str) -> tuple[str, list[Any]]:
    """``kwargs:key=value``: the trigram index finds the tasks whose keyword arguments'
    repr holds ``'key': value`` or ``'key': 'value'`` (with what follows a value: ``,`` or
    ``}``), then :func:`kwargs_pair` reads each one's arguments to be sure."""
    forms = [f"{k}: {v}{end}" for k in (repr(key),) for v in (item, repr(item)) for end in ",}"]
    phrases = " OR ".join('"' + form.replace('"', '""') + '"' for form in forms)
    return (
        "(rowid IN (SELECT rowid FROM task_text WHERE task_text MATCH ?) "
        "AND kwargs_pair(kwargs, ?))",
        ["{kwargs} : (" + phrases + ")", f"{key}={item}"],
    )


def _text(columns: list[str], value: str) -> tuple[str, list[Any]]:
    """``value`` found in any of ``columns`` (the trigram index, or a scan when short)."""
    if len(value) >= TRIGRAM:
        phrase = '"' + value.replace('"', '""') + '"'
        filter_ = "{" + " ".join(columns) + "} : " + phrase
        return "rowid IN (SELECT rowid FROM task_text WHERE task_text MATCH ?)", [filter_]
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    clauses = " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in columns)
    return f"({clauses})", [f"%{escaped}%"] * len(columns)


def kwargs_pair(kwargs: str | None, pair: str) -> bool:
    """Flower's ``kwargs:key=value``: the task's keyword arguments (a repr) hold that pair,
    both sides compared as text, ignoring case. Registered in SQLite as ``kwargs_pair``."""
    if not kwargs:
        return False
    try:
        mapping = ast.literal_eval(kwargs)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    if not isinstance(mapping, dict):
        return False
    return any(f"{str(k).casefold()}={str(v).casefold()}" == pair for k, v in mapping.items())


__all__ = ["FIELDS", "All", "Any_", "QueryError", "Term", "kwargs_pair", "parse", "sql"]
