"""Events as lines of text, as ``celery events --dump`` prints them."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

#: Task names remembered to print them beside later events of the same task.
NAMES_KEPT = 1000
_HUMAN = {
    "worker-offline": "shutdown",
    "worker-online": "started",
    "worker-heartbeat": "heartbeat",
}


def humanize_type(type_: str) -> str:
    """``worker-online`` -> ``started``; ``task-succeeded`` -> ``task succeeded``."""
    return _HUMAN.get(type_, type_.lower().replace("-", " "))


class Dumper:
    """``Dumper(print).on_event(event)``: one line per event."""

    def __init__(self, say: Callable[[str], Any]) -> None:
        self.say = say
        self._names: OrderedDict[str, str] = OrderedDict()

    def on_event(self, event: dict[str, Any]) -> None:
        ev = dict(event)
        ev.pop("local_received", None)
        stamp = datetime.fromtimestamp(float(ev.pop("timestamp", 0.0)), timezone.utc)
        timestamp = stamp.replace(tzinfo=None).isoformat(sep=" ")
        type_ = str(ev.pop("type", "")).lower()
        hostname = ev.pop("hostname", "")
        task = ""
        if type_.startswith("task-"):
            uuid = str(ev.pop("uuid", ""))
            if type_ in ("task-received", "task-sent"):
                task = (
                    f"{ev.pop('name', '')}({uuid}) args={ev.pop('args', '')} "
                    f"kwargs={ev.pop('kwargs', '')}"
                )
                self._names[uuid] = task
                while len(self._names) > NAMES_KEPT:
                    self._names.popitem(last=False)
            else:
                task = self._names.get(uuid, uuid)
        fields = ", ".join(f"{key}={ev[key]}" for key in sorted(ev))
        sep = ":" if fields or task else ""
        parts = [f"{hostname} [{timestamp}] {humanize_type(type_)}{sep}", task, fields]
        self.say(" ".join(p for p in parts if p))


__all__ = ["Dumper", "humanize_type"]
