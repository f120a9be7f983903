"""Task messages: :class:`TaskCall` <-> :class:`Message`, protocol 2 (and 1, and hybrid).

``encode`` writes exactly what Celery 5.7's ``as_task_v2`` + kombu's ``Producer.publish``
write: the same header keys in the same order, the body ``(args, kwargs, embed)``, the
``compression`` header last. ``decode`` reads protocol 2, protocol 1 (everything in a body
dict, empty headers) and the "hybrid" form (v2 headers with a v1 body dict), as Celery's
worker does. Nothing here does I/O.
"""

from __future__ import annotations

import socket
from collections.abc import Collection, Mapping
from datetime import datetime, timezone
from typing import Any

from celeriac.exceptions import DecodeError
from celeriac.protocol import serialization
from celeriac.protocol.compression import compress, decompress
from celeriac.protocol.message import Message, TaskCall
from celeriac.protocol.saferepr import saferepr
from celeriac.utils import forksafe

#: Celery's ``argsrepr_maxsize`` / ``kwargsrepr_maxsize``.
REPR_MAXSIZE = 1024

#: Protocol 2 headers, in the order Celery writes them.
HEADER_ORDER = (
    "lang", "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries",
    "timelimit", "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result",
    "replaced_task_nesting", "stamped_headers", "stamps",
)  # fmt: skip
_NOT_EXTRA = frozenset((*HEADER_ORDER, "compression"))
#: Body keys that protocol 1 / hybrid messages carry outside the header set.
_V1_ONLY = frozenset(
    {"args", "kwargs", "utc", "taskset", "callbacks", "errbacks", "chord", "chain"}
)

#: Content types ``peek_headers`` may decode: never pickle just to name a rejected message.
_PEEK_ACCEPT = ("application/json", "application/x-msgpack", "application/x-yaml")


def anon_nodename() -> str:
    """Celery's origin for clients: ``gen<pid>@<hostname>``."""
    return f"gen{forksafe.pid()}@{socket.gethostname()}"


# -- encoding ------------------------------------------------------------------------------


def _iso(value: datetime | str | None) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _headers(call: TaskCall) -> dict[str, Any]:
    args = call.args if type(call.args) is tuple else tuple(call.args)
    kwargs = call.kwargs if type(call.kwargs) is dict else dict(call.kwargs)
    hard, soft = call.timelimit
    headers: dict[str, Any] = {
        "lang": "py",
        "task": call.name,
        "id": call.id,
        "shadow": call.shadow,
        "eta": _iso(call.eta),
        "expires": _iso(call.expires),
        "group": call.group_id,
        "group_index": call.group_index,
        "retries": call.retries,
        "timelimit": [hard, soft],
        "root_id": call.root_id or call.id,
        "parent_id": call.parent_id,
        "argsrepr": saferepr(args, REPR_MAXSIZE) if call.argsrepr is None else call.argsrepr,
        "kwargsrepr": (
            saferepr(kwargs, REPR_MAXSIZE) if call.kwargsrepr is None else call.kwargsrepr
        ),
        "origin": call.origin or anon_nodename(),
        "ignore_result": call.ignore_result,
        "replaced_task_nesting": call.replaced_task_nesting,
        "stamped_headers": call.stamped_headers,
        "stamps": dict(call.stamps),
    }
    # User headers merge at top level and win, as in Celery's send_task_message.
    headers.update(call.extra_headers)
    return headers


def _embed(call: TaskCall) -> dict[str, Any]:
    return {
        "callbacks": call.callbacks,
        "errbacks": call.errbacks,
        "chain": call.chain,
        "chord": call.chord,
    }


def _build(
    body: Any,
    headers: dict[str, Any],
    serializer: str,
    compression: str | None,
    properties: Mapping[str, Any] | None,
) -> Message:
    data, content_type, content_encoding = serialization.dumps(body, serializer)
    if compression:
        data, headers["compression"] = compress(data, compression)
    return Message(
        body=data,
        content_type=content_type,
        content_encoding=content_encoding,
        headers=headers,
        properties=dict(properties or {}),
    )


