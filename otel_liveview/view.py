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
import statistics
import sys
import threading
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from rich.cells import cell_len
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
    RankRow,
    Snapshot,
    StreamRow,
)
from otel_liveview.receiver import ListenError, OtlpReceiver, format_address, parse_address

__all__ = ["ViewSession", "register", "render_plain", "render_screen", "run", "sparkline", "start"]

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
#
# Each panel is first a Sheet: its columns and its rows as cells. Plain frames print every column;
# the live screen keeps the columns that fit by rank, at widths known from what the rows are (their
# names, labels, reserved room for values that change), so the same rows keep the same columns.

Cell = str | Text

FLEX_LEAST = 12  # cells a flexible column gets at the least
WIDEST = 32  # cells a measured column takes at most: longer text is cut with …
GAP = 2  # cells between two columns
STATUS_WIDTH = max(len(status) for status in _STATUS_STYLE)  # status words are never cut


@dataclass(frozen=True)
class Column:
    name: str
    rank: int  # the live screen keeps low ranks first as the width runs out
    width: int = 0  # cells reserved for values that change; flexible: the least it is shown at
    flexible: bool = False  # takes the room left over, its text cut with …
    right: bool = False
    shared: str = ""  # e.g. "topic {}": the same on every row, it is said once in the title instead


@dataclass(frozen=True)
class Row:
    cells: tuple[Cell, ...]  # in the sheet's column order
    style: str = ""
    continued: bool = False  # more of the row above (a stream's next key): its shared cells are blank


@dataclass(frozen=True)
class Sheet:
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    more: str = ""  # a last line saying what did not fit


