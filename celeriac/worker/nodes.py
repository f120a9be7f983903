"""``celeriac multi``'s node names and options, expanded exactly as Celery's ``celery multi``.

``multi start w1 w2 -A proj -c 3 -c:w2 8 --pidfile=%n.pid``: the positional arguments name
the nodes (one number ``3`` is a range: ``celery1`` .. ``celery3``); ``-opt:<ns> value``
applies to some nodes only, where ``<ns>`` is a node name, an index from 1, a list
(``1,2``) or, with a range, a span (``1-3``). Short options take the next argument unless it
starts with ``-``; long options take ``--opt=value``. In the options, ``%n`` is the node's
short name, ``%h`` its full node name, ``%d`` its host, ``%N`` the short name, ``%p`` the node
name; ``%i`` and ``%I`` are left for the worker (process index). Everything after ``--`` is
passed through.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from celeriac.worker.worker import host_format

#: Options of the ``celeriac`` command itself: they go before ``worker``.
GLOBAL_OPTIONS = frozenset(
    (
        "-A",
        "--app",
        "-b",
        "--broker",
        "--result-backend",
        "--loader",
        "--config",
        "--workdir",
        "-C",
        "--no-color",
        "-q",
        "--quiet",
    )
)

DEFAULT_PIDFILE = "/var/run/celery/%n.pid"
DEFAULT_LOGFILE = "/var/log/celery/%n%I.log"

_FORMAT = re.compile(r"%(\w)")

Options = dict[str, str | None]


def simple_format(text: str, keys: Mapping[str, str]) -> str:
    """Replace ``%x`` by ``keys['x']``; an unknown key is an error (as in Celery)."""

    def resolve(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in keys:
            raise ValueError(f"Unknown format %{key} in {text!r}")
        return keys[key]

    return _FORMAT.sub(resolve, text)


def _host_keys(host: str) -> dict[str, str]:
    short, _, domain = host.partition(".")
    return {"h": host, "n": short, "d": domain, "i": "0", "I": ""}


@dataclass
class ParsedArgs:
    """The command line of ``multi``, split: node names, options, per-node options."""

    values: list[str] = field(default_factory=list)
    options: Options = field(default_factory=dict)
    namespaces: dict[str, Options] = field(default_factory=dict)
    passthrough: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)


def parse_args(args: list[str]) -> ParsedArgs:
    """Celery's NamespacedOptionParser."""
    parsed = ParsedArgs(args=list(args))
    rargs = [arg for arg in args if arg]
    pos = 0
    while pos < len(rargs):
        arg = rargs[pos]
        if arg == "--":
            parsed.passthrough = rargs[pos:]
            break
        if arg.startswith("--"):
            name, sep, value = arg[2:].partition("=")
            _add_option(parsed, "--", name, value if sep else None)
        elif arg.startswith("-") and len(arg) > 1:
            value = None
            if pos + 1 < len(rargs) and not rargs[pos + 1].startswith("-"):
                value = rargs[pos + 1]
                pos += 1
            _add_option(parsed, "-", arg[1:], value)
        else:
            parsed.values.append(arg)
        pos += 1
    return parsed


def _add_option(parsed: ParsedArgs, prefix: str, name: str, value: str | None) -> None:
    dest = parsed.options
    if ":" in name:
        name, ns = name.split(":", 1)
        dest = parsed.namespaces.setdefault(ns, {})
    dest[prefix + name] = value


@dataclass(eq=False)
class Node:
    """One worker of the cluster: its node name, options and the command that starts it."""

    name: str
    options: Options
    passthrough: list[str]
    global_options: Options = field(default_factory=dict)

    @property
    def shortname(self) -> str:
        return self.name.partition("@")[0]

    @property
    def host(self) -> str:
        return self.name.partition("@")[2]

    def expand(self, text: str) -> str:
        """Celery's node expansion in multi (``%i`` / ``%I`` stay for the worker)."""
        keys = _host_keys(self.host)
        keys.update(h=self.name, n=self.shortname, d=self.host, N=self.shortname, p=self.name)
        keys.update(i="%i", I="%I")
        return simple_format(text, keys)

    def option(self, *names: str) -> str | None:
        for name in names:
            if name in self.options:
                return self.options[name]
        return None

    @property
    def pidfile(self) -> str:
        """The pid file as the worker will write it (``%i``/``%I`` expanded as it does)."""
        text = self.expand(self.option("--pidfile", "-p") or DEFAULT_PIDFILE)
        return os.path.expanduser(text.replace("%i", "0").replace("%I", ""))

    @property
    def logfile(self) -> str:
        text = self.expand(self.option("--logfile", "-f") or DEFAULT_LOGFILE)
        return os.path.expanduser(text.replace("%i", "0").replace("%I", ""))

    @property
    def executable(self) -> str:
        return self.option("--executable") or sys.executable

    @property
    def argv(self) -> list[str]:
        """The arguments after ``python``: ``-m celeriac <global options> worker --detach ...``."""
        head = ["-m", "celeriac"]
        for opt, value in self.global_options.items():
            head.extend(_format(opt, None if value is None else self._expand_opt(opt, value)))
        tail = ["worker", "--detach"]
        for opt, value in self.options.items():
            tail.extend(_format(opt, None if value is None else self._expand_opt(opt, value)))
        return [*head, *tail, *self.passthrough]

    def _expand_opt(self, opt: str, value: str) -> str:
        expanded = self.expand(value)
        if opt in ("--pidfile", "-p", "--logfile", "-f", "--workdir"):
            return os.path.expanduser(expanded)
        return expanded

    @property
    def command(self) -> list[str]:
        return [self.executable, *self.argv]


