"""The tutorial's calls, typed into Python as a user would, with what Python shows.

Run it beside ``tasks.py`` while ``celeriac -A tasks worker`` runs in the same directory
(``scripts/demo`` does both). Each line is run as the interactive interpreter runs it: an
expression's value is printed with ``repr``.
"""

from __future__ import annotations

import sys
from typing import Any

SESSION = [
    "from tasks import add, mult, div",
    "r = add.delay(1, 2)",
    "r.ready()",  # most likely False: the worker has not stored the result yet
    "r.get(timeout=1)",
    "r.ready()",
    "r.successful()",
    "mult.delay(3, 7).get(timeout=1)",
    "f = div.delay(1, 0)",
    "f.get(timeout=1, propagate=False)",  # propagate=True (the default) would raise it here
    "f.failed()",
    "print(f.traceback)",
    "r.forget()",
    "r.state",
]


def run(lines: list[str]) -> None:
    namespace: dict[str, Any] = {"__name__": "__console__"}
    for line in lines:
        print(f">>> {line}", flush=True)
        try:
            code = compile(line, "<stdin>", "eval")
        except SyntaxError:
            exec(compile(line, "<stdin>", "exec"), namespace)
            continue
        value = eval(code, namespace)
        if value is not None:
            print(repr(value), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, "")
    run(SESSION)
