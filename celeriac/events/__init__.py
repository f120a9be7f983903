"""Events at Celery's path (``celery.events``): the dispatcher that sends them, the receiver
that reads them, and the in-memory cluster model (:mod:`celeriac.events.state`)."""

from celeriac.events.dispatcher import EventDispatcher
from celeriac.events.event import Event, get_exchange, group_from
from celeriac.events.receiver import EventReceiver

__all__ = ["Event", "EventDispatcher", "EventReceiver", "get_exchange", "group_from"]
