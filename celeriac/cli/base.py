"""What every subcommand shares: the context object, one-line errors, option types.

Every error a user can cause ends as a :class:`CLIError`: click prints it as one
``Error: ...`` line on stderr and exits with its code, never with a traceback (unless
``--debug`` or ``CELERIAC_TRACEBACK=1`` asks for one).
"""

from __future__ import annotations

import json
import os
import traceback
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from celeriac.app.base import Celery
from celeriac.cli.appload import AppImportFailed, AppLoadError, find_app

if TYPE_CHECKING:
    _ParamType = click.ParamType[Any]
    _Choice = click.Choice[str]
else:  # click < 8.2 types are not generic at run time
    _ParamType = click.ParamType
    _Choice = click.Choice

#: Options of the ``celeriac`` group that take a value; written after a subcommand they get
#: a message saying where they belong (Celery 5 accepts them only before the subcommand).
GLOBAL_VALUE_OPTIONS: tuple[str, ...] = (
    "-A",
    "--app",
    "-b",
    "--broker",
    "--result-backend",
    "--loader",
    "--config",
    "--workdir",
)


class CLIError(click.ClickException):
    """A user-facing error: one ``Error: ...`` line and an exit code (2: usage/config)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it on the class


def traceback_wanted(debug: bool = False) -> bool:
    """Whether to show tracebacks: ``--debug`` or ``CELERIAC_TRACEBACK=1``."""
    return debug or os.environ.get("CELERIAC_TRACEBACK", "") not in ("", "0")


class CLIContext:
    """The ``ctx.obj`` of every command: global options and the (lazily loaded) app.

    The app is loaded on first use so that ``--help`` of any command works even when
    ``-A`` names a module that is broken.
    """

    def __init__(
        self,
        *,
        app: str | None = None,
        broker: str | None = None,
        result_backend: str | None = None,
        config: str | None = None,
        quiet: bool = False,
        no_color: bool = False,
        debug: bool = False,
        instance: Celery | None = None,
    ) -> None:
        self.app_spec = app
        self.instance = instance  # the app of ``app.start()``; -A wins over it
        self.broker = broker
        self.result_backend = result_backend
        self.config = config
        self.quiet = quiet
        self.no_color = no_color
        self.debug = debug
        self._app: Celery | None = None

    @property
    def app(self) -> Celery:
        """The app named by ``-A`` (or the default app), with -b/--result-backend/--config."""
        if self._app is None:
            self._app = self._load()
        return self._app

    def close(self) -> None:
        """Release the app's broker connection and result backend, if the app was loaded."""
        if self._app is not None:
            self._app.close()

    def _load(self) -> Celery:
        if self.app_spec:
            try:
                app = find_app(self.app_spec)
            except AppLoadError as exc:
                if isinstance(exc, AppImportFailed) and traceback_wanted(self.debug):
                    traceback.print_exception(exc.error)
                raise CLIError(str(exc), exit_code=2) from None
        elif self.instance is not None:
            app = self.instance
        else:
            # A fresh app, not the process's default one: -b/--config must not change an app
            # that embedding code already holds.
            app = Celery("default")
        self._apply_options(app)
        return app

    def _apply_options(self, app: Celery) -> None:
        # The config module first: -b and --result-backend win over it, as in Celery.
        if self.config:
            try:
                app.config_from_object(self.config)
            except ImportError as exc:
                raise CLIError(
                    f"Unable to load the configuration module {self.config!r}: {exc}",
                    exit_code=2,
                ) from None
        if self.broker:
            app.conf.broker_url = self.broker
        if self.result_backend:
            app.conf.result_backend = self.result_backend

    def echo(self, message: Any = None, **kwargs: Any) -> None:
        click.echo(message, color=False if self.no_color else None, **kwargs)

    def error(self, message: Any = None) -> None:
        click.echo(message, err=True, color=False if self.no_color else None)


def get_obj(ctx: click.Context) -> CLIContext:
    """The CLIContext, also when a command is invoked on its own (tests, embedding)."""
    obj = ctx.find_object(CLIContext)
    if obj is None:
        obj = ctx.ensure_object(CLIContext)
    return obj


class CeleriacOption(click.Option):
    """An option listed under a named section of the help (Celery's ``help_group``)."""

    def __init__(self, *args: Any, help_group: str | None = None, **kwargs: Any) -> None:
        self.help_group = help_group
        super().__init__(*args, **kwargs)


