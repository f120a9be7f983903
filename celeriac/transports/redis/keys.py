"""kombu 5.7's Redis keyspace: key names, priority lists, binding members, fanout channels.

Pure functions over the transport options, so the wire tests can check every name against
the captured vectors without a server.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

from celeriac.exceptions import ImproperlyConfigured

SEP = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
BINDING = "_kombu.binding."
BINDING_PERMANENT = "_kombu.binding_permanent."
UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"
UNACKED_MUTEX = "unacked_mutex"
#: celeriac's own: messages parked until their ETA, one sorted set per queue (score = due).
DELAYED = "_celeriac.delayed."
_TOPIC_WORDS = {"*": r"[^\.]+", "#": r".*?"}


class Keyspace:
    """Key and channel names for one set of transport options and one database."""

    def __init__(self, options: Mapping[str, Any], db: int) -> None:
        self.prefix = str(options.get("global_keyprefix") or "")
        self.sep = str(options.get("sep") or SEP)
        steps = options.get("priority_steps") or PRIORITY_STEPS
        self.steps: tuple[int, ...] = tuple(sorted(int(s) for s in steps))
        if not self.steps or self.steps[0] != 0:
            raise ImproperlyConfigured(f"priority_steps must start with 0, got {list(steps)!r}")
        self.unacked = self.prefix + str(options.get("unacked_key") or UNACKED)
        self.unacked_index = self.prefix + str(options.get("unacked_index_key") or UNACKED_INDEX)
        self.unacked_mutex = self.prefix + str(options.get("unacked_mutex_key") or UNACKED_MUTEX)
        fanout_prefix = options.get("fanout_prefix", True)
        if isinstance(fanout_prefix, str):
            self.fanout = fanout_prefix
        else:
            self.fanout = f"/{db}." if fanout_prefix else ""
        self.fanout_patterns = bool(options.get("fanout_patterns", True))

    # -- queues ----------------------------------------------------------------------------
    def step_of(self, priority: Any) -> int:
        """kombu's mapping: clamp to 0..9 (non-integers are 0), then the largest step below."""
        try:
            value = max(min(int(priority), 9), 0)
        except (TypeError, ValueError):
            value = 0
        return self.steps[bisect.bisect(self.steps, value) - 1]

    def queue_key(self, queue: str, step: int = 0) -> str:
        """The list holding ``queue``'s messages of one priority step (``Q`` or ``Q<sep><s>``)."""
        return f"{self.prefix}{queue}{self.sep}{step}" if step else self.prefix + queue

    def all_queue_keys(self, queue: str) -> list[str]:
        return [self.queue_key(queue, step) for step in self.steps]

    def pop_order(self, queues: Sequence[str]) -> list[str]:
        """BRPOP's key order: every queue at step 0, then every queue at the next step..."""
        return [self.queue_key(q, step) for step in self.steps for q in queues]

    def queue_of(self, key: str) -> str:
        """The queue name of a list key (prefix and priority suffix removed)."""
        name = key[len(self.prefix) :] if self.prefix and key.startswith(self.prefix) else key
        head, sep, _step = name.rpartition(self.sep)
        return head if sep else name

    def delayed_key(self, queue: str) -> str:
        return f"{self.prefix}{DELAYED}{queue}"

    # -- bindings --------------------------------------------------------------------------
    def binding_key(self, exchange: str) -> str:
        return f"{self.prefix}{BINDING}{exchange}"

    def permanent_binding_key(self, exchange: str) -> str:
        return f"{self.prefix}{BINDING_PERMANENT}{exchange}"

    def binding_member(self, exchange_type: str, routing_key: str, queue: str) -> str:
        """``routing_key<sep>pattern<sep>queue``; the pattern is a regex for topic bindings."""
        pattern = topic_regex(routing_key) if exchange_type == "topic" else ""
        return self.sep.join([routing_key or "", pattern, queue or ""])

    def parse_member(self, member: str | bytes) -> tuple[str, str]:
        """A binding member -> ``(routing_key, queue)``."""
        text = member.decode() if isinstance(member, bytes) else member
        parts = text.split(self.sep)
        return (parts[0], parts[-1]) if len(parts) >= 3 else ("", parts[-1])

    # -- fanout ----------------------------------------------------------------------------
    def fanout_channel(self, exchange: str, routing_key: str = "") -> str:
        """``/<db>.<exchange>[/<routing_key>]`` with the global prefix (kombu's PUBLISH)."""
        if routing_key and self.fanout_patterns:
            return f"{self.prefix}{self.fanout}{exchange}/{routing_key}"
        return f"{self.prefix}{self.fanout}{exchange}"

    def fanout_patterns_for(self, exchange: str, binding_key: str) -> list[str]:
        """PSUBSCRIBE patterns for a binding; ``#`` also hears messages without a key."""
        key = binding_key.replace("#", "*") if self.fanout_patterns else ""
        patterns = [self.fanout_channel(exchange, key)]
        if binding_key in ("#", "*") or not self.fanout_patterns:
            patterns.append(self.fanout_channel(exchange))
        return list(dict.fromkeys(patterns))

    def split_channel(self, channel: str) -> tuple[str, str]:
        """A fanout channel -> ``(exchange, routing_key)``."""
        rest = channel[len(self.prefix) :] if channel.startswith(self.prefix) else channel
        if self.fanout and rest.startswith(self.fanout):
            rest = rest[len(self.fanout) :]
        exchange, _slash, routing_key = rest.partition("/")
        return exchange, routing_key


def topic_regex(routing_key: str) -> str:
    """kombu's TopicExchange.key_to_pattern: words joined by ``\\.``, anchored."""
    escaped = "".join(c if c.isalnum() or c in ".#*" else "\\" + c for c in routing_key)
    words = [_TOPIC_WORDS.get(word, word) for word in escaped.split(".")]
    return "^" + r"\.".join(words) + "$"


__all__ = ["PRIORITY_STEPS", "SEP", "Keyspace", "topic_regex"]
