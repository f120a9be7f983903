"""The canvas at Celery's import path: signatures, ``chain``, ``group``, ``chord``, ``chunks``,
``xmap`` and ``xstarmap``.

``celeriac.canvas`` hands on what its modules define (one concept each): ``signature.py``,
``chain.py``, ``group.py``, ``chord.py``, ``maps.py``.
"""

from __future__ import annotations

from celeriac.canvas.chain import chain
from celeriac.canvas.chord import chord
from celeriac.canvas.group import group
from celeriac.canvas.maps import chunks, xmap, xstarmap
from celeriac.canvas.signature import Signature, maybe_signature, signature, subtask

__all__ = [
    "Signature",
    "chain",
    "chord",
    "chunks",
    "group",
    "maybe_signature",
    "signature",
    "subtask",
    "xmap",
    "xstarmap",
]
