"""`otel-liveview view`: the LiveView panels in the terminal, fed by an embedded OTLP receiver.

For a user without a collector: point the library (or any OpenTelemetry SDK) at it and watch.
`receiver.py` listens, `board.py` folds what arrives into rows, this module draws them: with rich's
Live on a terminal, as plain-text frames (no escape sequences) when stdout is not one or with --plain.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from rich import box
from rich.console import Console, Group, RenderableType
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from otel_liveview import config
from otel_liveview.board import (
    Board,
    ExperimentRow,
    LogLine,
    MetricRow,
    PublisherRow,
    Snapshot,
    StreamRow,
)
from otel_liveview.receiver import ListenError, OtlpReceiver, format_address, parse_address

__all__ = ["ViewSession", "register", "render_plain", "run", "sparkline", "start"]

DEFAULT_GRPC = "127.0.0.1:4317"
DEFAULT_HTTP = "127.0.0.1:4318"
LIVE_REFRESH = 0.25  # seconds between redraws on a terminal
PLAIN_REFRESH = 1.0  # seconds between plain frames: a frame is dozens of lines
HEADER = "=== otel-liveview view"  # how every plain frame starts
PLAIN_WIDTH = 400  # plain frames to a pipe or file: tables take what they need, up to this

_BLOCKS = "▁▂▃▄▅▆▇█"
_STATUS_STYLE = {
    "running": "bold green",
    "completed": "bold cyan",
    "failed": "bold red",
    "aborted": "bold yellow",
    "initializing": "dim",
}
_SEVERITY_STYLE = {
    "TRACE": "dim",
    "DEBUG": "dim",
    "INFO": "green",
    "WARN": "yellow",
    "WARNING": "yellow",
    "ERROR": "red",
    "FATAL": "bold red",
    "CRITICAL": "bold red",
}
STALE_SECONDS = 30.0  # rows not updated for this long are dimmed


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "view",
        help="receive OTLP locally and show the LiveView panels in this terminal",
        description="Receive OTLP (gRPC and HTTP) and show experiments, metrics, data streams, logs "
        "and publishers live. Point publishers at it with OTEL_EXPORTER_OTLP_ENDPOINT.",
    )
    add_view_arguments(parser)
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
    session = open_session(args)
    if isinstance(session, int):
        return session
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
    if args.grpc is None and args.http is None:
        print(
            f"otel-liveview {command}: --grpc and --http are both off: nothing could arrive", file=sys.stderr
        )
        return 2
    try:
        return start(args.grpc, args.http, plain=args.plain, refresh=args.refresh)
    except ListenError as error:
        print(f"otel-liveview {command}: {error}; pass --{error.server} ADDR", file=sys.stderr)
        return 2


# -- a running view -------------------------------------------------------------------------------------------


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


# -- formatting -----------------------------------------------------------------------------------------------


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}"
    return str(value)


def sparkline(values: Sequence[float], width: int = 40) -> str:
    """Unicode blocks scaled between the minimum and maximum; `×` marks a non-finite sample."""
    values = list(values)[-width:]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "×" * len(values)
    low, high = min(finite), max(finite)
    span = high - low
    out = []
    for v in values:
        if not math.isfinite(v):
            out.append("×")
        elif span == 0:
            out.append(_BLOCKS[3])
        else:
            out.append(_BLOCKS[min(len(_BLOCKS) - 1, int((v - low) / span * len(_BLOCKS)))])
    return "".join(out)


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _labels(labels: Sequence[tuple[str, str]]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels)


def _clock(time_unix_nano: int) -> str:
    seconds = time_unix_nano / 1e9
    return time.strftime("%H:%M:%S", time.localtime(seconds)) + f".{int(seconds % 1 * 1000):03d}"


def header_text(snapshot: Snapshot, endpoints: dict[str, str | None]) -> str:
    alive = sum(p.alive for p in snapshot.publishers)
    totals = snapshot.totals
    requests = totals.get("metric requests", 0) + totals.get("log requests", 0)
    listening = " ".join(f"{name} {address}" for name, address in endpoints.items() if address)
    parts = [
        f"{time.strftime('%H:%M:%S')}",
        f"listening {listening}",
        f"publishers {alive} alive of {len(snapshot.publishers)}",
        f"{len(snapshot.metrics)} series",
        f"{requests} requests",
        f"{totals.get('rejected', 0)} rejected",
    ]
    if snapshot.cut:
        parts.append("cut " + ", ".join(f"{name} {count}" for name, count in sorted(snapshot.cut.items())))
    return " | ".join(parts)


# -- panels ---------------------------------------------------------------------------------------------------


def _table(plain: bool, *columns: str, wide: str = "") -> Table:
    """A table of one-line cells; `wide` is the column that takes the room left over."""
    table = Table(
        box=None if plain else box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        expand=not plain,
        header_style="" if plain else "bold",
    )
    for column in columns:
        table.add_column(column, overflow="ellipsis", no_wrap=True, ratio=1 if column == wide else None)
    return table


def experiments_table(rows: Sequence[ExperimentRow], plain: bool, limit: int) -> Table:
    """Plain frames have every column; the live screen's narrow panel leaves out topic, pid and age."""
    columns = ["experiment", "status", "topic", "pid", "updated", "elapsed", "progress", "error"]
    if not plain:
        columns = [column for column in columns if column not in ("topic", "pid", "updated")]
    table = _table(plain, *columns, wide="error")
    for row in _fit(rows, limit, table):
        cells = {
            "experiment": row.experiment,
            "status": Text(row.status, style=_STATUS_STYLE.get(row.status, "")),
            "topic": row.topic,
            "pid": fmt(row.pid),
            "updated": f"{_age(row.age)} ago",
            "elapsed": "-" if row.elapsed is None else _duration(row.elapsed),
            "progress": progress_text(row.progress),
            "error": Text(row.error or "", style="red"),
        }
        table.add_row(*(cells[column] for column in columns))
    return table


