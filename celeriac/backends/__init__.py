"""Result backends: the ResultBackend seam and its implementations."""

from celeriac.backends.base import ResultBackend
from celeriac.backends.disabled import DisabledBackend
from celeriac.backends.memory import MemoryBackend
from celeriac.backends.schemes import BACKENDS, backend_from_url
from celeriac.backends.sqlite import SQLiteBackend

__all__ = [
    "BACKENDS",
    "DisabledBackend",
    "MemoryBackend",
    "ResultBackend",
    "SQLiteBackend",
    "backend_from_url",
]