def _plain_text(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def _fit(rows: Sequence[Any], limit: int) -> tuple[list[Any], str]:
    """The first rows that fit `limit` lines; the last line then says how many did not."""
    if len(rows) <= limit:
        return list(rows), ""
    if limit < 1:
        return [], ""
    return list(rows[: limit - 1]), f"… {len(rows) - limit + 1} more"


def experiments_sheet(rows: Sequence[ExperimentRow], limit: int) -> Sheet:
    summaries = {id(row): ranks_text(row) for row in rows}
    columns = (
        Column("experiment", 0),
        Column("status", 1, width=STATUS_WIDTH),
        Column("topic", 8, shared="topic {}"),
        Column("pid", 6, shared="pid {}"),
        Column("updated", 7, width=8),
        Column("elapsed", 5, width=7, right=True),
        Column("ranks", 2, width=min(WIDEST, max(map(len, summaries.values()), default=0))),
        Column("progress", 4, width=max((len(_full_progress(row)) for row in rows), default=0)),
        Column("error", 3, flexible=True),
    )
    shown, more = _fit(rows, limit)
    return Sheet(
        columns,
        tuple(
            Row(
                (
                    row.experiment,
                    Text(row.status, style=_STATUS_STYLE.get(row.status, "")),
                    row.topic,
                    fmt(row.pid),
                    f"{_age(row.age)} ago",
                    "-" if row.elapsed is None else _duration(row.elapsed),
                    Text(summaries[id(row)], style="yellow" if _lagging(row.ranks) else ""),
                    progress_text(row.progress),
                    Text(row.error or "", style="red"),
                )
            )
            for row in shown
        ),
        more,
    )


def ranks_text(row: ExperimentRow) -> str:
    """`3/4 alive  failed r2  lagging r3`: a launched run's processes, the ones to look at named."""
    if not row.ranks:
        return ""
    parts = [f"{sum(r.alive for r in row.ranks)}/{row.world_size or len(row.ranks)} alive"]
    failed = [r.rank for r in row.ranks if r.status in _FAILED]
    if failed:
        parts.append("failed " + " ".join(f"r{rank}" for rank in failed))
    lagging = _lagging(row.ranks)
    if lagging:
        parts.append(
            "lagging " + " ".join(f"r{r.rank}" for r in lagging[:3]) + (" …" if len(lagging) > 3 else "")
        )
    return "  ".join(parts)


LAG_FRACTION = 0.05  # a rank this far behind the median step (and 2 steps at least) is lagging


def _lagging(ranks: Sequence[RankRow]) -> list[RankRow]:
    """The ranks behind the median step of the run, furthest behind first."""
    steps = sorted(r.step for r in ranks if r.step is not None)
    if len(steps) < 2:
        return []
    median = statistics.median(steps)
    bound = median - max(2.0, LAG_FRACTION * median)
    behind = [r for r in ranks if r.step is not None and r.step < bound]
    return sorted(behind, key=lambda r: r.step if r.step is not None else 0.0)


def ranks_sheet(rows: Sequence[ExperimentRow], limit: int) -> Sheet:
    """Plain frames: every process of each launched run under its experiment, with its lag."""
    lines = []
    for row in rows:
        lagging = {id(r) for r in _lagging(row.ranks)}
        leader = max((r.step for r in row.ranks if r.step is not None), default=None)
        for rank in row.ranks:
            lag = None if leader is None or rank.step is None else leader - rank.step
            mark = "lagging" if id(rank) in lagging else ("gone" if not rank.alive else "")
            lines.append(
                (row.experiment, rank.rank, rank.node, rank.status or "-", fmt(rank.step), fmt(lag), mark)
            )
    shown, more = _fit(lines, limit)
    columns = tuple(
        Column(name, index)
        for index, name in enumerate(("experiment", "rank", "node", "status", "step", "lag", "mark"))
    )
    return Sheet(columns, tuple(Row(line) for line in shown), more)


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


def _full_progress(row: ExperimentRow) -> str:
    """The progress text at its widest: every phase done."""
    return progress_text([(phase, unit, total, total) for phase, unit, _, total in row.progress])


def info_sheet(rows: Sequence[ExperimentRow], limit: int, *, plain: bool) -> Sheet:
    """The runs' configuration (liveview.experiment.info): one key per line in plain frames, one
    line per experiment on the live screen."""
    if plain:
        pairs, more = _fit([(row.experiment, key, value) for row in rows for key, value in row.info], limit)
        keys = (Column("experiment", 0), Column("key", 1), Column("value", 2, flexible=True))
        return Sheet(keys, tuple(Row(pair) for pair in pairs), more)
    shown, more = _fit([row for row in rows if row.info], limit)
    return Sheet(
        (Column("experiment", 0), Column("info", 1, flexible=True)),
        tuple(Row((row.experiment, "  ".join(f"{key}={value}" for key, value in row.info))) for row in shown),
        more,
    )


def errors_sheet(snapshot: Snapshot, limit: int) -> Sheet:
    """Failed and aborted runs with their error, ERROR and FATAL logs, non-finite metrics; newest first."""
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
    shown, more = _fit(entries, limit)
    columns = (Column("what", 0, width=7), Column("where", 2), Column("detail", 1, flexible=True))
    return Sheet(
        columns,
        tuple(Row((Text(what, style="bold red"), where, detail)) for what, where, detail in shown),
        more,
    )


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


_FAILED = ("failed", "aborted")


def metrics_sheet(rows: Sequence[MetricRow], limit: int, spark_width: int = 40) -> Sheet:
    columns = (
        Column("metric", 0),
        Column("labels", 3, flexible=True, shared="{}"),
        Column("value", 1, width=12, right=True),  # as wide as fmt makes a float
        Column("step", 2, width=6, right=True),
        Column("epoch", 5, width=5, right=True),
        Column("recent", 4, width=spark_width),
        Column("pid", 6, shared="pid {}"),
        Column("topic", 7, shared="topic {}"),
    )
    shown, more = _fit(rows, limit)
    sheet_rows = []
    for row in shown:
        value = Text(row.nonfinite, style="bold red") if row.nonfinite else Text(fmt(row.value))
        name = row.name if row.kind in ("liveview", "gauge") else f"{row.name} ({row.kind})"
        cells = (
            name,
            _labels(row.labels),
            value,
            fmt(row.step),
            fmt(row.epoch),
            Text(sparkline(row.history, spark_width), style="cyan"),
            fmt(row.pid),
            row.topic,
        )
        sheet_rows.append(Row(cells, "dim" if row.age > STALE_SECONDS else ""))
    return Sheet(columns, tuple(sheet_rows), more)


def streams_sheet(rows: Sequence[StreamRow], limit: int) -> Sheet:
    """One line per key. Every stream shown gets two lines at least (a key and `… N more keys`), then
    its share of the rest, so one wide stream does not hide the others."""
    columns = (
        Column("stream", 0),
        Column("key", 1),
        Column("value", 2, flexible=True),
        Column("events", 4, width=6, right=True),
        Column("updated", 3, width=8),
        Column("topic", 5, shared="topic {}"),
    )
    if limit < 1:
        return Sheet(columns, ())
    wants = [max(1, len(row.values)) for row in rows]
    shares = [min(2, want) for want in wants]
    more = ""
    if sum(shares) > limit:  # not every stream fits: as many as do, and a line to say so
        count = 0
        while sum(shares[: count + 1]) <= limit - 1:
            count += 1
        shares, more = shares[:count], f"… {len(rows) - count} more streams"
    _water_fill(shares, wants, limit - bool(more) - sum(shares))
    lines = []
    for row, share in zip(rows, shares, strict=False):
        style = "dim" if row.age > STALE_SECONDS else ""
        keys: list[tuple[Cell, Cell]] = [(key, fmt(value)) for key, value in row.values] or [("", "")]
        if len(keys) > share:
            keys = [*keys[: share - 1], (Text(f"… {len(keys) - share + 1} more keys", style="dim"), "")]
        for index, (key, value) in enumerate(keys):
            first = index == 0
            lines.append(
                Row(
                    (
                        row.stream if first else "",
                        key,
                        value,
                        str(row.events) if first else "",
                        f"{_age(row.age)} ago" if first else "",
                        row.topic if first else "",
                    ),
                    style,
                    continued=not first,
                )
            )
    return Sheet(columns, tuple(lines), more)


def publishers_sheet(rows: Sequence[PublisherRow], limit: int) -> Sheet:
    columns = (
        Column("service", 0),
        Column("rank", 1, width=max((len(row.rank) for row in rows), default=0)),
        Column("pid", 5, width=7),
        Column("state", 2, width=9),
        Column("published", 4, flexible=True),
        Column("dropped", 3, width=7),
        Column("topic", 6, shared="topic {}"),
        Column("host", 7, shared="host {}"),
    )
    shown, more = _fit(rows, limit)
    sheet_rows = []
    for row in shown:
        state = Text("alive", style="green") if row.alive else Text(f"gone {_age(row.age)}", style="dim")
        published = " ".join(f"{kind} {fmt(count)}" for kind, count in row.published if count) or "-"
        dropped = (
            Text(
                " ".join(f"{kind}/{reason} {fmt(count)}" for kind, reason, count in row.dropped if count),
                style="bold red",
            )
            if sum(count for _, _, count in row.dropped)
            else Text("0")
        )
        sheet_rows.append(
            Row((row.service, row.rank, fmt(row.pid), state, published, dropped, row.topic, row.host))
        )
    return Sheet(columns, tuple(sheet_rows), more)


def logs_sheet(lines: Sequence[LogLine], limit: int) -> Sheet:
    """The last `limit` lines, oldest first."""
    columns = (
        Column("time", 2, width=12),
        Column("level", 1, width=5),
        Column("source", 3, shared="from {}"),
        Column("message", 0, width=20, flexible=True),
    )
    sheet_rows = []
    for line in list(lines)[-limit:] if limit > 0 else []:
        style = _severity_style(line)
        message = line.body + (
            "  " + " ".join(f"{k}={v}" for k, v in line.attributes) if line.attributes else ""
        )
        cells = (
            _clock(line.time_unix_nano),
            Text(line.severity, style=style),
            f"{line.service}/{fmt(line.pid)}",
            Text(message, style=style if line.severity_number >= 13 else ""),
        )
        sheet_rows.append(Row(cells))
    return Sheet(columns, tuple(sheet_rows))


def _severity_style(line: LogLine) -> str:
    if line.severity in _SEVERITY_STYLE:
        return _SEVERITY_STYLE[line.severity]
    number = line.severity_number
    return "bold red" if number >= 21 else "red" if number >= 17 else "yellow" if number >= 13 else ""


def _water_fill(sizes: list[int], caps: Sequence[int], spare: int) -> int:
    """Hand `spare` out one at a time, in turn, to the entries still below their cap; what is left."""
    while spare > 0:
        growing = [index for index, (size, cap) in enumerate(zip(sizes, caps, strict=True)) if size < cap][
            :spare
        ]
        if not growing:
            break
        for index in growing:
            sizes[index] += 1
        spare -= len(growing)
    return spare


# -- tables ---------------------------------------------------------------------------------------------------


def plain_table(sheet: Sheet) -> RenderableType:
    """Every column at the width its cells take."""
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="")
    for column in sheet.columns:
        table.add_column(column.name, no_wrap=True, justify="right" if column.right else "left")
    for row in sheet.rows:
        table.add_row(*row.cells, style=row.style)
    return Group(table, Text(sheet.more)) if sheet.more else table


