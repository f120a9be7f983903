"""A worker, or a prefork child, killed (SIGKILL) while a chord's header task runs: the
header task (acks_late) comes back, the store counts it once, and the body runs exactly
once."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, chord, states
from tests.integration.broker_envs import BrokerEnv
from tests.integration.conftest import WorkerFactory, queue_size, wait_state, wait_until


@pytest.mark.parametrize("killed", ["worker", "child"])
@pytest.mark.parametrize("broker", ["sqlite", "redis"], indirect=True)
def test_the_body_runs_once_after_the_header_task_comes_back(
    client: Celery, start_worker: WorkerFactory, broker: BrokerEnv, tmp_path: Path, killed: str
) -> None:
    options: dict[str, Any] = dict(broker.settings.get("broker_transport_options") or {})
    # Unacknowledged messages of a dead worker come back after 1 s (not the default hour).
    options.update(visibility_timeout=1.0, unacked_restore_interval=0.0)
    conf = {"broker_transport_options": options}
    client.conf.broker_transport_options = options
    pool = ["-P", "solo"] if killed == "worker" else ["-P", "prefork", "-c", "2"]
    first = start_worker(*pool, conf=conf)
    marker = tmp_path / "marker"
    slow = client.signature("tasks.once_slow", (str(marker),))  # acks_late; hangs the 1st time
    header = [client.signature("tasks.add", (1, 1)), slow, client.signature("tasks.add", (2, 2))]
    result = chord(header)(client.signature("tasks.body_once"))
    wait_until(marker.exists, "the header task to start")
    if killed == "worker":
        first.process.kill()  # no warm shutdown: nothing acknowledged or given back
        first.process.wait()
        start_worker(*pool, conf=conf)
    else:
        slow_id = result.parent.results[1].id
        wait_state(client, slow_id, states.STARTED)
        os.kill(client.backend.get_task_meta(slow_id)["result"]["pid"], signal.SIGKILL)
    assert result.get(timeout=30) == [2, "second run", 4]
    wait_until(lambda: queue_size(client) == 0, "the queue to be empty")
    assert (tmp_path / "body-runs").read_text().splitlines() == ['[2, "second run", 4]']
