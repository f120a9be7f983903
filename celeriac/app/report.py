"""``app.bugreport()`` / ``celeriac report``: what to paste into a bug report.

Celery's layout (software, platform, settings, then the settings that differ from the
defaults), with secrets masked: passwords in URLs, and the values of keys named like a key,
password, secret, token or credential.
"""

from __future__ import annotations

import platform
import pprint
import re
import sqlite3
from collections.abc import Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any

from celeriac.drivers.urls import mask_url
from celeriac.transports.schemes import scheme_of
from celeriac.utils.version import __version__

if TYPE_CHECKING:
    from celeriac.app.base import Celery

MASK = "********"
#: Celery's HIDDEN_SETTINGS, without its over-reach (``routing_key`` and ``database_*`` are
#: not secrets).
SECRET_KEY = re.compile(r"api|token|secret|pass|signature|credential|(?<!routing_)key", re.I)

#: The Celery version whose API and wire format celeriac follows.
CELERY_COMPAT = "5.7"

# The client library each broker scheme uses (its version is in the report).
_DRIVERS = {
    "redis": "redis",
    "rediss": "redis",
    "amqp": "amqp",
    "amqps": "amqp",
    "pyamqp": "amqp",
    "postgres": "psycopg",
    "postgresql": "psycopg",
}

TEMPLATE = """\
software -> celeriac:{version} (Celery {compat} API and protocol 2) py:{py}
            {driver}
platform -> system:{system} arch:{arch}
            kernel version:{kernel} imp:{imp}
app      -> {app}
settings -> transport:{transport} results:{results}

{settings}
"""


def bugreport(app: Celery) -> str:
    """The report for ``app``: versions, platform, transport, results and changed settings."""
    transport = scheme_of(app.conf.broker_url) if app.conf.broker_url else "sqlite"
    results = app.backend_url()
    return TEMPLATE.format(
        version=__version__,
        compat=CELERY_COMPAT,
        py=platform.python_version(),
        driver=_driver(transport),
        system=platform.system(),
        arch=", ".join(x for x in platform.architecture() if x),
        kernel=platform.release(),
        imp=platform.python_implementation(),
        app=f"{app.main or '__main__'}:{id(app):#x}",
        transport=transport or "unknown",
        results=mask_url(results) if results else "disabled",
        settings=humanize(app.conf.changes()),
    )


def humanize(settings: Mapping[str, Any]) -> str:
    """``key: value`` lines, sorted, secrets masked."""
    masked = censor(settings)
    return "\n".join(
        f"{key}: {pprint.pformat(value, width=60)}" for key, value in sorted(masked.items())
    )


def censor(settings: Mapping[Any, Any]) -> dict[Any, Any]:
    """A copy of ``settings`` with secret values masked, nested mappings included."""
    return {key: _censor_one(key, value) for key, value in settings.items()}


def _censor_one(key: Any, value: Any) -> Any:
    if isinstance(value, Mapping):
        return censor(value)
    if isinstance(key, str) and SECRET_KEY.search(key) and value not in (None, "", False):
        return MASK
    if isinstance(value, str) and "://" in value:
        return mask_url(value, MASK)
    if isinstance(value, (list, tuple)):
        return type(value)(_censor_one(None, item) for item in value)
    return value


def _driver(scheme: str) -> str:
    if scheme == "sqlite":
        return f"sqlite:{sqlite3.sqlite_version}"
    if scheme == "memory":
        return "memory"
    name = _DRIVERS.get(scheme)
    if name is None:
        return ""
    try:
        return f"{name}:{metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return f"{name}:not installed"


__all__ = ["MASK", "bugreport", "censor", "humanize"]
