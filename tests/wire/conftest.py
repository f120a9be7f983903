"""Fixtures for tests that compare celeriac's bytes with bytes captured from real Celery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests import vectors


@pytest.fixture
def load_vector() -> Callable[[str], dict[str, Any]]:
    """Load ``<name>.json`` from the captured vectors (tests/wire/vectors/)."""
    return vectors.load_vector