class CeleriacCommand(click.Command):
    """A subcommand: grouped help sections, and a clear error for misplaced global options."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: OrderedDict[str, list[tuple[str, str]]] = OrderedDict()
        for param in self.get_params(ctx):
            if not isinstance(param, click.Option):
                continue  # arguments are in the usage line
            record = param.get_help_record(ctx)
            if record is not None:
                group = getattr(param, "help_group", None) or "Options"
                sections.setdefault(group, []).append(record)
        for name, records in sections.items():
            with formatter.section(name):
                formatter.write_dl(records)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        original = list(args)
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            if exc.option_name in GLOBAL_VALUE_OPTIONS:
                raise misplaced_option(exc.option_name, original, ctx.info_name) from None
            raise


def misplaced_option(option: str, args: Sequence[str], command: str | None) -> CLIError:
    """The error for ``celeriac worker -A proj``: say where the option belongs."""
    value = _option_value(option, args) or "VALUE"
    return CLIError(
        f"{option} must come before the subcommand: celeriac {option} {value} {command}",
        exit_code=2,
    )


def _option_value(option: str, args: Sequence[str]) -> str | None:
    for index, token in enumerate(args):
        if token == "--":
            break
        if token == option:
            return args[index + 1] if index + 1 < len(args) else None
        if option.startswith("--") and token.startswith(option + "="):
            return token[len(option) + 1 :]
        if not option.startswith("--") and token.startswith(option) and len(token) > 2:
            return token[2:]
    return None


# -- option types --------------------------------------------------------------------------


class CommaSeparatedList(_ParamType):
    """``a,b, c`` -> ``["a", "b", "c"]``."""

    name = "comma separated list"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, list):
            return value
        return [part.strip() for part in str(value).split(",") if part.strip()]


class JsonArray(_ParamType):
    """A JSON array (positional arguments of ``call``)."""

    name = "json array"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        loaded = _json(self, value, param, ctx)
        if not isinstance(loaded, list):
            self.fail(f"{value} was not an array", param, ctx)
        return loaded


class JsonObject(_ParamType):
    """A JSON object (keyword arguments of ``call``)."""

    name = "json object"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        loaded = _json(self, value, param, ctx)
        if not isinstance(loaded, dict):
            self.fail(f"{value} was not an object", param, ctx)
        return loaded


def _json(
    kind: _ParamType, value: Any, param: click.Parameter | None, ctx: click.Context | None
) -> Any:
    if isinstance(value, (list, dict)):
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        kind.fail(f"not valid JSON ({exc}): {value}", param, ctx)


def parse_iso8601(text: str) -> datetime:
    """ISO 8601 date and time; a trailing ``Z`` means UTC (accepted on Python 3.10 too)."""
    text = text.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


class ISO8601DateTime(_ParamType):
    """An ISO 8601 date and time."""

    name = "iso-8601"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            return parse_iso8601(str(value))
        except ValueError as exc:
            self.fail(f"{value!r} is not an ISO 8601 date and time ({exc})", param, ctx)


class ISO8601DateTimeOrFloat(ISO8601DateTime):
    """Seconds from now as a number, or an ISO 8601 date and time."""

    name = "iso-8601 or float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return float(value)
        except (TypeError, ValueError):
            return super().convert(value, param, ctx)


class LogLevel(_Choice):
    """A logging level name, case-insensitive; ``FATAL`` is ``CRITICAL``."""

    def __init__(self) -> None:
        super().__init__(("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL"))

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        level = super().convert(str(value).upper(), param, ctx)
        return "CRITICAL" if level == "FATAL" else level


def flatten(groups: Iterable[Iterable[str]] | None) -> list[str]:
    """Repeated comma-separated options, flattened, duplicates dropped, order kept."""
    names: list[str] = []
    for group in groups or ():
        names.extend(group)
    return list(dict.fromkeys(names))


def pluralize(count: int, word: str) -> str:
    return word if count == 1 else f"{word}s"


COMMA_SEPARATED_LIST = CommaSeparatedList()
JSON_ARRAY = JsonArray()
JSON_OBJECT = JsonObject()
ISO8601 = ISO8601DateTime()
ISO8601_OR_FLOAT = ISO8601DateTimeOrFloat()
LOG_LEVEL = LogLevel()
