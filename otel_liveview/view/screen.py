"""The screen of the terminal view: the panels' sheets laid out in bands that fit the terminal, or
as plain-text frames (no escape sequences) when stdout is not a terminal or with --plain.

`receiver` listens, `board` folds what arrives into rows, `panels` makes each panel a sheet, and this
module arranges them; `session` draws with rich's Live.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.layout import Layout
from rich.panel import Panel
from rich.text import Text

from otel_liveview.view.panels import (
    Sheet,
    errors_sheet,
    experiments_sheet,
    info_sheet,
    live_table,
    logs_sheet,
    metrics_sheet,
    plain_table,
    publishers_sheet,
    ranks_sheet,
    streams_sheet,
    water_fill,
)
from otel_liveview.view.rows import Snapshot

__all__ = ["render_plain", "render_screen"]

HEADER = "=== otel-liveview view"  # how every plain frame starts
PLAIN_WIDTH = 400  # plain frames to a pipe or file: tables take what they need, up to this


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
    spare = water_fill(
        sizes, [band.comfortable() if size else 0 for band, size in zip(bands, sizes, strict=True)], spare
    )
    for index in shown:
        need = bands[index].full() - sizes[index]
        if bands[index].full() > bands[index].most() and need <= spare:
            sizes[index] += need
            spare -= need
    spare = water_fill(
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