def live_table(sheet: Sheet, room: int) -> tuple[RenderableType, list[str]]:
    """The sheet in `room` cells: the columns that fit, by rank, and the title notes of the columns
    that are the same on every row."""
    chosen, notes = fit_columns(sheet, room)
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    for index, width in chosen:
        column = sheet.columns[index]
        table.add_column(
            column.name,
            width=width,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if column.right else "left",
        )
    for row in sheet.rows:
        table.add_row(*(row.cells[index] for index, _ in chosen), style=row.style)
    if not sheet.more:
        return table, notes
    return Group(table, Text(sheet.more, style="dim", no_wrap=True, overflow="ellipsis")), notes


def fit_columns(sheet: Sheet, room: int) -> tuple[list[tuple[int, int]], list[str]]:
    """(column index, width) of the columns that fit `room` cells, in sheet order, and the notes.

    A column empty on every row is left out; a shared one with one value on every row goes to the
    title. The others are taken by rank while they fit (a flexible one at its least); the room left
    then widens the flexible ones, up to their widest cell.
    """
    notes: list[str] = []
    candidates: list[tuple[int, int, int, int]] = []  # (rank, index, least, widest)
    for index, column in enumerate(sheet.columns):
        texts = {_plain_text(row.cells[index]) for row in sheet.rows}
        if sheet.rows and texts <= {"", "-"}:
            continue
        if column.shared:
            heads = {_plain_text(row.cells[index]) for row in sheet.rows if not row.continued}
            if len(heads) == 1:
                notes.append(column.shared.format(heads.pop()))
                continue
        widest = max(cell_len(text) for text in (column.name, *texts))
        if column.flexible:
            least = max(len(column.name), min(widest, column.width or FLEX_LEAST))
        else:
            least = widest = min(WIDEST, max(column.width, widest))
        candidates.append((column.rank, index, least, widest))
    chosen: list[tuple[int, int, int]] = []  # (index, width, widest)
    used = -GAP
    for _rank, index, least, widest in sorted(candidates):
        if used + GAP + least > room:
            if not chosen:  # the first column is always there, cut to the room
                chosen, used = [(index, max(1, room), widest)], room
            break
        chosen.append((index, least, widest))
        used += GAP + least
    widths = [width for _, width, _ in chosen]
    flexible = [sheet.columns[index].flexible for index, _, _ in chosen]
    caps = [widest if flex else width for (_, width, widest), flex in zip(chosen, flexible, strict=True)]
    _water_fill(widths, caps, room - used)
    return sorted((index, width) for (index, _, _), width in zip(chosen, widths, strict=True)), notes


