"""Brokers behind one seam: :class:`Transport`, and the URL table that picks one."""

from celeriac.drivers.urls import mask_url
from celeriac.transports.base import Delivery, FanoutSubscription, Transport
from celeriac.transports.memory import MemoryTransport
from celeriac.transports.schemes import TRANSPORTS, transport_from_url
from celeriac.transports.sqlite.transport import SQLiteTransport

__all__ = [
    "TRANSPORTS",
    "Delivery",
    "FanoutSubscription",
    "MemoryTransport",
    "SQLiteTransport",
    "Transport",
    "mask_url",
    "transport_from_url",
]
