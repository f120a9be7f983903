"""Type-checked by tests/unit/test_typing.py: mypy must reject the marked lines."""

from celeriac import Celery

app = Celery("typing")


@app.task
def add(x: int, y: int) -> int:
    return x + y


add.delay("x")  # E: wrong argument type
add.delay(1, 2, 3)  # E: too many arguments
wrong: str = add(1, 2)  # E: int is not str
