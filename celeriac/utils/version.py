"""celeriac's version, in one place every layer may read (``celeriac.__version__`` too)."""

from __future__ import annotations

__version__ = "0.1.0"
VERSION = tuple(int(p) for p in __version__.split("."))

__all__ = ["VERSION", "__version__"]
