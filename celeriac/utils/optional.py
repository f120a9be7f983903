"""Brokers and result backends whose client library is an optional extra."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from celeriac.exceptions import ImproperlyConfigured

_T = TypeVar("_T")


def needs(package: str, extra: str, what: str, load: Callable[[], _T]) -> Callable[[], _T]:
    """Wrap ``load`` (which imports a module of celeriac's) so that a missing ``package``
    becomes a one-line error naming the extra to install, instead of an ImportError."""

    def loader() -> _T:
        try:
            return load()
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] != package:
                raise
            raise ImproperlyConfigured(
                f"{what} needs the {package!r} package: pip install 'celeriac[{extra}]'"
            ) from exc

    return loader


__all__ = ["needs"]
