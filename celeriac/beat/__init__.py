"""Beat: sends periodic tasks when they are due (``celeriac beat``, ``worker -B``)."""

from __future__ import annotations

from celeriac.beat.entry import ScheduleEntry
from celeriac.beat.scheduler import Scheduler
from celeriac.beat.service import Beat

__all__ = ["Beat", "ScheduleEntry", "Scheduler"]
