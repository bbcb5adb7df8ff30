"""The terminal view's frames (otel_liveview/view/screen.py) in-process: the header line, how the
live screen shares its height and width among the panels, each panel's box, and the plain-text
frames, drawn with rich's capture console."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from rich.console import Console
from rich.text import Text

from otel_liveview.view import screen
from otel_liveview.view.board import ExperimentRow, LogLine, MetricRow, PublisherRow, Snapshot, StreamRow
from otel_liveview.view.screen import _Band, _Box, render_plain, render_screen, share_height

ENDPOINTS: dict[str, str | None] = {"grpc": "127.0.0.1:4317", "http": None}


def draw(renderable: object, width: int, height: int | None = None) -> list[str]:
    out = io.StringIO()
    Console(
        file=out, width=width, height=height, color_system=None, legacy_windows=False, force_terminal=False
    ).print(renderable)
    *lines, last = out.getvalue().split("\n")
    assert last == ""
    return lines


def snapshot(**parts: object) -> Snapshot:
    values: dict[str, object] = {
        "experiments": (),
        "metrics": (),
        "streams": (),
        "logs": (),
        "publishers": (),
        "errors": (),
        "totals": {},
        "cut": {},
        "rejections": (),
    }
    values.update(parts)
    return Snapshot(**values)  # type: ignore[arg-type]


def publisher(instance: str, alive: bool) -> PublisherRow:
    return PublisherRow(instance, "svc", 7, "h", "t", "python", alive, 1.0, (("log", 1.0),), ())


def metric(name: str) -> MetricRow:
    return MetricRow(name, (), "t", "i", 7, "liveview", 1.0, None, 1.0, None, (1.0,), 0.0)


def log(index: int, severity: str = "INFO", number: int = 9) -> LogLine:
    return LogLine(index, number, severity, f"line {index}", "svc", 7, ())


def box(lines: int, bonus: int = 0, drawn: list[tuple[int, int]] | None = None) -> _Box:
    def panel_of(width: int, height: int) -> Any:
        if drawn is not None:
            drawn.append((width, height))
        return Text(f"{width}x{height}")

    return _Box(lines, panel_of, bonus)  # type: ignore[arg-type]


def band(*boxes: _Box) -> _Band:
    return _Band(tuple(f"b{i}" for i in range(len(boxes))), boxes, tuple(1 for _ in boxes))


# -- the header ---------------------------------------------------------------------------------------------


def test_the_header_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "strftime", lambda pattern, *when: f"<{pattern}>")
    shot = snapshot(
        publishers=(publisher("a", True), publisher("b", False), publisher("c", True)),
        metrics=(metric("m1"), metric("m2")),
        totals={"metric requests": 5, "log requests": 2, "rejected": 4},
        cut={"streams": 2, "metric rows": 3},
    )
    endpoints: dict[str, str | None] = {"grpc": "g:1", "http": "h:2", "off": None}
    assert screen.header_text(shot, endpoints) == (
        "<%H:%M:%S> | listening grpc g:1 http h:2 | publishers 2 alive of 3 | 2 series | 7 requests | "
        "4 rejected | cut metric rows 3, streams 2"
    )
    assert screen.header_text(snapshot(totals={"log requests": 1}), ENDPOINTS) == (
        "<%H:%M:%S> | listening grpc 127.0.0.1:4317 | publishers 0 alive of 0 | 0 series | 1 requests | 0 rejected"
    )
    assert screen.header_text(snapshot(totals={"metric requests": 3}), {}).split(" | ")[4] == "3 requests"


# -- boxes and bands ------------------------------------------------------------------------------------------


def test_a_box_wants_its_rows_and_a_border_and_shows_five_rows_at_least() -> None:
    assert (box(3).least(), box(3).most()) == (5, 5)
    assert (box(20).least(), box(20).most()) == (2 + 1 + screen.MIN_ROWS, 22)
    assert (screen.MIN_ROWS, screen.COMFORT_ROWS) == (5, 10)


def test_a_band_is_as_tall_as_its_tallest_box() -> None:
    tall = band(box(3), box(20, bonus=4))
    assert (tall.least(), tall.most(), tall.comfortable(), tall.full()) == (8, 22, 2 + 11, 26)
    short = band(box(2, bonus=1), box(3))
    assert (short.least(), short.most(), short.comfortable(), short.full()) == (5, 5, 5, 5)
    assert band(box(4, bonus=3)).full() == 9


def test_a_band_splits_its_width_by_the_ratios_the_last_taking_the_rest() -> None:
    drawn: list[tuple[int, int]] = []
    split = _Band(("a", "b"), (box(1, drawn=drawn), box(1, drawn=drawn)), (3, 2))
    layout = split.layout(101, 7)
    assert drawn == [(60, 7), (41, 7)]
    assert layout.size == 7 and [child.size for child in layout.children] == [60, 41]
    assert draw(layout, 101, 7)[0].split() == ["60x7", "41x7"]
    drawn.clear()
    three = _Band(("a", "b", "c"), tuple(box(1, drawn=drawn) for _ in range(3)), (1, 1, 1))
    three.layout(100, 5)
    assert drawn == [(33, 5), (33, 5), (34, 5)]
    drawn.clear()
    alone = _Band(("a",), (box(1, drawn=drawn),), (1,)).layout(80, 4)
    assert drawn == [(80, 4)] and alone.size == 4


# -- sharing the height -------------------------------------------------------------------------------------------


def test_every_band_gets_its_rows_and_the_last_takes_what_is_left() -> None:
    bands = [band(box(3)), band(box(4)), band(box(2))]
    assert share_height(bands, 40) == [5, 6, 29]


def test_bands_grow_in_turn_to_ten_rows_before_any_gets_all_of_its_rows() -> None:
    bands = [band(box(30)), band(box(30))]
    # least 8 each (16), comfortable 13 each (26), then all: 32 each
    assert share_height(bands, 16) == [8, 8]
    assert share_height(bands, 17) == [9, 8]
    assert share_height(bands, 26) == [13, 13]
    assert share_height(bands, 27) == [14, 13]
    assert share_height(bands, 64) == [32, 32]
    assert share_height(bands, 70) == [32, 38]


def test_the_experiments_info_comes_after_the_comfortable_rows_when_it_fits_whole() -> None:
    bands = [band(box(12, bonus=3)), band(box(30))]
    # least 8 + 8, comfortable 13 + 13 = 26; the first's full is 14 + 3 = 17: 4 more
    assert share_height(bands, 29) == [14, 15]  # 3 spare: the bonus does not fit, the rows do
    assert share_height(bands, 30) == [17, 13]  # exactly the 4 the bonus needs
    assert share_height(bands, 31) == [17, 14]


def test_bands_that_cannot_have_their_least_are_left_out_from_there_on() -> None:
    bands = [band(box(10)), band(box(10)), band(box(2))]
    assert share_height(bands, 15) == [15, 0, 0]  # the third would fit, but comes after one that does not
    assert share_height(bands, 16) == [8, 8, 0]
    assert share_height(bands, 8) == [8, 0, 0]


def test_a_screen_too_small_for_any_panel_shows_the_first_cut() -> None:
    assert share_height([band(box(10)), band(box(10))], 7) == [7, 0]
    assert share_height([band(box(10))], 3) == [3]
    assert share_height([band(box(10))], 2) == [0]
    assert share_height([], 10) == []


def test_the_sparkline_width_follows_the_room() -> None:
    assert [screen._spark_width(room) for room in (0, 53, 54, 60, 240, 245, 246, 1000)] == [
        8,
        8,
        9,
        10,
        40,
        40,
        40,
        40,
    ]


# -- panels ---------------------------------------------------------------------------------------------------


def test_a_panel_has_its_title_and_notes_on_the_border_cut_to_fit() -> None:
    panel = screen._panel(Text("body"), "Metrics", ["topic t", "pid 7"], 40, 4)
    assert draw(panel, 40) == [
        "╭─ Metrics · topic t · pid 7 ──────────╮",
        "│ body                                 │",
        "│                                      │",
        "╰──────────────────────────────────────╯",
    ]
    narrow = draw(screen._panel(Text("x"), "A long title", ["with notes"], 16, 3), 16)
    assert narrow[0] == "╭─ A long ti… ─╮"
    tiny = draw(screen._panel(Text("x"), "Title", [], 7, 3), 7)
    assert tiny[0] == "╭─ … ─╮"
    assert len(draw(screen._panel(Text("x"), "T", [], 7, 3), 20)[0]) == 7


def test_the_bands_by_screen_width() -> None:
    boxes = {
        name: box(1) for name in ("Experiments", "Metrics", "Data streams", "Logs", "Publishers", "Errors")
    }
    narrow = [b.names for b in screen._bands(boxes, 99)]
    assert narrow == [
        ("Experiments",),
        ("Metrics",),
        ("Data streams",),
        ("Errors",),
        ("Logs",),
        ("Publishers",),
    ]
    medium = screen._bands(boxes, 100)
    assert [b.names for b in medium] == [
        ("Experiments",),
        ("Metrics",),
        ("Data streams", "Publishers"),
        ("Logs", "Errors"),
    ]
    assert medium[3].ratios == (3, 2) and medium[3].boxes == (boxes["Logs"], boxes["Errors"])
    assert [b.names for b in screen._bands(boxes, 179)] == [b.names for b in medium]
    wide = screen._bands(boxes, 180)
    assert [b.names for b in wide] == [
        ("Experiments", "Errors"),
        ("Metrics", "Data streams"),
        ("Logs", "Publishers"),
    ]
    assert wide[1].ratios == (3, 2)
    del boxes["Errors"]
    assert [b.names for b in screen._bands(boxes, 100)][3] == ("Logs",)
    assert screen._bands(boxes, 180)[0].names == ("Experiments",)


def experiment(name: str, info: tuple[tuple[str, str], ...] = (), status: str = "running") -> ExperimentRow:
    return ExperimentRow("t", name, status, None, 7, 1.0, None, info)


def test_the_panels_want_their_rows() -> None:
    streams = (StreamRow("t", "s1", (("a", 1), ("b", 2), ("c", 3)), 1, 0.0), StreamRow("t", "s2", (), 0, 0.0))
    shot = snapshot(
        experiments=(experiment("a", (("lr", "1"),)), experiment("b"), experiment("c", (("x", "2"),))),
        metrics=(metric("m1"), metric("m2")),
        streams=streams,
        logs=(log(1), log(2), log(3), log(4)),
        publishers=(publisher("p", True),),
    )
    boxes = screen._boxes(shot)
    assert list(boxes) == ["Experiments", "Metrics", "Data streams", "Logs", "Publishers"]
    assert {name: (b.lines, b.bonus) for name, b in boxes.items()} == {
        "Experiments": (4, 3),
        "Metrics": (3, 0),
        "Data streams": (5, 0),
        "Logs": (5, 0),
        "Publishers": (2, 0),
    }
    failed = snapshot(experiments=(experiment("a", status="failed"),), errors=(log(9, "ERROR", 17),))
    boxes = screen._boxes(failed)
    assert (boxes["Errors"].lines, boxes["Experiments"].bonus) == (3, 0)


def rows_of(lines: list[str]) -> list[str]:
    """The lines inside a panel's border, without it and the padding."""
    return [line[2:-2].rstrip() for line in lines[1:-1]]