def _format(opt: str, value: str | None) -> list[str]:
    if not value:
        return [opt]
    if opt.startswith("--"):
        return [f"{opt}={value}"]
    return [opt, value]


def build_nodename(name: str, prefix: str, suffix: str) -> tuple[str, str]:
    """(the namespace of its options, the full node name) of one node argument."""
    if "@" in name:
        nodename = host_format(name)
        return nodename.partition("@")[0], nodename
    shortname = f"{prefix}{name}"
    return name, host_format(f"{shortname}@{suffix}")


def nodes_from_args(
    args: list[str],
    *,
    global_options: Options | None = None,
    hostname: Callable[[], str] = socket.gethostname,
) -> tuple[ParsedArgs, list[Node]]:
    """Celery's MultiParser: the nodes that ``args`` name, each with its own options."""
    parsed = parse_args(args)
    names = list(parsed.values)
    options = dict(parsed.options)
    host = options.pop("--hostname", None) or options.pop("-n", None) or hostname()
    options.pop("-n", None)
    prefix = options.pop("--prefix", None) or ""
    suffix = options.pop("--suffix", None) or host
    if suffix in ('""', "''"):
        suffix = ""
    range_prefix = options.pop("--range-prefix", None) or "celery"
    ranges = len(names) == 1 and names[0].isdigit()
    if ranges:
        names = [str(n) for n in range(1, int(names[0]) + 1)]
        prefix = range_prefix
        _update_ns_opts(parsed, names)
        _update_ns_ranges(parsed, ranges=True)
    else:
        _update_ns_ranges(parsed, ranges=False)
        _update_ns_opts(parsed, names)
    globals_: Options = dict(global_options or {})
    for opt in list(options):
        if opt in GLOBAL_OPTIONS:
            globals_[opt] = options.pop(opt)
    nodes = []
    for name in names:
        namespace, nodename = build_nodename(name, prefix, suffix)
        if nodename in parsed.namespaces:
            namespace = nodename
        merged = {**options, **parsed.namespaces.get(namespace, {})}
        node_globals = dict(globals_)
        for opt in list(merged):
            if opt in GLOBAL_OPTIONS:
                node_globals[opt] = merged.pop(opt)
        merged["-n"] = nodename
        if "-p" not in merged:
            merged.setdefault("--pidfile", DEFAULT_PIDFILE)
        if "-f" not in merged:
            merged.setdefault("--logfile", DEFAULT_LOGFILE)
        merged.setdefault("--executable", sys.executable)
        nodes.append(Node(nodename, merged, parsed.passthrough, node_globals))
    return parsed, nodes


def _update_ns_opts(parsed: ParsedArgs, names: list[str]) -> None:
    """``-c:1``: an index (from 1) into the node names."""
    for ns_name, ns_opts in list(parsed.namespaces.items()):
        if ns_name.isdigit():
            index = int(ns_name) - 1
            if index < 0:
                raise ValueError(f"Indexes start at 1 got: {ns_name!r}")
            if index >= len(names):
                raise ValueError(f"No node at index {ns_name!r}")
            parsed.namespaces.setdefault(names[index], {}).update(ns_opts)


def _update_ns_ranges(parsed: ParsedArgs, *, ranges: bool) -> None:
    """``-c:1,2`` (a list) and, for a range of nodes, ``-c:1-3`` (a span)."""
    for ns_name, ns_opts in list(parsed.namespaces.items()):
        if "," in ns_name or (ranges and "-" in ns_name):
            for sub in _parse_ns_range(ns_name, ranges=ranges):
                parsed.namespaces.setdefault(sub, {}).update(ns_opts)
            parsed.namespaces.pop(ns_name)


def _parse_ns_range(ns: str, *, ranges: bool) -> list[str]:
    out: list[str] = []
    for space in ns.split(","):
        if ranges and "-" in space:
            start, stop = space.split("-", 1)
            out.extend(str(n) for n in range(int(start), int(stop) + 1))
        else:
            out.append(space)
    return out


__all__ = [
    "DEFAULT_LOGFILE",
    "DEFAULT_PIDFILE",
    "GLOBAL_OPTIONS",
    "Node",
    "ParsedArgs",
    "build_nodename",
    "nodes_from_args",
    "parse_args",
    "simple_format",
]