# -- the live screen ------------------------------------------------------------------------------------------

MIN_ROWS = 5  # a panel shows at least this many rows (or all it has), else it is left out
COMFORT_ROWS = 10  # rows every panel gets before any one gets more
_MEDIUM, _WIDE = 100, 180  # screen widths from which panels stand side by side

# Bands of panels, top to bottom in order of priority, with their shares of the width.
_NARROW_BANDS = (
    (("Experiments", 1),),
    (("Metrics", 1),),
    (("Data streams", 1),),
    (("Errors", 1),),
    (("Logs", 1),),
    (("Publishers", 1),),
)
_MEDIUM_BANDS = (
    (("Experiments", 1),),
    (("Metrics", 1),),
    (("Data streams", 1), ("Publishers", 1)),
    (("Logs", 3), ("Errors", 2)),
)
_WIDE_BANDS = (
    (("Experiments", 1), ("Errors", 1)),
    (("Metrics", 3), ("Data streams", 2)),
    (("Logs", 1), ("Publishers", 1)),
)


@dataclass(frozen=True)
class _Box:
    """A panel of the live screen: the lines it wants, and how to draw it at a given size."""

    lines: int  # lines inside its border that show all its rows, header included
    draw: Callable[[int, int], Panel]  # (width, height) -> the panel
    bonus: int = 0  # lines more it can use once every panel has all its rows (the experiments' info)

    def least(self) -> int:
        return 2 + min(self.lines, 1 + MIN_ROWS)

    def most(self) -> int:
        return 2 + self.lines


