"""The test suite reads its data from inside the repository, so a fresh clone runs it whole."""

from __future__ import annotations

import re
from pathlib import Path

from tests.vectors import VECTORS_DIR, vector_files

TESTS = Path(__file__).resolve().parents[1]
#: Spellings of a path that leaves the checkout: the workplace's folders, or a walk up past it.
OUTSIDE = re.compile(r"/work/|shared/reference|celery-vectors|parents\[2\]\.parent")


def test_no_test_refers_to_a_path_outside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(TESTS)}:{number}: {line.strip()}"
        for path in sorted(TESTS.rglob("*.py"))
        if path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert offenders == []


def test_the_captured_vectors_are_in_the_repository() -> None:
    assert VECTORS_DIR.is_relative_to(TESTS)
    assert len(vector_files("task_v2_*.json")) >= 17
    assert (VECTORS_DIR / "README.md").is_file()
