"""Fixtures for tests that compare celeriac's bytes with bytes captured from real Celery."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

#: /work/main/tests/wire/conftest.py -> /work/shared/reference/celery-vectors
VECTORS_DIR = Path(__file__).resolve().parents[2].parent / "shared/reference/celery-vectors"


@pytest.fixture
def load_vector() -> Callable[[str], dict[str, Any]]:
    """Load ``<name>.json`` from the shared vectors, skipping when they are not available."""

    def load(name: str) -> dict[str, Any]:
        path = VECTORS_DIR / f"{name}.json"
        if not path.is_file():
            pytest.skip(f"Celery wire vectors not available ({path} is missing)")
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    return load
