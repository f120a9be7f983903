"""Type-checked by tests/unit/test_typing.py: these lines must pass mypy --strict."""

from celeriac import Celery
from celeriac.result import AsyncResult

app = Celery("typing")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(bind=True, name="typing.mult")
def mult(self: object, x: int, y: int) -> int:
    return x * y


r1: AsyncResult[int] = add.delay(1, 2)
r2: AsyncResult[int] = mult.delay(3, 4)
value: int = add(1, 2)
direct: int = mult(2, 3)
reveal_type(add.delay(1, 2))  # noqa: F821 - mypy only
