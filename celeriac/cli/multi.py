"""``celeriac multi``: start, stop and restart several detached workers (``celery multi``).

\b
$ celeriac -A proj multi start w1 w2 -c 3 -c:w2 8 --pidfile=run/%n.pid --logfile=log/%n%I.log
$ celeriac -A proj multi stopwait w1 w2 --pidfile=run/%n.pid
"""

from __future__ import annotations

import click

from celeriac import __version__
from celeriac.cli.base import CLIError, get_obj
from celeriac.worker.multi import Cluster, find_signal
from celeriac.worker.nodes import Node, Options, ParsedArgs, nodes_from_args

USAGE = """\
usage: celeriac multi start <node1 node2 nodeN|range> [worker options]
       celeriac multi stop <n1 n2 nN|range> [-SIG (default: -TERM)]
       celeriac multi stopwait <n1 n2 nN|range> [-SIG (default: -TERM)]
       celeriac multi restart <n1 n2 nN|range> [-SIG] [worker options]
       celeriac multi kill <n1 n2 nN|range>
       celeriac multi show <n1 n2 nN|range> [worker options]
       celeriac multi names <n1 n2 nN|range>
       celeriac multi get <node> <n1 n2 nN|range> [worker options]
       celeriac multi expand template <n1 n2 nN|range>
       celeriac multi help

additional options (must appear after command name):
    * --nosplash:   Don't display program info.
    * --quiet:      Don't show as much output.
    * --verbose:    Show more output.
"""

ACTIONS = (
    "start",
    "stop",
    "stopwait",
    "restart",
    "kill",
    "show",
    "names",
    "get",
    "expand",
    "help",
)


@click.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
@click.pass_context
def multi(ctx: click.Context) -> None:
    """Start multiple worker instances (``celeriac multi help`` for the details).

    \b
    $ celeriac -A proj multi start 3 -c 2 --pidfile=%n.pid --logfile=%n%I.log
    $ celeriac -A proj multi stopwait 3 --pidfile=%n.pid
    """
    args = list(ctx.args)
    if not args or args[0] in ("help", "-h", "--help"):
        click.echo(ctx.get_help() + "\n\n" + USAGE)
        return
    action, rest = args[0], args[1:]
    if action not in ACTIONS:
        raise CLIError(f"Invalid command: {action}\n{USAGE}", exit_code=2)
    quiet = _pop_flag(rest, "--quiet") or get_obj(ctx).quiet
    nosplash = _pop_flag(rest, "--nosplash")
    _pop_flag(rest, "--verbose")

    def say(line: str) -> None:
        if not quiet:
            click.echo(line)

    if action in ("expand", "get"):
        if not rest:
            what = "a template, e.g. 'log/%n.log'" if action == "expand" else "a node name"
            raise CLIError(f"multi {action}: give {what}", exit_code=2)
        template, rest = rest[0], rest[1:]
    parsed, nodes = _nodes(ctx, rest)
    if action == "get":  # the worker arguments of one node, by full or short name
        found = [n for n in nodes if template in (n.name, n.shortname)]
        if not found:
            raise CLIError(f"multi get: no node {template!r} among {_names(nodes)}")
        click.echo(" ".join(found[0].argv))
        return
    if action == "names":
        click.echo("\n".join(node.name for node in nodes))
        return
    if action == "show":
        click.echo("\n".join(" ".join(node.command) for node in nodes))
        return
    if action == "expand":
        click.echo("\n".join(node.expand(template) for node in nodes))
        return
    if not nosplash:
        say(f"celeriac multi v{__version__}")
    cluster = Cluster(nodes, say)
    signum = find_signal(parsed.args, parsed.values)
    code = 0
    if action == "start":
        code = cluster.start()
    elif action == "stop":
        cluster.stop(signum)
    elif action == "stopwait":
        cluster.stop(signum, wait=True)
    elif action == "restart":
        code = cluster.restart(signum)
    else:
        cluster.kill()
    ctx.exit(code)


def _nodes(ctx: click.Context, args: list[str]) -> tuple[ParsedArgs, list[Node]]:
    obj = get_obj(ctx)
    given: Options = {}
    for opt, value in (
        ("--app", obj.app_spec),
        ("--broker", obj.broker),
        ("--result-backend", obj.result_backend),
        ("--config", obj.config),
    ):
        if value:
            given[opt] = value
    try:
        parsed, nodes = nodes_from_args(args, global_options=given)
    except ValueError as exc:
        raise CLIError(f"multi: {exc}", exit_code=2) from None
    if not nodes:
        raise CLIError(f"multi: name the nodes (or give their number)\n{USAGE}", exit_code=2)
    return parsed, nodes


def _names(nodes: list[Node]) -> str:
    return ", ".join(node.name for node in nodes)


def _pop_flag(args: list[str], flag: str) -> bool:
    if flag in args:
        args.remove(flag)
        return True
    return False


__all__ = ["multi"]