def test_each_panel_draws_its_rows_in_the_room_it_gets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("otel_liveview.view.panels._clock", lambda t: f"t{t}")
    shot = snapshot(
        experiments=(experiment("a", (("lr", "1"),)), experiment("b", status="failed")),
        metrics=tuple(metric(f"m{i}") for i in range(6)),
        streams=(
            StreamRow("t", "s1", (("a", 1), ("b", 2)), 1, 0.0),
            StreamRow("t", "s2", (("c", 3),), 0, 0.0),
        ),
        logs=tuple(log(i) for i in range(6)),
        publishers=(publisher("p", True), publisher("q", False)),
        errors=(log(9, "ERROR", 17),),
    )
    boxes = screen._boxes(shot)
    metrics = draw(boxes["Metrics"].draw(60, 6), 60)
    assert metrics[0].startswith("╭─ Metrics (6 series) · pid 7 · topic t ")  # the notes in column order
    assert len(metrics) == 6 and rows_of(metrics)[0].split() == ["metric", "value", "step", "recent"]
    assert [row.split()[0] for row in rows_of(metrics)[1:]] == ["m0", "m1", "…"]
    assert rows_of(metrics)[3] == "… 4 more"
    logs = draw(boxes["Logs"].draw(60, 6), 60)
    assert logs[0].startswith("╭─ Logs (last 3 of 6) · from svc/7 ")
    assert [row.split()[0] for row in rows_of(logs)[1:]] == ["t3", "t4", "t5"]
    assert draw(boxes["Logs"].draw(60, 10), 60)[0].startswith("╭─ Logs (last 6) ")
    publishers = draw(boxes["Publishers"].draw(60, 5), 60)
    assert publishers[0].startswith("╭─ Publishers (1 alive of 2) · topic t · host h ")
    assert [row.split()[0] for row in rows_of(publishers)[1:]] == ["svc", "svc"]
    streams = draw(boxes["Data streams"].draw(60, 6), 60)
    assert streams[0].startswith("╭─ Data streams (2) · topic t ")
    assert [row.split() for row in rows_of(streams)[1:]] == [
        ["s1", "a", "1", "1", "0s", "ago"],
        ["b", "2"],
        ["s2", "c", "3", "0", "0s", "ago"],
    ]
    errors = draw(boxes["Errors"].draw(60, 5), 60)
    assert errors[0].startswith("╭─ Errors ")
    assert [row.split()[0] for row in rows_of(errors)[1:]] == ["failed", "ERROR"]
    experiments = draw(boxes["Experiments"].draw(60, 8), 60)
    assert experiments[0].startswith("╭─ Experiments · topic t · pid 7 ")
    inside = rows_of(experiments)
    assert [row.split()[0] for row in inside[:3]] == ["experiment", "a", "b"]
    assert inside[3].split() == ["experiment", "info"] and inside[4].split() == ["a", "lr=1"]
    without_room = rows_of(draw(boxes["Experiments"].draw(60, 6), 60))
    assert [row.split()[0] for row in without_room if row.strip()] == ["experiment", "a", "b"]
    exactly = rows_of(draw(boxes["Experiments"].draw(60, 7), 60))
    assert exactly[3].split() == ["experiment", "info"] and exactly[4].split() == ["a", "lr=1"]


