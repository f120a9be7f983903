"""The worker's signal handler takes no lock: a signal may interrupt the main thread anywhere,
including a first handler that is still running."""

from __future__ import annotations

import signal

from celeriac import Celery
from celeriac.worker.worker import Worker


def test_a_handler_interrupting_a_stop_in_progress_does_not_block() -> None:
    app = Celery("signals", broker="memory://signals", set_as_current=False)
    worker = Worker(app, pool="solo", install_signal_handlers=False, without_banner=True)
    with worker._stop_lock:  # as if the signal landed while the main thread was in stop()
        worker._on_signal(signal.SIGTERM, None)
        worker._on_signal(signal.SIGTERM, None)
        worker._on_signal(signal.SIGQUIT, None)
    requests = [worker._stop_requests.get_nowait() for _ in range(3)]
    assert requests == [True, False, False]  # warm first; the second signal and SIGQUIT cold
    app.close()