def progress_text(progress: Sequence[tuple[str, str, float | None, float]]) -> str:
    """`train 120/1000 12%  eval 3/40 8%`: per phase, its steps if declared, else its epochs; a phase
    that has not started shows `-`."""
    chosen: dict[str, tuple[str, float | None, float]] = {}
    for phase, unit, done, total in progress:
        if phase not in chosen or unit == "steps":
            chosen[phase] = (unit, done, total)
    parts = []
    for phase, (_unit, done, total) in sorted(chosen.items()):
        if done is None:
            parts.append(f"{phase} -/{fmt(total)}")
        else:
            parts.append(f"{phase} {fmt(done)}/{fmt(total)} {min(100.0, 100 * done / total):.0f}%")
    return "  ".join(parts)


def info_table(rows: Sequence[ExperimentRow], plain: bool, limit: int) -> Table:
    """The runs' configuration (liveview.experiment.info): one key per line in plain frames, one
    line per experiment on the live screen."""
    if plain:
        table = _table(plain, "experiment", "key", "value", wide="value")
        pairs = [(row.experiment, key, value) for row in rows for key, value in row.info]
        for experiment, key, value in _fit(pairs, limit, table):
            table.add_row(experiment, key, value)
        return table
    table = _table(plain, "experiment", "info", wide="info")
    for row in _fit([row for row in rows if row.info], limit, table):
        table.add_row(row.experiment, "  ".join(f"{key}={value}" for key, value in row.info))
    return table


def errors_table(snapshot: Snapshot, plain: bool, limit: int) -> Table:
    """Failed and aborted runs with their error, ERROR and FATAL logs, non-finite metrics; newest first."""
    table = _table(plain, "what", "where", "detail", wide="detail")
    entries: list[tuple[str, str, str]] = [
        (row.status, row.experiment, row.error or "") for row in snapshot.experiments if row.status in _FAILED
    ]
    entries += [
        (line.severity, f"{line.service}/{fmt(line.pid)}", line.body) for line in reversed(snapshot.errors)
    ]
    entries += [
        (metric.nonfinite or "", metric.name, _labels(metric.labels))
        for metric in snapshot.metrics
        if metric.nonfinite
    ]
    for what, where, detail in _fit(entries, limit, table):
        table.add_row(Text(what, style="bold red"), where, detail)
    return table


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


_FAILED = ("failed", "aborted")