def test_a_metric_panel_s_sparkline_is_a_sixth_of_its_width() -> None:
    history = tuple(float(i % 8) for i in range(40))
    row = MetricRow("m", (), "t", "i", 7, "liveview", 1.0, None, 1.0, None, history, 0.0)
    shot = snapshot(metrics=(row, row._replace() if hasattr(row, "_replace") else row))
    lines = draw(screen._boxes(shot)["Metrics"].draw(124, 5), 124)
    spark = max(rows_of(lines)[1].split(), key=len)
    assert len(spark) == 20


# -- whole frames ---------------------------------------------------------------------------------------------


def test_the_live_screen_names_the_panels_it_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "strftime", lambda pattern, *when: "12:00:00")
    shot = snapshot(
        experiments=tuple(experiment(f"e{i}") for i in range(10)),
        metrics=tuple(metric(f"m{i}") for i in range(10)),
        publishers=(publisher("p", True),),
    )
    lines = draw(render_screen(shot, ENDPOINTS, 80, 20), 80, 20)
    assert len(lines) == 20
    assert lines[0].startswith(" otel-liveview view | no room for Logs, Publishers | 12:00:00 | ")
    assert lines[1].startswith("╭─ Experiments")
    full = draw(render_screen(shot, ENDPOINTS, 80, 60), 80, 60)
    assert full[0].startswith(" otel-liveview view | 12:00:00 | listening grpc 127.0.0.1:4317 |")
    assert len(full[0]) == 80


