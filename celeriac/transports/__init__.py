"""Brokers behind one seam: :class:`Transport`, and the URL table that picks one."""

from celeriac.transports.base import Delivery, FanoutSubscription, Transport
from celeriac.transports.memory import MemoryTransport
from celeriac.transports.sqlite import SQLiteTransport
from celeriac.transports.urls import TRANSPORTS, mask_url, transport_from_url

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
