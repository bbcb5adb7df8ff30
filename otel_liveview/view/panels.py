"""The panels of the terminal view as sheets: each panel's columns and its rows as cells.

Plain frames print every column; the live screen keeps the columns that fit by rank, at widths known
from what the rows are (their names, labels, reserved room for values that change), so the same rows
keep the same columns from one frame to the next.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from otel_liveview._internal.mapping import nonfinite_label
from otel_liveview.view.rows import (
    ExperimentRow,
    LogLine,
    MetricRow,
    PublisherRow,
    RankRow,
    Snapshot,
    StreamRow,
)

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


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return nonfinite_label(value)
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
    summaries = {id(row): _rank_summary(row) for row in rows}
    columns = (
        Column("experiment", 0),
        Column("status", 1, width=STATUS_WIDTH),
        Column("topic", 8, shared="topic {}"),
        Column("pid", 6, shared="pid {}"),
        Column("updated", 7, width=8),
        Column("elapsed", 5, width=7, right=True),
        Column("ranks", 2, width=min(WIDEST, max((len(text) for text, _ in summaries.values()), default=0))),
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
                    Text(summaries[id(row)][0], style="yellow" if summaries[id(row)][1] else ""),
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
    return _rank_summary(row)[0]


def _rank_summary(row: ExperimentRow) -> tuple[str, bool]:
    """`ranks_text`, and whether a rank is lagging."""
    if not row.ranks:
        return "", False
    parts = [f"{sum(r.alive for r in row.ranks)}/{row.world_size or len(row.ranks)} alive"]
    failed = [r.rank for r in row.ranks if r.status in _FAILED]
    if failed:
        parts.append("failed " + " ".join(f"r{rank}" for rank in failed))
    lagging = _lagging(row.ranks)
    if lagging:
        parts.append(
            "lagging " + " ".join(f"r{r.rank}" for r in lagging[:3]) + (" …" if len(lagging) > 3 else "")
        )
    return "  ".join(parts), bool(lagging)


# Lagging is measured as the straggler alert measures it, against the median step of the run (one
# fast rank does not make the others lag), with a lower bound fit for short runs; the `lag` column
# of plain frames is the distance behind the leading rank, as the dashboard's Ranks row shows it.
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
    water_fill(shares, wants[: len(shares)], limit - bool(more) - sum(shares))  # the streams shown
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


def water_fill(sizes: list[int], caps: Sequence[int], spare: int) -> int:
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
    water_fill(widths, caps, room - used)
    return sorted((index, width) for (index, _, _), width in zip(chosen, widths, strict=True)), notes


__all__ = [
    "FLEX_LEAST",
    "GAP",
    "LAG_FRACTION",
    "STALE_SECONDS",
    "STATUS_WIDTH",
    "WIDEST",
    "Cell",
    "Column",
    "Row",
    "Sheet",
    "errors_sheet",
    "experiments_sheet",
    "fit_columns",
    "fmt",
    "info_sheet",
    "live_table",
    "logs_sheet",
    "metrics_sheet",
    "plain_table",
    "progress_text",
    "publishers_sheet",
    "ranks_sheet",
    "ranks_text",
    "sparkline",
    "streams_sheet",
    "water_fill",
]