@dataclass(frozen=True)
class _Band:
    """Panels side by side: one height for all of them."""

    names: tuple[str, ...]
    boxes: tuple[_Box, ...]
    ratios: tuple[int, ...]

    def least(self) -> int:
        return max(box.least() for box in self.boxes)

    def most(self) -> int:
        return max(box.most() for box in self.boxes)

    def comfortable(self) -> int:
        return max(2 + min(box.lines, 1 + COMFORT_ROWS) for box in self.boxes)

    def full(self) -> int:
        return max(box.most() + box.bonus for box in self.boxes)

    def layout(self, width: int, height: int) -> Layout:
        widths = [width * ratio // sum(self.ratios) for ratio in self.ratios]
        widths[-1] = width - sum(widths[:-1])
        if len(self.boxes) == 1:
            return Layout(self.boxes[0].draw(width, height), size=height)
        band = Layout(size=height)
        band.split_row(
            *(Layout(box.draw(w, height), size=w) for box, w in zip(self.boxes, widths, strict=True))
        )
        return band


def share_height(bands: Sequence[_Band], height: int) -> list[int]:
    """The height of each band, 0 for one left out.

    Bands are taken in order while each can have its least; then every band grows in turn up to
    COMFORT_ROWS rows, then the experiments' info, then all rows; the bottom band takes what is left.
    """
    sizes = [0] * len(bands)
    spare = height
    for index, band in enumerate(bands):
        if band.least() > spare:
            break
        sizes[index] = band.least()
        spare -= band.least()
    shown = [index for index, size in enumerate(sizes) if size]
    if not shown:
        if bands and height >= 3:  # too small for any panel's least: the first one, cut
            sizes[0] = height
        return sizes
    spare = _water_fill(
        sizes, [band.comfortable() if size else 0 for band, size in zip(bands, sizes, strict=True)], spare
    )
    for index in shown:
        need = bands[index].full() - sizes[index]
        if bands[index].full() > bands[index].most() and need <= spare:
            sizes[index] += need
            spare -= need
    spare = _water_fill(
        sizes, [max(band.most(), size) if size else 0 for band, size in zip(bands, sizes, strict=True)], spare
    )
    sizes[shown[-1]] += spare
    return sizes


def _spark_width(room: int) -> int:
    return max(8, min(40, room // 6))


def _panel(content: RenderableType, title: str, notes: Sequence[str], width: int, height: int) -> Panel:
    heading = Text(" · ".join([title, *notes]), no_wrap=True)
    heading.truncate(max(1, width - 6), overflow="ellipsis")  # the border keeps its corners
    return Panel(
        content,
        title=heading,
        title_align="left",
        border_style="blue",
        padding=(0, 1),
        width=width,
        height=height,
    )


def _boxes(snapshot: Snapshot) -> dict[str, _Box]:
    """The live screen's panels for this snapshot; Errors only when there is something in it."""
    experiments, metrics, streams = snapshot.experiments, snapshot.metrics, snapshot.streams
    with_info = [row for row in experiments if row.info]

    def draw_experiments(width: int, height: int) -> Panel:
        inner = height - 2
        table, notes = live_table(experiments_sheet(experiments, inner - 1), width - 4)
        parts = [table]
        left = inner - 1 - len(experiments)
        if with_info and left >= 2:
            info, _ = live_table(info_sheet(with_info, left - 1, plain=False), width - 4)
            parts.append(info)
        return _panel(Group(*parts), "Experiments", notes, width, height)

    def draw_metrics(width: int, height: int) -> Panel:
        sheet = metrics_sheet(metrics, height - 3, _spark_width(width - 4))
        table, notes = live_table(sheet, width - 4)
        return _panel(table, f"Metrics ({len(metrics)} series)", notes, width, height)

    def draw_streams(width: int, height: int) -> Panel:
        table, notes = live_table(streams_sheet(streams, height - 3), width - 4)
        return _panel(table, f"Data streams ({len(streams)})", notes, width, height)

    def draw_errors(width: int, height: int) -> Panel:
        table, notes = live_table(errors_sheet(snapshot, height - 3), width - 4)
        return _panel(table, "Errors", notes, width, height)

    def draw_logs(width: int, height: int) -> Panel:
        sheet = logs_sheet(snapshot.logs, height - 3)
        table, notes = live_table(sheet, width - 4)
        shown, kept = len(sheet.rows), len(snapshot.logs)
        title = f"Logs (last {shown})" if shown == kept else f"Logs (last {shown} of {kept})"
        return _panel(table, title, notes, width, height)

    def draw_publishers(width: int, height: int) -> Panel:
        table, notes = live_table(publishers_sheet(snapshot.publishers, height - 3), width - 4)
        alive = sum(p.alive for p in snapshot.publishers)
        return _panel(
            table, f"Publishers ({alive} alive of {len(snapshot.publishers)})", notes, width, height
        )

    keys = sum(max(1, len(row.values)) for row in streams)
    boxes = {
        "Experiments": _Box(1 + len(experiments), draw_experiments, 1 + len(with_info) if with_info else 0),
        "Metrics": _Box(1 + len(metrics), draw_metrics),
        "Data streams": _Box(1 + keys, draw_streams),
        "Logs": _Box(1 + len(snapshot.logs), draw_logs),
        "Publishers": _Box(1 + len(snapshot.publishers), draw_publishers),
    }
    errors = errors_sheet(snapshot, 1_000_000)
    if errors.rows:
        boxes["Errors"] = _Box(1 + len(errors.rows), draw_errors)
    return boxes


def _bands(boxes: dict[str, _Box], width: int) -> list[_Band]:
    arrangement = _WIDE_BANDS if width >= _WIDE else _MEDIUM_BANDS if width >= _MEDIUM else _NARROW_BANDS
    bands = []
    for members in arrangement:
        present = [(name, ratio) for name, ratio in members if name in boxes]
        if present:
            bands.append(
                _Band(
                    tuple(name for name, _ in present),
                    tuple(boxes[name] for name, _ in present),
                    tuple(ratio for _, ratio in present),
                )
            )
    return bands


# -- frames ---------------------------------------------------------------------------------------------------


def render_screen(
    snapshot: Snapshot, endpoints: dict[str, str | None], width: int, height: int
) -> RenderableType:
    """The live screen, `width` x `height` cells: a header line, then bands of panels that share the
    height; what does not fit is left out and the header names it."""
    bands = _bands(_boxes(snapshot), width)
    sizes = share_height(bands, height - 1)
    left_out = [name for band, size in zip(bands, sizes, strict=True) if not size for name in band.names]
    note = f"no room for {', '.join(left_out)} | " if left_out else ""
    header = Text(
        f" otel-liveview view | {note}{header_text(snapshot, endpoints)}",
        style="bold reverse",
        no_wrap=True,
        overflow="ellipsis",
    )
    parts = [Layout(header, size=1 if any(sizes) else None)]  # alone, it has the screen to itself
    parts += [band.layout(width, size) for band, size in zip(bands, sizes, strict=True) if size]
    layout = Layout()
    layout.split_column(*parts)
    return layout


def render_plain(
    snapshot: Snapshot, endpoints: dict[str, str | None], frame: int = 0, width: int | None = None
) -> str:
    """One plain-text frame: a header line, then each panel under a title line, every column of it.
    No escape sequences."""
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
    sections: list[tuple[str, Sheet]] = [
        (f"experiments ({len(snapshot.experiments)})", experiments_sheet(snapshot.experiments, 50)),
        ("experiment info", info_sheet(snapshot.experiments, 100, plain=True)),
        ("ranks", ranks_sheet(snapshot.experiments, 200)),
        ("errors", errors_sheet(snapshot, 30)),
        (f"metrics ({len(snapshot.metrics)} series)", metrics_sheet(snapshot.metrics, 100)),
        (f"data streams ({len(snapshot.streams)})", streams_sheet(snapshot.streams, 100)),
        (f"logs (last {len(snapshot.logs)})", logs_sheet(snapshot.logs, len(snapshot.logs))),
        (
            f"publishers ({alive} alive of {len(snapshot.publishers)})",
            publishers_sheet(snapshot.publishers, 50),
        ),
    ]
    buffer.write(f"{HEADER} frame {frame} | {header_text(snapshot, endpoints)}\n")  # never wrapped
    for title, sheet in sections:
        console.print(Text(f"--- {title}"))
        if sheet.rows:
            console.print(plain_table(sheet))
    if snapshot.rejections:
        console.print(Text("--- last rejected requests"))
        for reason in snapshot.rejections:
            console.print(Text(f"  {reason}"))
    console.print()
    return "\n".join(line.rstrip() for line in buffer.getvalue().split("\n"))
