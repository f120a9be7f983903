"""A ``delay()`` message's envelope text from a stencil: the bytes the general path writes
(:func:`~celeriac.protocol.task_v2.encode`, then
:func:`~celeriac.protocol.envelope.dump_envelope`), made by filling seven values into text
that is the same for every ``delay()`` of one task from one thread.

The stencil is cut from the general path's own output: a message built with marker strings
in place of the values that change (ids, ``argsrepr``, ``kwargsrepr``, the delivery tag, the
body) is encoded as usual and split at the markers. The constant text is therefore the
general path's to the byte, whatever it writes; only the filled values are encoded here
(JSON strings, as the general path encodes them). It serves the plain case only: JSON, no
compression, no options, no user headers (the producer checks; everything else takes the
general path).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

from celeriac.protocol import serialization
from celeriac.protocol.envelope import to_envelope
from celeriac.protocol.jsonx import dumps
from celeriac.protocol.message import Message, TaskCall
from celeriac.protocol.saferepr import saferepr
from celeriac.protocol.task_v2 import REPR_MAXSIZE, _embed, _headers

#: The slots, in the order of ``Stencil.fill``'s arguments; each marker is a JSON string
#: that no real value can produce (NUL characters around a name).
_SLOTS = ("id", "root", "parent", "argsrepr", "kwargsrepr", "tag", "body")
_MARKERS = {name: f"\x00{name}\x00" for name in _SLOTS}
_ENCODED = {encode_basestring_ascii(marker): name for name, marker in _MARKERS.items()}


@dataclass(frozen=True, slots=True)
class Stencil:
    """The envelope of one task's plain send, cut at its variable values."""

    pieces: tuple[str, ...]  # constant text; a slot between each two
    slots: tuple[int, ...]  # the index in ``_SLOTS`` of each slot, in text order

    @classmethod
    def cut(
        cls,
        name: str,
        origin: str,
        properties: Mapping[str, Any],
        exchange: str,
        routing_key: str,
    ) -> Stencil:
        """The stencil of ``name`` sent with these message ``properties`` (their
        ``correlation_id`` is the task id) to ``exchange``/``routing_key``."""
        marked = TaskCall(
            name=name,
            id=_MARKERS["id"],
            root_id=_MARKERS["root"],
            parent_id=_MARKERS["parent"],
            origin=origin,
            argsrepr=_MARKERS["argsrepr"],
            kwargsrepr=_MARKERS["kwargsrepr"],
        )
        message = Message(
            b"",
            "application/json",
            "utf-8",
            _headers(marked),
            {**properties, "correlation_id": _MARKERS["id"]},
        )
        envelope = to_envelope(
            message, exchange=exchange, routing_key=routing_key, delivery_tag=_MARKERS["tag"]
        )
        envelope["body"] = _MARKERS["body"]
        text = dumps(envelope)
        pieces: list[str] = []
        slots: list[int] = []
        rest = text
        while True:
            found = [(rest.find(m), m) for m in _ENCODED if m in rest]
            if not found:
                break
            at, marker = min(found)
            pieces.append(rest[:at])
            slots.append(_SLOTS.index(_ENCODED[marker]))
            rest = rest[at + len(marker) :]
        pieces.append(rest)
        return cls(tuple(pieces), tuple(slots))

    def fill(
        self,
        task_id: str,
        root_id: str,
        parent_id: str | None,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any],
        delivery_tag: str,
    ) -> str:
        """The envelope text of this task sent with these values (``args`` as given: a list
        shows as a list in ``argsrepr``, as Celery shows it)."""
        body, _type, _encoding = serialization.dumps((tuple(args), kwargs, _embed(_PLAIN)), "json")
        values = (
            encode_basestring_ascii(task_id),
            encode_basestring_ascii(root_id),
            "null" if parent_id is None else encode_basestring_ascii(parent_id),
            encode_basestring_ascii(saferepr(args, REPR_MAXSIZE)),
            encode_basestring_ascii(saferepr(kwargs, REPR_MAXSIZE)),
            encode_basestring_ascii(delivery_tag),
            '"' + base64.b64encode(body).decode("ascii") + '"',
        )
        pieces = self.pieces
        out = [pieces[0]]
        for index, slot in enumerate(self.slots):
            out.append(values[slot])
            out.append(pieces[index + 1])
        return "".join(out)


#: A call with no callbacks, errbacks, chain or chord: the embed part of a plain body.
_PLAIN = TaskCall(name="", id="")

__all__ = ["Stencil"]
