"""The fault suite's worker app: one task that writes each run of its task id to a ledger.

Settings come as JSON in ``$FAULTS_CONF``; the ledger is the file ``$FAULTS_LEDGER``. Each run
appends ``S <id> <pid> <time>`` when it starts and ``E <id> <pid> <time>`` when it finishes,
with one ``write(2)`` on an ``O_APPEND`` descriptor each, so lines of concurrent processes never
mix and a process killed mid-task leaves whole lines only.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from celeriac import Celery

app = Celery("faults")
app.conf.update(json.loads(os.environ.get("FAULTS_CONF") or "{}"))

_ledger: list[int] = []


def _mark(kind: str, task_id: str) -> None:
    if not _ledger:  # opened per process (a prefork child opens its own)
        _ledger.append(os.open(os.environ["FAULTS_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT))
    os.write(_ledger[0], f"{kind} {task_id} {os.getpid()} {time.time():.6f}\n".encode())


@app.task(name="faults.record", bind=True)
def record(self: Any, number: int, seconds: float = 0.0) -> int:
    """Run for ``seconds`` and return ``number``; the ledger holds every run."""
    _mark("S", self.request.id)
    if seconds:
        time.sleep(seconds)
    _mark("E", self.request.id)
    return number
