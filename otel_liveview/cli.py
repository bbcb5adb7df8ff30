"""The ``otel-liveview`` command; each subcommand lives in the module that does its job."""

from __future__ import annotations

import argparse
import sys

from otel_liveview import alerts, check, demo, view
from otel_liveview.pipeline import VERSION


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="otel-liveview",
        description="Watch a running experiment: a terminal LiveView, a demo experiment, alert rules "
        "from a thresholds file, and a check of the OpenTelemetry export settings.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (demo, view, alerts, check):
        module.register(commands)
    args = parser.parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
