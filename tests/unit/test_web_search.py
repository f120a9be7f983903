"""The task search: Flower 2.2's query language (its own parser is the reference, installed as
a test dependency), read into SQL over the history."""

from __future__ import annotations

from typing import Any

import pytest
from flower.utils import search as flower

from celeriac.web.search import All, Any_, QueryError, Term, kwargs_pair, parse
from celeriac.web.store import StoredTask, TaskQuery, TaskStore
from tests.unit.test_web_store import doc


def flowers(node: Any) -> Any:
    """Flower's tree in celeriac's terms, to compare the two parsers."""
    if isinstance(node, flower.Term):
        return Term(node.field, node.value)
    kind = All if isinstance(node, flower.And) else Any_
    return kind(tuple(flowers(child) for child in node.children))


QUERIES = [
    "order-42",
    "state:FAILURE",
    "STATE:failure args:invoice",
    "name:proj.add AND worker:celery@host",
    "args:abc OR kwargs:xyz",
    "args:abc kwargs:def OR result:ghi",
    "(args:abc OR args:def) AND state:SUCCESS",
    '"two words" args:"it\\"s here"',
    "kwargs:user_id=42",
    "unknown:field",
    "a:b:c1",
    "((((args:abc))))",
    "args:abc AND (name:def OR (worker:ghi AND state:x))",
]


@pytest.mark.parametrize("query", QUERIES)
def test_queries_read_as_flower_reads_them(query: str) -> None:
    assert parse(query) == flowers(flower.parse_query(query))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('args:"not closed', "a quoted phrase is not closed at position 0"),
        ("args:abc AND", "AND must be followed by a term at position 9"),
        ("OR args:abc", "expected a term at position 0"),
        ("args:abc OR )", "OR must be followed by a term at position 9"),
        ("(args:abc", "a parenthesis is not closed at position 0"),
        ("()", "empty parentheses at position 0"),
        ("args:abc)", "unexpected ')' at position 8"),
        ("NOT args:abc", "NOT is not supported at position 0"),
        ("state:", "state: needs a value at position 0"),
        ("((((((args:abc))))))", "parentheses nested deeper than 5 at position 5"),
        ('""', "an empty term at position 0"),
        ("x" * 2049, "longer than 2048 characters"),
        (" ".join(["abc"] * 129), "more than 128 terms"),
    ],
)
def test_mistakes_are_refused_saying_what_and_where(query: str, message: str) -> None:
    with pytest.raises(QueryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(query)
    with pytest.raises(ValueError):  # as Flower does: a 400 naming the mistake
        flower.parse_query(query)


def test_short_terms_and_leading_dashes_are_searched_not_refused() -> None:
    assert parse("7,") == Term(None, "7,")  # Flower wants 3 characters at least
    assert parse("-7") == Term(None, "-7")  # Flower reads a negation it refuses
    assert parse("   ") is None


@pytest.fixture
def store() -> TaskStore:
    made = TaskStore()
    tasks: list[StoredTask] = [
        doc("a1-0000", 1.0, name="shop.Charge", worker="w1@h", state="FAILURE",
            args="(1, 'Invoice-42')", kwargs="{'user_id': 42, 'to': 'ann'}", result=None),
        doc("b2-0000", 2.0, name="shop.add", worker="w2@h", state="SUCCESS",
            args="(2, 3)", kwargs="{'user_id': '42'}", result="'five hundred'"),
        doc("c3-0000", 3.0, name="shop.add", worker="w1@h", state="SUCCESS",
            args="(4, 'receipt-7')", kwargs="{'meta': {'user_id': 42}}", result="7"),
        doc("d4-0000", 4.0, name="mail.send", worker="w2@h", state="RETRY",
            args="('ann@example.com',)", kwargs="{'user_id': 420}", result=None),
    ]  # fmt: skip
    made.put(tasks)
    return made


def found(store: TaskStore, search: str, **filters: Any) -> list[str]:
    return [t.doc["uuid"] for t in store.query(TaskQuery(search=search, **filters))[1]]


def test_each_field_and_the_operators(store: TaskStore) -> None:
    assert found(store, "b2") == ["b2-0000"]  # an id's start
    assert found(store, "invoice") == ["a1-0000"]  # text in the arguments, any case
    assert found(store, "'ann'") == ["a1-0000"]  # in the keyword arguments too
    assert found(store, "state:success") == ["c3-0000", "b2-0000"]  # exact, any case
    assert found(store, "state:succ") == []
    assert found(store, "name:ADD") == ["c3-0000", "b2-0000"]
    assert found(store, "worker:w2") == ["d4-0000", "b2-0000"]
    assert found(store, "args:ann") == ["d4-0000"]  # not a1's kwargs
    assert found(store, "kwargs:ann") == ["a1-0000"]
    assert found(store, "result:HUNDRED") == ["b2-0000"]
    assert found(store, "result:7") == ["c3-0000"]
    assert found(store, "name:add state:success args:receipt") == ["c3-0000"]
    assert found(store, "name:add AND worker:w1") == ["c3-0000"]
    assert found(store, "state:failure OR state:retry") == ["d4-0000", "a1-0000"]
    assert found(store, "worker:w1 (state:failure OR args:receipt)") == ["c3-0000", "a1-0000"]
    assert found(store, "name:add OR name:send worker:w2") == ["d4-0000", "c3-0000", "b2-0000"]
    assert found(store, '"receipt-7"') == ["c3-0000"]
    assert found(store, "7,") == []  # short text: scanned, found nowhere


def test_a_pair_in_the_keyword_arguments(store: TaskStore) -> None:
    # Flower's kwargs:key=value: top-level keys only, values compared as text
    assert found(store, "kwargs:user_id=42") == ["b2-0000", "a1-0000"]
    assert found(store, 'kwargs:"USER_ID = 42"') == ["b2-0000", "a1-0000"]
    assert found(store, "kwargs:to=ann") == ["a1-0000"]
    assert found(store, "kwargs:user_id=4") == []
    assert found(store, "kwargs:user_id=420 OR kwargs:to=ann") == ["d4-0000", "a1-0000"]
    assert kwargs_pair("{'a': 'X'}", "a=x") and not kwargs_pair("not a dict", "a=x")
    assert not kwargs_pair("[('a', 1)]", "a=1") and not kwargs_pair(None, "a=1")


def test_search_combines_with_the_other_filters_and_pages(store: TaskStore) -> None:
    assert found(store, "name:shop", state="SUCCESS", limit=1) == ["c3-0000"]
    assert store.query(TaskQuery(search="name:shop", limit=1))[0] == 3
    assert found(store, "user_id", worker="w2@h") == ["d4-0000", "b2-0000"]


def test_a_bad_query_is_refused_before_it_reaches_the_store() -> None:
    with pytest.raises(ValueError, match="a parenthesis is not closed at position 0"):
        TaskQuery(search="(4")