def encode(
    call: TaskCall,
    *,
    serializer: str = "json",
    compression: str | None = None,
    properties: Mapping[str, Any] | None = None,
) -> Message:
    """Build the protocol 2 message Celery would publish for ``call``.

    ``properties`` (correlation_id, reply_to, delivery_mode, priority, expiration) are
    copied unchanged. The body is a tuple, so pickle writes the same bytes as Celery.
    """
    args = call.args if type(call.args) is tuple else tuple(call.args)
    kwargs = call.kwargs if type(call.kwargs) is dict else dict(call.kwargs)
    return _build((args, kwargs, _embed(call)), _headers(call), serializer, compression, properties)


def encode_v1(
    call: TaskCall,
    *,
    serializer: str = "json",
    compression: str | None = None,
    properties: Mapping[str, Any] | None = None,
) -> Message:
    """Build a protocol 1 message (``task_protocol = 1``): everything in the body dict."""
    hard, soft = call.timelimit
    body = {
        "task": call.name,
        "id": call.id,
        "args": tuple(call.args),
        "kwargs": dict(call.kwargs),
        "group": call.group_id,
        "group_index": call.group_index,
        "retries": call.retries,
        "eta": _iso(call.eta),
        "expires": _iso(call.expires),
        "utc": True,
        "callbacks": call.callbacks,
        "errbacks": call.errbacks,
        "timelimit": (hard, soft),
        "taskset": call.group_id,
        "chord": call.chord,
    }
    return _build(body, dict(call.extra_headers), serializer, compression, properties)


# -- decoding ------------------------------------------------------------------------------


def _load_body(message: Message, accept: Collection[str] | None) -> Any:
    data = message.body
    compression = (message.headers or {}).get("compression")
    if compression:
        data = decompress(data, compression)
    return serialization.loads(data, message.content_type, message.content_encoding, accept=accept)


def _parse_datetime(value: Any, what: str, task_id: str, utc: bool) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value)
        try:
            # Python 3.10's fromisoformat does not take a trailing "Z".
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError as exc:
            raise DecodeError(f"Task {task_id}: invalid {what} {value!r}: {exc}") from exc
    if parsed.tzinfo is None:
        # Naive means UTC (protocol 1 with utc=False means the sender's local time).
        parsed = parsed.replace(tzinfo=timezone.utc) if utc else parsed.astimezone()
    return parsed


def _opt_str(fields: Mapping[str, Any], key: str) -> str | None:
    value = fields.get(key)
    return None if value is None else str(value)


def _int(fields: Mapping[str, Any], key: str, task_id: str, default: int | None) -> Any:
    value = fields.get(key)
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"Task {task_id}: header {key!r} is not an integer: {value!r}") from exc


def _timelimit(value: Any, task_id: str) -> tuple[Any, Any]:
    if value is None:
        return (None, None)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (value[0], value[1])
    raise DecodeError(f"Task {task_id}: 'timelimit' must be [hard, soft], got {value!r}")


def _identity(fields: Mapping[str, Any]) -> tuple[str, str]:
    name, task_id = fields.get("task"), fields.get("id")
    if not isinstance(name, str) or not name:
        raise DecodeError(f"Task message {task_id!r} has no task name (the 'task' field)")
    if not isinstance(task_id, str) or not task_id:
        raise DecodeError(f"Task message for {name!r} has no task id (the 'id' field)")
    return name, task_id


