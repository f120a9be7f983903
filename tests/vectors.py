"""The messages captured from real Celery 5.7 (tests/wire/vectors/), the one path to them.

They are the ground truth for wire tests: every byte in them came from a real Celery client or
worker (see tests/wire/vectors/README.md). They live in the repository, so a test never skips
for want of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS_DIR = Path(__file__).resolve().parent / "wire" / "vectors"


def vector_path(name: str) -> Path:
    """The file of vector ``name`` (``task_v2_delay`` or ``task_v2_delay.json``)."""
    filename = name if name.endswith(".json") else f"{name}.json"
    path = VECTORS_DIR / filename
    if not path.is_file():
        raise FileNotFoundError(f"no captured Celery vector {filename!r} in {VECTORS_DIR}")
    return path


def load_vector(name: str) -> dict[str, Any]:
    """The parsed contents of vector ``name``."""
    data: dict[str, Any] = json.loads(vector_path(name).read_text(encoding="utf-8"))
    return data


def vector_files(pattern: str) -> list[Path]:
    """The vector files whose names match ``pattern`` (a glob), sorted; never empty."""
    paths = sorted(VECTORS_DIR.glob(pattern))
    if not paths:
        raise FileNotFoundError(f"no captured Celery vector matches {pattern!r} in {VECTORS_DIR}")
    return paths
