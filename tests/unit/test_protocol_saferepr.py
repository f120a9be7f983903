"""argsrepr/kwargsrepr: Celery's saferepr (expected strings produced by Celery 5.7's)."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac.protocol.saferepr import saferepr


@pytest.mark.parametrize(
    ("value", "maxlen", "expected"),
    [
        ((2, 3), 1024, "(2, 3)"),
        ((1,), 1024, "(1,)"),
        ([1, 1], 1024, "[1, 1]"),
        ({"x": 1, "y": 2}, 1024, "{'x': 1, 'y': 2}"),
        ([[[[1]]]], 1024, "[[[[...]]]]"),
        ({"a": [1, {"b": (2,)}]}, 1024, "{'a': [1, {'b': (...,)}]}"),
        (
            ("it's", "a\nb", b"\xff\x00", {1, 2}, frozenset(), 1.5, None, True),
            1024,
            "('it\\'s', 'a\nb', b'ff00', {1, 2}, frozenset(), 1.5, None, True)",
        ),
        (list(range(1000)), 50, "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, , ...]"),
    ],
)
def test_matches_celery(value: Any, maxlen: int, expected: str) -> None:
    assert saferepr(value, maxlen) == expected


def test_long_strings_are_cut_near_maxlen() -> None:
    text = saferepr(("x" * 2000,), 1024)
    assert len(text) == 1031
    assert text.endswith("xx...',)")
    assert saferepr(("word " * 300,), 1024).endswith("word word...',)")


def test_recursive_structures_do_not_loop() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    assert saferepr(loop, 1024, maxlevels=10).startswith("[1, <Recursion on list with id=")


def test_broken_repr_does_not_raise() -> None:
    class Bad:
        def __repr__(self) -> str:
            raise RuntimeError("boom")

    assert saferepr([Bad()], 1024).startswith("[<Unrepresentable")


def test_the_fast_path_for_plain_arguments_equals_the_general_one() -> None:
    from celeriac.protocol.saferepr import _stream

    samples: list[Any] = [
        (),
        (1,),
        (1, 2.5, None, True, float("nan"), -0.0, 10**40),
        tuple(range(300)),  # longer than maxlen: the general path truncates
        {},
    ]
    for sample in samples:
        for maxlen in (None, 1024, 10):
            assert saferepr(sample, maxlen) == "".join(_stream(sample, maxlen, 3)), sample