def metrics_table(rows: Sequence[MetricRow], plain: bool, limit: int, spark_width: int = 40) -> Table:
    table = _table(
        plain, "metric", "labels", "value", "step", "epoch", "recent", "pid", "topic", wide="labels"
    )
    for column in (2, 3, 4):
        table.columns[column].justify = "right"
    for row in _fit(rows, limit, table):
        style = "dim" if row.age > STALE_SECONDS else ""
        value = Text(row.nonfinite, style="bold red") if row.nonfinite else Text(fmt(row.value))
        name = row.name if row.kind in ("liveview", "gauge") else f"{row.name} ({row.kind})"
        table.add_row(
            name,
            _labels(row.labels),
            value,
            fmt(row.step),
            fmt(row.epoch),
            Text(sparkline(row.history, spark_width), style="cyan"),
            fmt(row.pid),
            row.topic,
            style=style,
        )
    return table


def streams_table(rows: Sequence[StreamRow], plain: bool, limit: int) -> Table:
    table = _table(plain, "stream", "key", "value", "events", "updated", wide="value")
    lines = [(row, index, key, value) for row in rows for index, (key, value) in enumerate(row.values)] or [
        (row, 0, "", "") for row in rows
    ]
    for row, index, key, value in _fit(lines, limit, table):
        first = index == 0
        table.add_row(
            row.stream if first else "",
            key,
            fmt(value),
            str(row.events) if first else "",
            f"{_age(row.age)} ago" if first else "",
            style="dim" if row.age > STALE_SECONDS else "",
        )
    return table


def publishers_table(rows: Sequence[PublisherRow], plain: bool, limit: int) -> Table:
    columns = ["service", "pid", "state", "published", "dropped", "topic"] + (["host"] if plain else [])
    table = _table(plain, *columns, wide="published")
    for column in (1, 2, 4):  # never squeezed to an ellipsis
        table.columns[column].min_width = 7
    for row in _fit(rows, limit, table):
        state = Text("alive", style="green") if row.alive else Text(f"gone {_age(row.age)}", style="dim")
        published = " ".join(f"{kind} {fmt(count)}" for kind, count in row.published if count) or "-"
        dropped_total = sum(count for _, _, count in row.dropped)
        dropped = (
            Text(
                " ".join(f"{kind}/{reason} {fmt(count)}" for kind, reason, count in row.dropped if count),
                style="bold red",
            )
            if dropped_total
            else Text("0")
        )
        table.add_row(
            row.service, fmt(row.pid), state, published, dropped, row.topic, *([row.host] if plain else [])
        )
    return table


def logs_table(lines: Sequence[LogLine], plain: bool, limit: int) -> Table:
    table = _table(plain, "time", "level", "source", "message", wide="message")
    shown = list(lines)[-limit:] if limit > 0 else []
    for line in shown:
        style = _severity_style(line)
        message = line.body + (
            "  " + " ".join(f"{k}={v}" for k, v in line.attributes) if line.attributes else ""
        )
        table.add_row(
            _clock(line.time_unix_nano),
            Text(line.severity, style=style),
            f"{line.service}/{fmt(line.pid)}",
            Text(message, style=style if line.severity_number >= 13 else ""),
        )
    return table


def _severity_style(line: LogLine) -> str:
    if line.severity in _SEVERITY_STYLE:
        return _SEVERITY_STYLE[line.severity]
    number = line.severity_number
    return "bold red" if number >= 21 else "red" if number >= 17 else "yellow" if number >= 13 else ""


def _fit(rows: Sequence[Any], limit: int, table: Table) -> Iterator[Any]:
    """The first rows that fit `limit` lines; the last line then says how many did not."""
    if len(rows) <= limit:
        yield from rows
        return
    yield from rows[: max(0, limit - 1)]
    if limit >= 1:
        table.add_row(Text(f"… {len(rows) - limit + 1} more", style="dim"))


# -- frames ---------------------------------------------------------------------------------------------------