def test_a_header_too_long_for_the_screen_is_cut_with_an_ellipsis() -> None:
    lines = draw(render_screen(snapshot(), {"grpc": "x" * 200}, 60, 30), 60, 30)
    assert len(lines[0]) == 60 and lines[0].endswith("…")


def test_a_screen_with_room_for_the_header_only_shows_it_alone() -> None:
    lines = draw(render_screen(snapshot(), ENDPOINTS, 60, 2), 60, 2)
    assert lines[0] == " otel-liveview view | no room for Experiments, Metrics, Dat…"
    assert len(lines) == 2
    wide = draw(render_screen(snapshot(), ENDPOINTS, 200, 2), 200, 2)
    assert wide[0].startswith(
        " otel-liveview view | no room for Experiments, Metrics, Data streams, Logs, Publishers | "
    )


def test_plain_frames_print_every_panel_without_escape_sequences_or_markup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "strftime", lambda pattern, *when: "12:00:00")
    monkeypatch.setattr("otel_liveview.view.panels._clock", lambda t: f"t{t}")
    shot = snapshot(
        experiments=(experiment("[bold]a[/bold] :smile:", (("lr", "1"),)),),
        metrics=(metric("http://x.example/1 " + "z" * 300),),
        logs=(log(1),),
        publishers=(publisher("p", True),),
        totals={"metric requests": 1},
        rejections=("http: bad body", "grpc: worse"),
    )
    frame = render_plain(shot, ENDPOINTS, frame=3)
    lines = frame.split("\n")
    assert lines[0] == (
        "=== otel-liveview view frame 3 | 12:00:00 | listening grpc 127.0.0.1:4317 | publishers 1 alive of 1 | "
        "1 series | 1 requests | 0 rejected"
    )
    titles = [line for line in lines if line.startswith("--- ")]
    assert titles == [
        "--- experiments (1)",
        "--- experiment info",
        "--- ranks",
        "--- errors",
        "--- metrics (1 series)",
        "--- data streams (0)",
        "--- logs (last 1)",
        "--- publishers (1 alive of 1)",
        "--- last rejected requests",
    ]
    assert lines[lines.index("--- experiment info") + 1].split() == ["experiment", "key", "value"]
    assert lines[lines.index("--- experiment info") + 2].split() == ["[bold]a[/bold]", ":smile:", "lr", "1"]
    assert lines[lines.index("--- ranks") + 1] == "--- errors"  # no rows, no table
    assert lines[-5:] == ["--- last rejected requests", "  http: bad body", "  grpc: worse", "", ""]
    assert "\x1b" not in frame
    assert all(line == line.rstrip() for line in lines)
    assert any(("z" * 300) in line for line in lines)  # 400 cells wide: not wrapped
    assert render_plain(shot, ENDPOINTS).startswith("=== otel-liveview view frame 0 | ")
    narrow = render_plain(shot, ENDPOINTS, width=80).split("\n")
    assert not any(("z" * 300) in line for line in narrow)
    assert narrow[0] == lines[0].replace("frame 3", "frame 0")  # the header is never wrapped
    assert "--- last rejected requests" not in render_plain(snapshot(), ENDPOINTS)


