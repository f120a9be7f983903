"""The import rules of docs/architecture.md that the import contract (scripts/check) cannot see.

An import inside a function hides a dependency from the layer contract and from the reader,
so one is allowed only to load an optional dependency lazily, and then says why in a
``# lazy: <reason>`` comment on its line or just above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import celeriac

PACKAGE = Path(celeriac.__file__).resolve().parent
LAZY = "# lazy:"


def function_level_imports(source: str) -> list[int]:
    """Line numbers of the imports inside function bodies of ``source``."""
    tree = ast.parse(source)
    return sorted(
        node.lineno
        for func in ast.walk(tree)
        if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(func)
        if isinstance(node, ast.Import | ast.ImportFrom)
    )


def unexplained(source: str) -> list[int]:
    lines = source.splitlines()
    return [
        number
        for number in function_level_imports(source)
        if not any(LAZY in line for line in lines[max(0, number - 4) : number])
    ]


def test_every_import_inside_a_function_says_why_it_is_lazy() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number in unexplained(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_rule_catches_an_import_hidden_in_a_function() -> None:
    hidden = "def f():\n    from celeriac.worker.worker import Worker\n    return Worker\n"
    lazy = "def f():\n    # lazy: redis-py is an extra\n    import redis\n    return redis\n"
    assert unexplained(hidden) == [2]
    assert unexplained(lazy) == []
