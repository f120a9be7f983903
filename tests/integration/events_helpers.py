"""A receiver in a thread feeding a cluster model, for tests that watch a worker's events."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celeriac import Celery
from celeriac.events.state import State


class Watcher:
    """Every event seen (in order) and the cluster model they built."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.state = State()
        self.lock = threading.Lock()

    def on_event(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.events.append(event)
        self.state.event(event)

    def of_type(self, type_: str, **match: Any) -> list[dict[str, Any]]:
        with self.lock:
            return [
                e
                for e in self.events
                if e["type"] == type_ and all(e.get(k) == v for k, v in match.items())
            ]


@contextmanager
def watching(app: Celery) -> Iterator[Watcher]:
    """Subscribe now (what is sent after this is seen), capture in a thread until the end."""
    watcher = Watcher()
    receiver = app.events.Receiver(app.connection(), handlers={"*": watcher.on_event})
    receiver.subscribe()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            receiver.capture(wakeup=False)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="events-watcher", daemon=True)
    thread.start()
    try:
        yield watcher
    finally:
        receiver.should_stop = True
        thread.join(10)
        receiver.close()
        receiver.connection.close()
    if failure:
        raise failure[0]
