"""The ``otel-liveview`` command: each subcommand lives in the module that does its job."""

from __future__ import annotations

import argparse
import sys

from otel_liveview import alerts, check, demo, view


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-liveview", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (demo, view, alerts, check):
        module.register(commands)
    args = parser.parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
