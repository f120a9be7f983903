"""An app for the CLI integration tests: the embedded SQLite broker in the working directory."""

from __future__ import annotations

from celeriac import Celery

app = Celery("roundtrip_app")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def fail() -> None:
    raise ValueError("expected failure")