def _check_args(args: Any, kwargs: Any, task_id: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if not isinstance(args, (list, tuple)):
        raise DecodeError(f"Task {task_id}: args must be a list, got {type(args).__name__}")
    if not isinstance(kwargs, Mapping):
        raise DecodeError(f"Task {task_id}: kwargs must be a mapping, got {type(kwargs).__name__}")
    return tuple(args), dict(kwargs)


def _build_call(
    fields: Mapping[str, Any],
    args: Any,
    kwargs: Any,
    embed: Mapping[str, Any],
    extra: dict[str, Any],
    *,
    utc: bool = True,
) -> TaskCall:
    name, task_id = _identity(fields)
    args, kwargs = _check_args(args, kwargs, task_id)
    if "ignore_result" in fields and fields["ignore_result"] is None:
        # send_task writes null; the bool field cannot hold it, the header override can.
        extra["ignore_result"] = None
    return TaskCall(
        name=name,
        id=task_id,
        args=args,
        kwargs=kwargs,
        eta=_parse_datetime(fields.get("eta"), "eta", task_id, utc),
        expires=_parse_datetime(fields.get("expires"), "expires", task_id, utc),
        retries=_int(fields, "retries", task_id, 0),
        root_id=_opt_str(fields, "root_id"),
        parent_id=_opt_str(fields, "parent_id"),
        group_id=_opt_str(fields, "group"),
        group_index=_int(fields, "group_index", task_id, None),
        shadow=_opt_str(fields, "shadow"),
        timelimit=_timelimit(fields.get("timelimit"), task_id),
        ignore_result=bool(fields.get("ignore_result")),
        origin=_opt_str(fields, "origin"),
        argsrepr=_opt_str(fields, "argsrepr"),
        kwargsrepr=_opt_str(fields, "kwargsrepr"),
        replaced_task_nesting=_int(fields, "replaced_task_nesting", task_id, 0),
        stamped_headers=fields.get("stamped_headers"),
        stamps=dict(fields.get("stamps") or {}),
        callbacks=embed.get("callbacks"),
        errbacks=embed.get("errbacks"),
        chain=embed.get("chain"),
        chord=embed.get("chord"),
        extra_headers=extra,
    )


def _extra(headers: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in headers.items() if k not in _NOT_EXTRA}


def _decode_v2(headers: Mapping[str, Any], payload: Any) -> TaskCall:
    if not isinstance(payload, (list, tuple)) or len(payload) not in (2, 3):
        raise DecodeError(
            f"Task {headers.get('id')!r}: protocol 2 body must be [args, kwargs, embed], "
            f"got {type(payload).__name__}"
        )
    embed = payload[2] if len(payload) == 3 and payload[2] is not None else {}
    if not isinstance(embed, Mapping):
        raise DecodeError(f"Task {headers.get('id')!r}: embed must be a mapping")
    return _build_call(headers, payload[0], payload[1], embed, _extra(headers))


def _decode_v1(headers: Mapping[str, Any], body: Mapping[str, Any]) -> TaskCall:
    """Protocol 1 (empty headers) or hybrid (v2 headers over a v1 body): headers win."""
    fields = {k: v for k, v in body.items() if k not in _V1_ONLY}
    if body.get("taskset") is not None:
        fields["group"] = body["taskset"]
    fields.update(headers)
    args, kwargs = body.get("args", ()), body.get("kwargs", {})
    if "argsrepr" not in fields:
        fields["argsrepr"] = saferepr(args, REPR_MAXSIZE)
        fields["kwargsrepr"] = saferepr(kwargs, REPR_MAXSIZE)
    embed = {key: body.get(key) for key in ("callbacks", "errbacks", "chord")}
    return _build_call(fields, args, kwargs, embed, _extra(headers), utc=body.get("utc", True))


def decode(message: Message, *, accept: Collection[str] | None) -> TaskCall:
    """Read a task message of protocol 2, 1 or hybrid into a :class:`TaskCall`.

    Raises:
        ContentDisallowed: the body's content type is not in ``accept``.
        DecodeError: malformed body, missing task name or id, bad eta/expires.
    """
    headers = message.headers or {}
    payload = _load_body(message, accept)
    if isinstance(payload, Mapping) and ("task" not in headers or "args" in payload):
        return _decode_v1(headers, payload)
    if "task" not in headers:
        raise DecodeError(
            "Message has no 'task' header and its body is not a protocol 1 task dict: "
            "cannot tell which task it is for"
        )
    return _decode_v2(headers, payload)


def peek_headers(message: Message) -> tuple[str | None, str | None]:
    """(task name, task id) for logging, without deserializing a protocol 2 body.

    Never raises: a protocol 1 body is decoded only if it is JSON, msgpack or YAML. The id
    falls back to the ``id`` header, then to the ``correlation_id`` property (Celery sets it
    to the task id), so a message whose body cannot be read is still logged with its id.
    """
    headers = message.headers or {}
    known_id = _opt_str(headers, "id") or _opt_str(message.properties or {}, "correlation_id")
    if "task" in headers:
        return _opt_str(headers, "task"), known_id
    try:
        body = _load_body(message, _PEEK_ACCEPT)
    except Exception:  # the message is already known to be bad; this is best effort
        return None, known_id
    if not isinstance(body, Mapping):
        return None, known_id
    return _opt_str(body, "task"), _opt_str(body, "id") or known_id


__all__ = ["HEADER_ORDER", "anon_nodename", "decode", "encode", "encode_v1", "peek_headers"]
