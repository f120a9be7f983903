"""``worker --autoscale=3,1`` with real workers: the pool grows until three tasks run at once,
shrinks after the keepalive once idle, and the ``autoscale`` control command changes its
bounds. Threads and prefork fed by the parent on the embedded SQLite default; prefork whose
children consume on Redis and RabbitMQ; threads on RabbitMQ."""

from __future__ import annotations

from pathlib import Path

import pytest

from celeriac import Celery
from tests.integration.broker_envs import BrokerEnv
from tests.integration.conftest import WorkerFactory, wait_state, wait_until


@pytest.mark.slow
@pytest.mark.parametrize(
    ("broker", "pool"),
    [
        ("sqlite", "threads"),
        ("sqlite", "prefork"),
        ("redis", "prefork"),
        ("amqp", "prefork"),
        ("amqp", "threads"),
    ],
    indirect=["broker"],
)
def test_autoscale_grows_with_load_and_shrinks_when_idle(
    start_worker: WorkerFactory,
    broker: BrokerEnv,
    client: Celery,
    tmp_path: Path,
    pool: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTOSCALE_KEEPALIVE", "1")
    worker = start_worker("-P", pool, "--autoscale=3,1", conf={"worker_prefetch_multiplier": 1})
    release = tmp_path / "release"
    running = [client.send_task("tasks.block", (str(release),)) for _ in range(3)]
    for result in running:
        wait_state(client, result.id, "STARTED")  # three at once: the pool grew from one
    assert "Scaling up" in worker.output()
    release.write_text("go")
    for result in running:
        assert result.get(timeout=30) == "released"
    wait_until(lambda: "Scaling down" in worker.output(), "the pool to shrink when idle")

    stats = client.control.inspect(timeout=5.0).stats() or {}
    assert [s["autoscaler"]["max"] for s in stats.values()] == [3]  # as Celery's stats show
    replies = client.control.autoscale(2, 2, reply=True, timeout=5.0)
    assert [next(iter(r.values())) for r in replies or []] == [{"ok": "autoscale now max=2 min=2"}]
    assert worker.stop() == 0
