"""An app's own hook observes every run in a real worker (solo, threads, prefork children),
and the app's hooks are fixed once the worker has started."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.execution.hooks import Hook, Outcome, TaskRun
from celeriac.testing import start_worker
from tests.integration.broker_envs import PROCESS


class Runtimes(Hook):
    """Records (task name, state, runtime) of every run in this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str, float]] = []

    def after(self, run: TaskRun, outcome: Outcome) -> None:
        with self.lock:
            self.seen.append((run.name, outcome.state, outcome.runtime))


class Traces(Hook):
    """Leaves a file per run (the run happens in a prefork child: memory is not shared)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def before(self, run: TaskRun) -> None:
        (self.directory / f"{run.call.id}.before").write_text(str(os.getpid()))

    def after(self, run: TaskRun, outcome: Outcome) -> None:
        (self.directory / f"{run.call.id}.after").write_text(outcome.state)


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_a_user_hook_observes_worker_runs(app: Celery, pool: str) -> None:
    runtimes = Runtimes()
    app.add_hook(runtimes)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def boom() -> None:
        raise ValueError("no")

    with start_worker(app, pool=pool, concurrency=2):
        assert add.delay(2, 3).get(timeout=15) == 5
        failed = boom.delay()
        with pytest.raises(ValueError):
            failed.get(timeout=15)
        with pytest.raises(RuntimeError, match="fixed once a worker has started"):
            app.add_hook(Runtimes())
    states = sorted((name, state) for name, state, _ in runtimes.seen)
    assert states == [(add.name, "SUCCESS"), (boom.name, "FAILURE")]
    assert all(runtime >= 0 for _, _, runtime in runtimes.seen)


@pytest.mark.slow
@pytest.mark.parametrize("broker", PROCESS, indirect=True)
def test_a_user_hook_runs_in_prefork_children(app: Celery, tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    traces.mkdir()
    app.add_hook(Traces(traces))

    @app.task
    def pid() -> int:
        return os.getpid()

    with start_worker(app, pool="prefork", concurrency=1):
        result = pid.delay()
        child = result.get(timeout=15)
    assert child != os.getpid()
    assert (traces / f"{result.id}.before").read_text() == str(child)
    assert (traces / f"{result.id}.after").read_text() == "SUCCESS"


def test_options_taken_by_no_hook_are_still_refused(app: Celery) -> None:
    @app.task
    def job() -> None:
        pass

    with pytest.raises(Exception, match="unknown option 'nonsense'"):
        job.apply_async(nonsense=1)
