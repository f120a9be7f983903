"""``Task.update_state``: a running task reports progress that clients read, as in Celery."""

from __future__ import annotations

import threading

import pytest

from celeriac import Celery
from celeriac.testing import start_worker
from tests.integration.conftest import wait_until


@pytest.mark.parametrize("fixture", ["memory_app", "sqlite_app"])
def test_a_running_task_reports_progress(fixture: str, request: pytest.FixtureRequest) -> None:
    app: Celery = request.getfixturevalue(fixture)
    release = threading.Event()

    @app.task(bind=True)
    def crunch(self, total: int) -> int:  # type: ignore[no-untyped-def]
        self.update_state(state="PROGRESS", meta={"done": 1, "total": total})
        release.wait(30)
        return total

    with start_worker(app, pool="threads", concurrency=1):
        result = crunch.delay(3)
        wait_until(lambda: result.state == "PROGRESS", "the PROGRESS state")
        assert result.info == {"done": 1, "total": 3}
        release.set()
        assert result.get(timeout=15) == 3
        assert result.state == "SUCCESS"


def test_update_state_outside_a_task_names_what_is_missing(memory_app: Celery) -> None:
    @memory_app.task
    def noop() -> None:
        return None

    with pytest.raises(ValueError, match="pass task_id="):
        noop.update_state(state="PROGRESS")
    with pytest.raises(ValueError, match="give the state"):
        noop.update_state(task_id="abc")
    noop.update_state(task_id="abc", state="PROGRESS", meta={"step": 2})
    assert memory_app.AsyncResult("abc").info == {"step": 2}
