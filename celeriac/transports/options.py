"""Reading a broker's transport options: one reader for every broker.

The options are ``broker_transport_options`` merged with the ``broker_*`` settings a
transport reads, under their own names (``Settings.broker_options``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celeriac.exceptions import ImproperlyConfigured


def option(options: Mapping[str, Any], *names: str, default: Any = None) -> Any:
    """The first of ``names`` set (not None) in ``options``, else ``default``."""
    for name in names:
        value = options.get(name)
        if value is not None:
            return value
    return default


def number(options: Mapping[str, Any], name: str, default: float) -> float:
    """A duration or interval option: a number, never negative, else a one-line error."""
    value = options.get(name, default)
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"Transport option {name}={value!r} is not a number") from None
    if result < 0:
        raise ImproperlyConfigured(f"Transport option {name}={value!r} must not be negative")
    return result


__all__ = ["number", "option"]
