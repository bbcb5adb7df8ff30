"""The ``otel-liveview`` command; each subcommand lives in the module that does its job.

Every error is one line on stderr naming the flag, variable or file, with exit status 2; argparse
errors come after the usage of the (sub)command they belong to.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from otel_liveview._internal.pipeline import VERSION
from otel_liveview.cli.extras import VIEW, absent

# subcommand -> (the modules beyond the core it needs, the extra that installs them)
_SUBCOMMANDS: dict[str, tuple[tuple[str, ...], str] | None] = {
    "demo": None,
    "view": (VIEW, "view"),
    "alerts": (("yaml",), "alerts"),
    "check": None,
    "replay": None,
}
_HELP_WITHOUT_EXTRA = {
    "view": "receive OTLP locally and show the LiveView panels in this terminal",
    "alerts": "render Prometheus rules and Grafana alerting from a thresholds file",
}


class CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: arguments it does not know are its error, told with its usage (argparse
    would leave them to the top-level parser)."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {_quoted(extras)}")
        return parsed, extras


def _quoted(arguments: list[str]) -> str:
    """As a shell would need them typed, so an empty one stays visible; one with a line break or
    another control character as a Python literal, so the error stays one line."""
    return " ".join(shlex.quote(arg) if arg.isprintable() else repr(arg) for arg in arguments)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-liveview",
        description="Watch a running experiment: a terminal LiveView, a demo experiment, alert rules "
        "from a thresholds file, a check of the OpenTelemetry export settings, and the replay of a spool.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for name, needs in _SUBCOMMANDS.items():
        try:
            module: Any = importlib.import_module(f"otel_liveview.cli.{name}")
        except ModuleNotFoundError as error:
            missing = None if needs is None else absent(error, needs[0])
            if needs is None or missing is None:
                raise
            _register_missing(commands, name, extra=needs[1], missing=missing)
        else:
            module.register(commands)
    return parser


def _register_missing(
    commands: argparse._SubParsersAction[CommandParser], name: str, *, extra: str, missing: str
) -> None:
    """A subcommand whose extra is not installed: it says what is missing and which extra to install."""
    parser = commands.add_parser(name, help=f"{_HELP_WITHOUT_EXTRA[name]} (needs the '{extra}' extra)")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    verb = "are" if " and " in missing else "is"

    def refuse(args: argparse.Namespace) -> int:
        print(
            f"otel-liveview {name}: needs {missing}, which {verb} not installed: pip install 'otel-liveview[{extra}]'",
            file=sys.stderr,
        )
        return 2

    parser.set_defaults(run=refuse)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # the subcommands report their own; these came before the command
        parser.error(f"unrecognized arguments: {_quoted(extras)}")
    if args.command is None:
        parser.error(f"choose a command: {', '.join(_SUBCOMMANDS)} (--help says what each does)")
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C in `check` or `alerts`: the user's stop, not a traceback
        print(file=sys.stderr)
        return 130


__all__ = [
    "CommandParser",
    "build_parser",
    "main",
]
