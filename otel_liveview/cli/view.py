"""`otel-liveview view`: its flags (shared with `demo --view`) and the command itself."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from otel_liveview._internal import config
from otel_liveview.view.receiver import ListenError, format_address, parse_address
from otel_liveview.view.replay import feed
from otel_liveview.view.session import (
    DEFAULT_GRPC,
    DEFAULT_HTTP,
    LIVE_REFRESH,
    PLAIN_REFRESH,
    ViewSession,
    point_library_at,
    start,
)

__all__ = ["add_view_arguments", "open_session", "point_library_at", "register", "run"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "view",
        help="receive OTLP locally and show the LiveView panels in this terminal",
        description="Receive OTLP (gRPC and HTTP) and show experiments, metrics, data streams, logs "
        "and publishers live. Point publishers at it with OTEL_EXPORTER_OTLP_ENDPOINT. With --replay, "
        "a spool folder (OTEL_LIVEVIEW_SPOOL_DIR, an offline run) is shown first; the folder is only read.",
    )
    add_view_arguments(parser)
    parser.add_argument(
        "--replay",
        metavar="DIR",
        help="show what the spool folder DIR holds (with --grpc off --http off: only that)",
    )
    parser.set_defaults(run=run)


def add_view_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The flags `view` and `demo --view` share."""
    parser.add_argument(
        "--grpc",
        default=DEFAULT_GRPC,
        type=_address,
        metavar="ADDR",
        help="OTLP/gRPC address, or 'off' (default: %(default)s)",
    )
    parser.add_argument(
        "--http",
        default=DEFAULT_HTTP,
        type=_address,
        metavar="ADDR",
        help="OTLP/HTTP address, or 'off' (default: %(default)s)",
    )
    parser.add_argument(
        "--plain", action="store_true", help="print plain-text frames instead of a live screen"
    )
    parser.add_argument(
        "--refresh",
        type=config.positive_seconds,
        default=None,
        metavar="SECONDS",
        help=f"seconds between redraws (default: {LIVE_REFRESH} live, {PLAIN_REFRESH} plain)",
    )


def _address(text: str) -> str | None:
    if text.strip().lower() == "off":
        return None
    try:
        return format_address(*parse_address(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    # Handled, not left to KeyboardInterrupt: that would not come if the shell that started us
    # ignored SIGINT (a background job), and could land anywhere in the clean-up.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    replay = getattr(args, "replay", None)
    if replay is not None and not os.path.isdir(replay):
        print(f"otel-liveview view: --replay {replay}: not a folder", file=sys.stderr)
        return 2
    session = open_session(args)
    if isinstance(session, int):
        return session
    if replay is not None:
        threading.Thread(target=feed, args=(session.board, replay), name="view-replay", daemon=True).start()
    try:
        while not stop.wait(0.5) and not session.failed.is_set():
            pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the clean-up
        session.stop()
    return 0


def open_session(args: argparse.Namespace) -> ViewSession | int:
    """A started view for the parsed flags, or the exit code after a one-line error on stderr."""
    command = "demo" if getattr(args, "command", "") == "demo" else "view"
    if args.grpc is None and args.http is None and getattr(args, "replay", None) is None:
        print(
            f"otel-liveview {command}: --grpc and --http are both off: nothing could arrive", file=sys.stderr
        )
        return 2
    try:
        return start(args.grpc, args.http, plain=args.plain, refresh=args.refresh)
    except ListenError as error:
        print(f"otel-liveview {command}: {error}; pass --{error.server} ADDR", file=sys.stderr)
        return 2
