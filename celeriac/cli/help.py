"""``celeriac help [COMMAND]``: the same text as ``--help``."""

from __future__ import annotations

import click


@click.command("help")
@click.argument("command", required=False)
@click.pass_context
def help_command(ctx: click.Context, command: str | None) -> None:
    """Show help for celeriac or for one of its commands."""
    parent = ctx.parent
    if parent is None or not isinstance(parent.command, click.Group):
        click.echo(ctx.get_help())
        return
    if command is None:
        click.echo(parent.get_help())
        return
    sub = parent.command.get_command(parent, command)
    if sub is None:
        # Same wording (and did-you-mean) as an unknown subcommand.
        parent.command.resolve_command(parent, [command])
        raise click.UsageError(f"No such command {command!r}.", parent)
    with click.Context(sub, info_name=command, parent=parent) as sub_ctx:
        click.echo(sub.get_help(sub_ctx))
