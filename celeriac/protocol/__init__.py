"""Celery's wire protocol: task messages, serializers, compression, kombu envelopes.

Pure functions over values; no I/O. See ``../shared/reference/celery-wire-protocol.md``.
"""

from __future__ import annotations

from celeriac.protocol import compression, envelope, jsonx, serialization, task_v2
from celeriac.protocol.compression import compress, decompress
from celeriac.protocol.envelope import dump_envelope, from_envelope, to_envelope
from celeriac.protocol.message import Message, TaskCall
from celeriac.protocol.saferepr import saferepr
from celeriac.protocol.serialization import content_types, dumps, loads
from celeriac.protocol.task_v2 import decode, encode, encode_v1, peek_headers

__all__ = [
    "Message",
    "TaskCall",
    "compress",
    "compression",
    "content_types",
    "decode",
    "decompress",
    "dump_envelope",
    "dumps",
    "encode",
    "encode_v1",
    "envelope",
    "from_envelope",
    "jsonx",
    "loads",
    "peek_headers",
    "saferepr",
    "serialization",
    "task_v2",
    "to_envelope",
]
