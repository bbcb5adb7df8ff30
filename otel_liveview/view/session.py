"""A running terminal view: the receivers, the board they feed and the thread that draws it."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from otel_liveview.view.board import Board
from otel_liveview.view.receiver import OtlpReceiver
from otel_liveview.view.screen import PLAIN_WIDTH, render_plain, render_screen

DEFAULT_GRPC = "127.0.0.1:4317"


DEFAULT_HTTP = "127.0.0.1:4318"


LIVE_REFRESH = 0.25  # seconds between redraws on a terminal


PLAIN_REFRESH = 1.0  # seconds between plain frames: a frame is dozens of lines


@dataclass
class ViewSession:
    """Receivers plus a renderer thread; `stop()` ends both and restores the terminal."""

    board: Board
    receiver: OtlpReceiver
    renderer: _Renderer
    failed: threading.Event  # set when the renderer cannot write any more (a closed pipe)

    def grpc_endpoint(self) -> str:
        return f"http://{self.receiver.grpc_bound}"

    def http_endpoint(self) -> str:
        return f"http://{self.receiver.http_bound}"

    def stop(self) -> None:
        try:
            self.renderer.stop()
        finally:
            self.receiver.stop()
        summary = self.board.snapshot()
        requests = summary.totals.get("metric requests", 0) + summary.totals.get("log requests", 0)
        with contextlib.suppress(OSError, ValueError):
            print(
                f"otel-liveview view: stopped after {requests} requests from {len(summary.publishers)} publishers",
                file=sys.stderr,
                flush=True,
            )


def start(
    grpc: str | None = DEFAULT_GRPC,
    http: str | None = DEFAULT_HTTP,
    plain: bool = False,
    refresh: float | None = None,
    out: TextIO | None = None,
) -> ViewSession:
    """Bind the receivers (ListenError if an address is taken), then start drawing."""
    board = Board()
    receiver = OtlpReceiver(board, grpc, http).start()
    out = out or sys.stdout
    plain = plain or not _is_tty(out) or os.environ.get("TERM", "") in ("dumb", "unknown")
    period = refresh if refresh is not None and refresh > 0 else (PLAIN_REFRESH if plain else LIVE_REFRESH)
    failed = threading.Event()
    endpoints = {"grpc": receiver.grpc_bound, "http": receiver.http_bound}
    renderer = _Renderer(board, endpoints, plain, period, out, failed)
    try:
        renderer.start()
    except BaseException:
        receiver.stop()
        raise
    return ViewSession(board, receiver, renderer, failed)


def point_library_at(session: ViewSession, environ: MutableMapping[str, str] | None = None) -> None:
    """Send this process's telemetry (and its children's, who inherit the environment) to the view.

    Per-signal variables would win over the general ones, so they go; gRPC keeps it to one port.
    """
    environ = os.environ if environ is None else environ
    for signal_name in ("METRICS", "LOGS"):
        for setting in ("ENDPOINT", "PROTOCOL", "INSECURE", "CERTIFICATE", "HEADERS"):
            environ.pop(f"OTEL_EXPORTER_OTLP_{signal_name}_{setting}", None)
    for setting in ("CERTIFICATE", "HEADERS", "CLIENT_KEY", "CLIENT_CERTIFICATE"):
        environ.pop(f"OTEL_EXPORTER_OTLP_{setting}", None)
    if session.receiver.grpc_bound:
        environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = session.grpc_endpoint()
        environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc"
    else:
        environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = session.http_endpoint()
        environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    environ["OTEL_EXPORTER_OTLP_INSECURE"] = "true"


def _is_tty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


class _Renderer:
    """Draws a frame every `period` seconds from its own thread, so the caller's main thread stays
    free (to wait for Ctrl-C, or to run an experiment)."""

    def __init__(
        self,
        board: Board,
        endpoints: dict[str, str | None],
        plain: bool,
        period: float,
        out: TextIO,
        failed: threading.Event,
    ) -> None:
        self.board = board
        self.endpoints = endpoints
        self.plain = plain
        self.period = period
        self.out = out
        self.failed = failed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="liveview-render", daemon=True)
        self._live: Live | None = None
        self._frames = 0

    def start(self) -> None:
        if not self.plain:
            console = Console(file=self.out)
            self._live = Live(
                console=console,
                screen=True,
                auto_refresh=False,
                redirect_stdout=False,
                redirect_stderr=False,
                get_renderable=self._live_frame,
            )
            self._live.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self.plain:
            self._draw()  # the last state, so a log of the frames ends with it
        elif self._live is not None:
            with contextlib.suppress(Exception):
                self._live.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._draw()
            self._stop.wait(self.period)

    def _draw(self) -> None:
        if self.failed.is_set():
            return
        try:
            if self._live is not None:
                self._live.refresh()
            else:
                self._frames += 1
                frame = render_plain(self.board.snapshot(), self.endpoints, self._frames, self._plain_width())
                self.out.write(frame)
                self.out.flush()
        except (BrokenPipeError, ValueError):  # the reader went away, or stdout was closed
            self.failed.set()
            with contextlib.suppress(OSError, ValueError):  # no "Exception ignored" at exit either
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.out.fileno())
        except Exception as error:  # a drawing bug: say it and keep drawing
            with contextlib.suppress(Exception):
                self.out.write(
                    f"otel-liveview view: cannot draw this frame: {type(error).__name__}: {error}\n"
                )

    def _plain_width(self) -> int:
        """The terminal's width with --plain on one; else wide enough that nothing is cut."""
        try:
            return max(60, os.get_terminal_size(self.out.fileno()).columns)
        except (OSError, ValueError, AttributeError):
            return PLAIN_WIDTH

    def _live_frame(self) -> RenderableType:
        try:
            console = self._live.console if self._live is not None else Console(file=self.out)
            with contextlib.suppress(OSError, ValueError):
                # The terminal itself, not COLUMNS/LINES: shells export those and they go stale.
                size = os.get_terminal_size(self.out.fileno())
                console.size = (size.columns, size.lines)
            width, height = console.size
            return render_screen(self.board.snapshot(), self.endpoints, width, height)
        except Exception as error:  # a drawing bug must not freeze the screen: say it instead
            return Text(f"otel-liveview view: cannot draw this frame: {type(error).__name__}: {error}")


__all__ = [
    "DEFAULT_GRPC",
    "DEFAULT_HTTP",
    "LIVE_REFRESH",
    "PLAIN_REFRESH",
    "ViewSession",
    "point_library_at",
    "start",
]