def test_plain_frames_keep_the_first_rows_of_each_panel() -> None:
    shot = snapshot(
        experiments=tuple(experiment(f"e{i:02}", ((f"k{i}", "v"), (f"l{i}", "w"))) for i in range(60)),
        metrics=tuple(metric(f"m{i:03}") for i in range(120)),
        publishers=tuple(publisher(f"p{i:02}", True) for i in range(60)),
        errors=tuple(log(i, "ERROR", 17) for i in range(40)),
        logs=tuple(log(i) for i in range(25)),
    )
    lines = render_plain(shot, ENDPOINTS).split("\n")

    def section(title: str) -> list[str]:
        start = next(i for i, line in enumerate(lines) if line.startswith(f"--- {title}"))
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("--- ")), len(lines))
        return [line for line in lines[start + 2 : end] if line]

    assert len(section("experiments (60)")) == 50 and section("experiments (60)")[-1] == "… 11 more"
    assert len(section("experiment info")) == 100 and section("experiment info")[-1] == "… 21 more"
    assert len(section("errors")) == 30 and section("errors")[-1] == "… 11 more"
    assert len(section("metrics (120 series)")) == 100 and section("metrics (120 series)")[-1] == "… 21 more"
    assert len(section("logs (last 25)")) == 25
    assert len(section("publishers (60 alive of 60)")) == 50


