"""The Celery first-steps tutorial, with ``celery`` replaced by ``celeriac``.

No broker is configured, so this app uses the embedded SQLite broker and result store
(``celeriac-broker.sqlite`` and ``celeriac-results.sqlite`` in the working directory).
"""

from celeriac import Celery

app = Celery("tasks")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def mult(x: int, y: int) -> int:
    return x * y


@app.task
def div(x: int, y: int) -> float:
    return x / y  # div.delay(1, 0) fails: its result keeps the worker's traceback