def render_screen(
    snapshot: Snapshot, endpoints: dict[str, str | None], width: int, height: int
) -> RenderableType:
    """The live screen: metrics | experiments and streams above, logs | publishers below."""
    header_line = Text(" otel-liveview view | " + header_text(snapshot, endpoints), style="bold reverse")
    wanted = max(len(snapshot.logs), len(snapshot.publishers), 1) + 4
    lower_height = min(wanted, max(8, int(height * 0.42)))
    upper_height = max(6, height - 1 - lower_height)
    info_height = min(sum(1 for row in snapshot.experiments if row.info), 4)
    experiments_height = (
        min(max(1, len(snapshot.experiments)), 8) + 4 + (info_height + 2 if info_height else 0)
    )
    streams_height = max(5, upper_height - experiments_height)
    spark = max(10, min(40, width // 8))

    def panel(content: RenderableType, title: str) -> Panel:
        return Panel(content, title=title, title_align="left", border_style="blue", padding=(0, 1))

    layout = Layout()
    layout.split_column(
        Layout(header_line, name="header", size=1),
        Layout(name="upper", size=upper_height),
        Layout(name="lower", size=lower_height),
    )
    layout["upper"].split_row(Layout(name="metrics", ratio=3), Layout(name="side", ratio=2))
    layout["side"].split_column(
        Layout(name="experiments", size=experiments_height), Layout(name="streams", size=streams_height)
    )
    errors = errors_table(snapshot, False, lower_height - 4)
    if errors.row_count:  # the errors panel takes room only when there is something in it
        layout["lower"].split_row(
            Layout(name="logs", ratio=9), Layout(name="errors", ratio=5), Layout(name="publishers", ratio=7)
        )
        layout["errors"].update(panel(errors, "Errors"))
    else:
        layout["lower"].split_row(Layout(name="logs", ratio=1), Layout(name="publishers", ratio=1))
    layout["metrics"].update(
        panel(
            metrics_table(snapshot.metrics, False, upper_height - 4, spark),
            f"Metrics ({len(snapshot.metrics)} series)",
        )
    )
    layout["experiments"].update(
        panel(
            Group(
                experiments_table(snapshot.experiments, False, experiments_height - 4),
                info_table(snapshot.experiments, False, info_height),
            ),
            "Experiments",
        )
    )
    layout["streams"].update(
        panel(
            streams_table(snapshot.streams, False, streams_height - 4),
            f"Data streams ({len(snapshot.streams)})",
        )
    )
    alive = sum(p.alive for p in snapshot.publishers)
    layout["publishers"].update(
        panel(
            publishers_table(snapshot.publishers, False, lower_height - 4),
            f"Publishers ({alive} alive of {len(snapshot.publishers)})",
        )
    )
    layout["logs"].update(
        panel(logs_table(snapshot.logs, False, lower_height - 4), f"Logs (last {len(snapshot.logs)})")
    )
    return layout


def render_plain(
    snapshot: Snapshot, endpoints: dict[str, str | None], frame: int = 0, width: int | None = None
) -> str:
    """One plain-text frame: a header line, then each panel under a title line. No escape sequences."""
    width = width or PLAIN_WIDTH
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        color_system=None,
        force_terminal=False,
        force_jupyter=False,
        no_color=True,
        highlight=False,
        emoji=False,
        markup=False,
        legacy_windows=False,
    )
    alive = sum(p.alive for p in snapshot.publishers)
    sections: list[tuple[str, Table]] = [
        (f"experiments ({len(snapshot.experiments)})", experiments_table(snapshot.experiments, True, 50)),
        ("experiment info", info_table(snapshot.experiments, True, 100)),
        ("errors", errors_table(snapshot, True, 30)),
        (f"metrics ({len(snapshot.metrics)} series)", metrics_table(snapshot.metrics, True, 100)),
        (f"data streams ({len(snapshot.streams)})", streams_table(snapshot.streams, True, 100)),
        (f"logs (last {len(snapshot.logs)})", logs_table(snapshot.logs, True, len(snapshot.logs))),
        (
            f"publishers ({alive} alive of {len(snapshot.publishers)})",
            publishers_table(snapshot.publishers, True, 50),
        ),
    ]
    buffer.write(f"{HEADER} frame {frame} | {header_text(snapshot, endpoints)}\n")  # never wrapped
    for title, table in sections:
        console.print(Text(f"--- {title}"))
        if table.row_count:
            console.print(table)
    if snapshot.rejections:
        console.print(Text("--- last rejected requests"))
        for reason in snapshot.rejections:
            console.print(Text(f"  {reason}"))
    console.print()
    return "\n".join(line.rstrip() for line in buffer.getvalue().split("\n"))