def test_plain_frames_list_every_rank_and_stream_key() -> None:
    from otel_liveview.view.board import RankRow

    ranks = tuple(RankRow(str(i), "n", "running", 10.0, True) for i in range(250))
    run = ExperimentRow("t", "big", "running", None, 7, 1.0, None, (), (), ranks, 250)
    streams = tuple(StreamRow("t", f"s{i:03}", (("a", 1),), 1, 0.0) for i in range(150))
    lines = render_plain(snapshot(experiments=(run,), streams=streams), ENDPOINTS).split("\n")
    start = lines.index("--- ranks")
    end = lines.index("--- errors")
    assert len([line for line in lines[start + 2 : end] if line]) == 200
    start = lines.index("--- data streams (150)")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("--- "))
    body = [line for line in lines[start + 2 : end] if line]
    assert len(body) == 100 and body[-1] == "… 51 more streams"


def test_plain_frames_with_more_two_key_streams_than_fit() -> None:
    streams = tuple(StreamRow("t", f"s{i:03}", (("a", 1), ("b", 2)), 1, 0.0) for i in range(60))
    lines = render_plain(snapshot(streams=streams), ENDPOINTS).split("\n")
    start = lines.index("--- data streams (60)")
    body = [line for line in lines[start + 2 :] if line.strip() and not line.startswith("---")]
    assert body[-1] == "… 11 more streams"


def crowded() -> Snapshot:
    long = "long text that goes on " * 5
    return snapshot(
        experiments=tuple(
            ExperimentRow("t", f"e{i}", "failed", long, 7, 1.0, None, (("k", long),)) for i in range(12)
        ),
        metrics=tuple(
            MetricRow(
                f"m{i}",
                (("l", long + str(i)),),
                "t",
                "i",
                7 + i,
                "liveview",
                1.0,
                None,
                1.0,
                None,
                (1.0,),
                0.0,
            )
            for i in range(12)
        ),
        streams=tuple(StreamRow("t", f"s{i}", (("k", long),), 1, 0.0) for i in range(12)),
        logs=tuple(LogLine(i, 9, "INFO", long, "svc", 7, ()) for i in range(12)),
        publishers=tuple(
            PublisherRow(f"i{i}", "svc", 7 + i, "h", "t", "python", True, 0.0, ((long, 1.0),), ())
            for i in range(12)
        ),
        errors=tuple(LogLine(i, 17, "ERROR", long, "svc", 7, ()) for i in range(12)),
    )


def expected_table(name: str, shot: Snapshot, height: int, room: int) -> list[str]:
    """What the panel's table is when it has the rows and the cells inside its border."""
    from otel_liveview.view import panels

    rows = height - 3
    sheet = {
        "Experiments": lambda: panels.experiments_sheet(shot.experiments, rows),
        "Metrics": lambda: panels.metrics_sheet(shot.metrics, rows, screen._spark_width(room)),
        "Data streams": lambda: panels.streams_sheet(shot.streams, rows),
        "Errors": lambda: panels.errors_sheet(shot, rows),
        "Logs": lambda: panels.logs_sheet(shot.logs, rows),
        "Publishers": lambda: panels.publishers_sheet(shot.publishers, rows),
    }[name]()
    table, _ = panels.live_table(sheet, room)
    return [line.rstrip() for line in draw(table, room)]


@pytest.mark.parametrize("name", ["Experiments", "Metrics", "Data streams", "Errors", "Logs", "Publishers"])
def test_each_panel_fills_its_box_exactly(name: str) -> None:
    shot = crowded()
    panel = screen._boxes(shot)[name]
    for width, height in ((40, 7), (60, 9)):
        lines = draw(panel.draw(width, height), width)
        assert len(lines) == height and all(len(line) == width for line in lines)
        assert all(line[0] == line[-1] == "│" for line in lines[1:-1])
        inside = rows_of(lines)
        assert inside[: height - 2] == expected_table(name, shot, height, width - 4)
