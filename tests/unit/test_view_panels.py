"""The terminal view's panels (otel_liveview/view/panels.py) as sheets, in-process: the cells each
panel makes of the board's rows, the columns kept as the width shrinks, and the tables rich draws of
them (a capture console)."""

from __future__ import annotations

import io
import math
import time

import pytest
from rich.console import Console
from rich.text import Text

from otel_liveview.view import panels
from otel_liveview.view.board import (
    ExperimentRow,
    LogLine,
    MetricRow,
    PublisherRow,
    RankRow,
    Snapshot,
    StreamRow,
)
from otel_liveview.view.panels import Column, Row, Sheet, fit_columns, fmt, sparkline, water_fill


def plain(cells: tuple[object, ...]) -> tuple[str, ...]:
    return tuple(cell.plain if isinstance(cell, Text) else str(cell) for cell in cells)


def styles(cells: tuple[object, ...]) -> tuple[str, ...]:
    return tuple(str(cell.style) if isinstance(cell, Text) else "" for cell in cells)


def draw(renderable: object, width: int = 120) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, legacy_windows=False, force_terminal=False).print(
        renderable
    )
    return [line.rstrip() for line in out.getvalue().rstrip("\n").split("\n")]


def experiment(name: str = "e", status: str = "running", **changes: object) -> ExperimentRow:
    values: dict[str, object] = {
        "topic": "t",
        "experiment": name,
        "status": status,
        "error": None,
        "pid": 7,
        "age": 3.0,
    }
    values.update(changes)
    return ExperimentRow(**values)  # type: ignore[arg-type]


def metric(name: str = "loss", **changes: object) -> MetricRow:
    values: dict[str, object] = {
        "name": name,
        "labels": (("phase", "train"),),
        "topic": "t",
        "instance": "i",
        "pid": 7,
        "kind": "liveview",
        "value": 0.5,
        "nonfinite": None,
        "step": 10.0,
        "epoch": 1.0,
        "history": (1.0, 2.0),
        "age": 1.0,
    }
    values.update(changes)
    return MetricRow(**values)  # type: ignore[arg-type]


def rank(name: str, step: float | None, status: str | None = "running", alive: bool = True) -> RankRow:
    return RankRow(name, "n1", status, step, alive)


# -- values ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (True, "True"),
        ("text", "text"),
        (3, "3"),
        (3.0, "3"),
        (-2.0, "-2"),
        (0.1234567, "0.123457"),
        (1e15, "1e+15"),
        (999999999999999.0, "999999999999999"),
        (1.5e-7, "1.5e-07"),
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
    ],
)
def test_fmt(value: object, text: str) -> None:
    assert fmt(value) == text


def test_sparkline_scales_between_the_lowest_and_highest() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([0.0, 8.0]) == "▁█"
    assert sparkline([5, 5, 5]) == "▄▄▄"
    assert sparkline([]) == ""
    assert sparkline([math.nan, math.inf]) == "××"
    assert sparkline([0, math.nan, 7]) == "▁×█"
    assert sparkline(list(range(100)), width=4) == "▁▃▆█"  # the last 4: 96..99
    assert len(sparkline(list(range(100)))) == 40


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59.4, "59s"),
        (60, "1m"),
        (89, "1m"),
        (3599, "60m"),
        (3600, "1.0h"),
        (5400, "1.5h"),
        (360230, "100.1h"),
    ],
)
def test_ages(seconds: float, text: str) -> None:
    assert panels._age(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0:00"),
        (-5, "0:00"),
        (59.9, "0:59"),
        (61, "1:01"),
        (3599, "59:59"),
        (3600, "1:00:00"),
        (3725, "1:02:05"),
    ],
)
def test_durations(seconds: float, text: str) -> None:
    assert panels._duration(seconds) == text


def test_clock_times_are_local_with_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert panels._clock(3723_045_000_000) == "01:02:03.045"
        assert panels._clock(0) == "00:00:00.000"
        assert panels._clock(1_999_500_000) == "00:00:01.999"  # milliseconds cut, never 1000
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_labels_joined() -> None:
    assert panels._labels((("a", "1"), ("b", "2"))) == "a=1,b=2"
    assert panels._labels(()) == ""


def test_fit_keeps_what_fits_and_says_how_many_did_not() -> None:
    assert panels._fit([1, 2, 3], 3) == ([1, 2, 3], "")
    assert panels._fit([1, 2, 3, 4], 3) == ([1, 2], "… 2 more")
    assert panels._fit([1, 2], 1) == ([], "… 2 more")
    assert panels._fit([1, 2], 0) == ([], "")


def test_water_fill_hands_out_in_turn_up_to_the_caps() -> None:
    sizes = [1, 1, 1]
    assert water_fill(sizes, [2, 5, 3], 5) == 0
    assert sizes == [2, 3, 3]
    sizes = [1, 1, 1]
    assert water_fill(sizes, [2, 5, 3], 6) == 0 and sizes == [2, 4, 3]
    sizes = [0, 0]
    assert water_fill(sizes, [1, 1], 5) == 3 and sizes == [1, 1]
    sizes = [0, 0, 0]
    assert water_fill(sizes, [9, 9, 9], 2) == 0 and sizes == [1, 1, 0]  # in turn, from the first
    assert water_fill([], [], 3) == 3


# -- experiments, ranks, progress -------------------------------------------------------------------------------


def test_the_experiments_sheet() -> None:
    rows = [
        experiment("a", elapsed=75.0, progress=(("train", "steps", 50.0, 200.0),), error=None),
        experiment("b", "failed", error="ValueError: x", elapsed=None, pid=None, age=90.0),
    ]
    sheet = panels.experiments_sheet(rows, 10)
    assert [c.name for c in sheet.columns] == [
        "experiment",
        "status",
        "topic",
        "pid",
        "updated",
        "elapsed",
        "ranks",
        "progress",
        "error",
    ]
    assert [c.rank for c in sheet.columns] == [0, 1, 8, 6, 7, 5, 2, 4, 3]
    _, status, _, pid, updated, elapsed, ranks, progress, error = sheet.columns
    assert status.width == panels.STATUS_WIDTH == len("initializing")
    assert (updated.width, elapsed.width, elapsed.right, error.flexible) == (8, 7, True, True)
    assert (pid.shared, sheet.columns[2].shared, sheet.columns[0].width) == ("pid {}", "topic {}", 0)
    assert ranks.width == 0 and progress.width == len("train 200/200 100%")
    assert plain(sheet.rows[0].cells) == (
        "a",
        "running",
        "t",
        "7",
        "3s ago",
        "1:15",
        "",
        "train 50/200 25%",
        "",
    )
    assert plain(sheet.rows[1].cells) == ("b", "failed", "t", "-", "2m ago", "-", "", "", "ValueError: x")
    assert styles(sheet.rows[0].cells)[1] == "bold green" and styles(sheet.rows[1].cells)[1] == "bold red"
    assert styles(sheet.rows[1].cells)[8] == "red"
    assert sheet.more == ""
    assert [
        plain(r.cells)[1]
        for r in panels.experiments_sheet(
            [experiment(status=s) for s in ("completed", "aborted", "initializing", "odd")], 9
        ).rows
    ] == ["completed", "aborted", "initializing", "odd"]
    assert [
        styles(r.cells)[1]
        for r in panels.experiments_sheet(
            [experiment(status=s) for s in ("completed", "aborted", "initializing", "odd")], 9
        ).rows
    ] == ["bold cyan", "bold yellow", "dim", ""]
    cut = panels.experiments_sheet([experiment(str(i)) for i in range(5)], 3)
    assert len(cut.rows) == 2 and cut.more == "… 3 more"


def test_ranks_text_names_the_failed_and_the_lagging() -> None:
    assert panels.ranks_text(experiment()) == ""
    healthy = experiment(ranks=(rank("0", 100), rank("1", 99)), world_size=4)
    assert panels.ranks_text(healthy) == "2/4 alive"
    mixed = experiment(
        ranks=(
            rank("0", 100),
            rank("1", 100, "failed"),
            rank("2", 50, alive=False),
            rank("3", 97),
            rank("4", 100, "aborted"),
            rank("5", None),
        )
    )
    assert panels.ranks_text(mixed) == "5/6 alive  failed r1 r4  lagging r2"
    many = experiment(
        ranks=(*(rank(str(i), 100) for i in range(5)), *(rank(str(i), i - 4) for i in range(5, 9)))
    )
    assert panels.ranks_text(many) == "9/9 alive  lagging r5 r6 r7 …"
    three = experiment(
        ranks=(*(rank(str(i), 100) for i in range(5)), *(rank(str(i), i - 4) for i in range(5, 8)))
    )
    assert panels.ranks_text(three) == "8/8 alive  lagging r5 r6 r7"
    sheet = panels.experiments_sheet([mixed], 5)
    assert sheet.columns[6].width == panels.WIDEST  # 35 characters, cut to 32
    assert panels.experiments_sheet([healthy], 5).columns[6].width == len("2/4 alive")
    assert styles(sheet.rows[0].cells)[6] == "yellow"
    assert plain(sheet.rows[0].cells)[6] == "5/6 alive  failed r1 r4  lagging r2"
    assert styles(panels.experiments_sheet([healthy], 5).rows[0].cells)[6] == ""
    long = experiment(ranks=tuple(rank(str(i), 100, "failed") for i in range(30)))
    assert panels.experiments_sheet([long], 5).columns[6].width == panels.WIDEST


def test_lagging_is_behind_the_median_by_5_percent_and_2_steps_at_least() -> None:
    assert panels._lagging([rank("0", 10)]) == []
    assert panels._lagging([rank("0", 10), rank("1", None)]) == []
    assert [r.rank for r in panels._lagging([rank("0", 10), rank("1", 10), rank("2", 7.9)])] == ["2"]
    assert panels._lagging([rank("0", 10), rank("1", 10), rank("2", 8)]) == []
    thousands = [rank("0", 1000), rank("1", 1000), rank("2", 1000), rank("3", 951), rank("4", 949)]
    assert [r.rank for r in panels._lagging(thousands)] == ["4"]  # 5% of the median 1000: below 950
    ordered = panels._lagging([rank("0", 100), rank("1", 100), rank("2", 100), rank("3", 10), rank("4", 5)])
    assert [r.rank for r in ordered] == ["4", "3"]
    assert panels.LAG_FRACTION == 0.05


def test_the_ranks_sheet_lists_every_process_with_its_lag() -> None:
    run = experiment("run", ranks=(rank("0", 100), rank("1", 60), rank("2", None, None, alive=False)))
    sheet = panels.ranks_sheet([run, experiment("alone")], 10)
    assert [c.name for c in sheet.columns] == ["experiment", "rank", "node", "status", "step", "lag", "mark"]
    assert [c.rank for c in sheet.columns] == list(range(7))
    assert [row.cells for row in sheet.rows] == [
        ("run", "0", "n1", "running", "100", "0", ""),
        ("run", "1", "n1", "running", "60", "40", "lagging"),
        ("run", "2", "n1", "-", "-", "-", "gone"),
    ]
    assert panels.ranks_sheet([run], 2).more == "… 2 more"
    no_steps = experiment("x", ranks=(rank("0", None),))
    assert panels.ranks_sheet([no_steps], 5).rows[0].cells[4:6] == ("-", "-")


def test_progress_text_prefers_steps_and_caps_at_100_percent() -> None:
    assert panels.progress_text([]) == ""
    progress = [
        ("train", "epochs", 2.0, 10.0),
        ("train", "steps", 120.0, 1000.0),
        ("eval", "epochs", 3.0, 40.0),
        ("warmup", "steps", None, 50.0),
        ("extra", "steps", 300.0, 200.0),
    ]
    assert (
        panels.progress_text(progress) == "eval 3/40 8%  extra 300/200 100%  train 120/1000 12%  warmup -/50"
    )
    assert (
        panels.progress_text([("train", "steps", 5.0, 10.0), ("train", "epochs", 1.0, 2.0)])
        == "train 5/10 50%"
    )
    assert panels._full_progress(experiment(progress=(("eval", "steps", None, 40.0),))) == "eval 40/40 100%"


def test_the_info_sheet_plain_and_live() -> None:
    rows = [
        experiment("a", info=(("lr", "0.1"), ("seed", "7"))),
        experiment("b"),
        experiment("c", info=(("x", "1"),)),
    ]
    sheet = panels.info_sheet(rows, 10, plain=True)
    assert [c.name for c in sheet.columns] == ["experiment", "key", "value"] and sheet.columns[2].flexible
    assert [c.rank for c in sheet.columns] == [0, 1, 2]
    assert [row.cells for row in sheet.rows] == [("a", "lr", "0.1"), ("a", "seed", "7"), ("c", "x", "1")]
    assert panels.info_sheet(rows, 2, plain=True).more == "… 2 more"
    live = panels.info_sheet(rows, 10, plain=False)
    assert [c.name for c in live.columns] == ["experiment", "info"] and live.columns[1].flexible
    assert [c.rank for c in live.columns] == [0, 1]
    assert [row.cells for row in live.rows] == [("a", "lr=0.1  seed=7"), ("c", "x=1")]
    assert panels.info_sheet(rows, 1, plain=False).more == "… 2 more"


def log(body: str, severity: str = "INFO", number: int = 9, **changes: object) -> LogLine:
    values: dict[str, object] = {
        "time_unix_nano": 0,
        "severity_number": number,
        "severity": severity,
        "body": body,
        "service": "svc",
        "pid": 7,
        "attributes": (),
    }
    values.update(changes)
    return LogLine(**values)  # type: ignore[arg-type]


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


def test_the_errors_sheet_lists_failed_runs_error_logs_newest_first_and_nonfinite_metrics() -> None:
    shot = snapshot(
        experiments=(
            experiment("ok"),
            experiment("bad", "failed", error="E: x"),
            experiment("stop", "aborted"),
        ),
        errors=(log("older", "ERROR", 17), log("newer", "FATAL", 21, pid=None)),
        metrics=(metric("loss", nonfinite="nan"), metric("acc")),
    )
    sheet = panels.errors_sheet(shot, 10)
    assert [(c.name, c.rank, c.width, c.flexible) for c in sheet.columns] == [
        ("what", 0, 7, False),
        ("where", 2, 0, False),
        ("detail", 1, 0, True),
    ]
    assert [plain(row.cells) for row in sheet.rows] == [
        ("failed", "bad", "E: x"),
        ("aborted", "stop", ""),
        ("FATAL", "svc/-", "newer"),
        ("ERROR", "svc/7", "older"),
        ("nan", "loss", "phase=train"),
    ]
    assert all(styles(row.cells)[0] == "bold red" for row in sheet.rows)
    assert panels.errors_sheet(shot, 3).more == "… 3 more"


# -- metrics, streams, publishers, logs -------------------------------------------------------------------------


def test_the_metrics_sheet() -> None:
    rows = [
        metric(),
        metric(
            "lat", kind="histogram", value=None, nonfinite="inf", step=None, epoch=None, age=31.0, pid=None
        ),
        metric("temp", kind="gauge", history=()),
    ]
    sheet = panels.metrics_sheet(rows, 10, spark_width=8)
    assert [(c.name, c.rank, c.width, c.flexible, c.right, c.shared) for c in sheet.columns] == [
        ("metric", 0, 0, False, False, ""),
        ("labels", 3, 0, True, False, "{}"),
        ("value", 1, 12, False, True, ""),
        ("step", 2, 6, False, True, ""),
        ("epoch", 5, 5, False, True, ""),
        ("recent", 4, 8, False, False, ""),
        ("pid", 6, 0, False, False, "pid {}"),
        ("topic", 7, 0, False, False, "topic {}"),
    ]
    assert plain(sheet.rows[0].cells) == ("loss", "phase=train", "0.5", "10", "1", "▁█", "7", "t")
    assert plain(sheet.rows[1].cells) == ("lat (histogram)", "phase=train", "inf", "-", "-", "▁█", "-", "t")
    assert plain(sheet.rows[2].cells)[:1] == ("temp",)
    assert styles(sheet.rows[0].cells)[2] == "" and styles(sheet.rows[1].cells)[2] == "bold red"
    assert styles(sheet.rows[0].cells)[5] == "cyan"
    assert [row.style for row in sheet.rows] == ["", "dim", ""]
    assert panels.metrics_sheet([metric(age=30.0)], 5).rows[0].style == ""  # dimmed after 30 s, not at
    assert panels.STALE_SECONDS == 30.0
    assert panels.metrics_sheet(rows, 2).more == "… 2 more"
    assert panels.metrics_sheet([metric(history=tuple(range(50)))], 5).columns[5].width == 40


def test_the_streams_sheet_gives_every_stream_two_lines_then_shares_the_rest() -> None:
    wide = StreamRow("t", "wide", tuple((f"k{i}", i) for i in range(10)), 5, 2.0)
    narrow = StreamRow("t", "narrow", (("a", 1.5), ("b", "x")), 3, 40.0)
    empty = StreamRow("t2", "empty", (), 0, 1.0)
    sheet = panels.streams_sheet([wide, narrow, empty], 7)
    assert [(c.name, c.rank, c.width, c.flexible, c.right, c.shared) for c in sheet.columns] == [
        ("stream", 0, 0, False, False, ""),
        ("key", 1, 0, False, False, ""),
        ("value", 2, 0, True, False, ""),
        ("events", 4, 6, False, True, ""),
        ("updated", 3, 8, False, False, ""),
        ("topic", 5, 0, False, False, "topic {}"),
    ]
    stale = StreamRow("t", "s", (("a", 1),), 1, 30.0)
    assert panels.streams_sheet([stale], 5).rows[0].style == ""
    lines = [plain(row.cells) for row in sheet.rows]
    assert lines == [
        ("wide", "k0", "0", "5", "2s ago", "t"),
        ("", "k1", "1", "", "", ""),
        ("", "k2", "2", "", "", ""),
        ("", "… 7 more keys", "", "", "", ""),
        ("narrow", "a", "1.5", "3", "40s ago", "t"),
        ("", "b", "x", "", "", ""),
        ("empty", "", "", "0", "1s ago", "t2"),
    ]
    assert [row.continued for row in sheet.rows] == [False, True, True, True, False, True, False]
    assert [row.style for row in sheet.rows] == ["", "", "", "", "dim", "dim", ""]
    assert sheet.more == ""
    assert styles(sheet.rows[3].cells)[1] == "dim"


def test_streams_that_do_not_fit_are_counted() -> None:
    rows = [StreamRow("t", f"s{i}", (("a", 1), ("b", 2)), 1, 1.0) for i in range(4)]
    sheet = panels.streams_sheet(rows, 5)
    assert [plain(r.cells)[0] for r in sheet.rows] == ["s0", "", "s1", ""]
    assert sheet.more == "… 2 more streams"
    assert panels.streams_sheet(rows, 0).rows == ()
    assert panels.streams_sheet(rows, 0).columns == sheet.columns
    assert panels.streams_sheet(rows, 8).more == ""
    one = panels.streams_sheet(rows, 1)
    assert one.rows == () and one.more == "… 4 more streams"


def test_the_publishers_sheet() -> None:
    rows = [
        PublisherRow(
            "i1", "svc", 7, "h", "t", "python", True, 1.0, (("log", 3.0), ("metric", 0.0)), (), "rank 1 on n"
        ),
        PublisherRow(
            "i2",
            "svc",
            None,
            "h",
            "t",
            "go",
            False,
            120.0,
            (),
            (("log", "queue_full", 2.0), ("data", "x", 0.0), ("metric", "cardinality", 1.0)),
        ),
        PublisherRow("i3", "svc", 9, "h", "t", "go", True, 0.0, (), (("log", "queue_full", 0.0),)),
    ]
    sheet = panels.publishers_sheet(rows, 10)
    assert [(c.name, c.rank, c.width) for c in sheet.columns] == [
        ("service", 0, 0),
        ("rank", 1, len("rank 1 on n")),
        ("pid", 5, 7),
        ("state", 2, 9),
        ("published", 4, 0),
        ("dropped", 3, 7),
        ("topic", 6, 0),
        ("host", 7, 0),
    ]
    assert plain(sheet.rows[0].cells) == ("svc", "rank 1 on n", "7", "alive", "log 3", "0", "t", "h")
    assert plain(sheet.rows[1].cells) == (
        "svc",
        "",
        "-",
        "gone 2m",
        "-",
        "log/queue_full 2 metric/cardinality 1",
        "t",
        "h",
    )
    assert plain(sheet.rows[2].cells)[5] == "0"
    assert styles(sheet.rows[0].cells)[3] == "green" and styles(sheet.rows[1].cells)[3] == "dim"
    assert styles(sheet.rows[1].cells)[5] == "bold red" and styles(sheet.rows[0].cells)[5] == ""
    assert panels.publishers_sheet(rows, 2).more == "… 2 more"


def test_empty_sheets_reserve_no_width() -> None:
    experiments = panels.experiments_sheet([], 5)
    assert (experiments.columns[6].width, experiments.columns[7].width, experiments.rows) == (0, 0, ())
    assert panels.publishers_sheet([], 5).columns[1].width == 0


def test_the_logs_sheet_keeps_the_last_lines_with_their_styles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(panels, "_clock", lambda t: f"t{t}")
    lines = [
        log("one", "DEBUG", 5, time_unix_nano=1),
        log("two", "NOTICE", 10, time_unix_nano=2, attributes=(("a", "1"), ("b", "2"))),
        log("three", "WARNING", 13, time_unix_nano=3),
        log("four", "SEVERE", 17, time_unix_nano=4),
        log("five", "EMERGENCY", 22, time_unix_nano=5),
        log("six", "NOTICE2", 14, time_unix_nano=6),
    ]
    sheet = panels.logs_sheet(lines, 5)
    assert [(c.name, c.rank, c.width, c.flexible) for c in sheet.columns] == [
        ("time", 2, 12, False),
        ("level", 1, 5, False),
        ("source", 3, 0, False),
        ("message", 0, 20, True),
    ]
    assert sheet.columns[2].shared == "from {}"
    assert [plain(row.cells) for row in sheet.rows] == [
        ("t2", "NOTICE", "svc/7", "two  a=1 b=2"),
        ("t3", "WARNING", "svc/7", "three"),
        ("t4", "SEVERE", "svc/7", "four"),
        ("t5", "EMERGENCY", "svc/7", "five"),
        ("t6", "NOTICE2", "svc/7", "six"),
    ]
    assert [styles(row.cells)[1] for row in sheet.rows] == ["", "yellow", "red", "bold red", "yellow"]
    assert [styles(row.cells)[3] for row in sheet.rows] == ["", "yellow", "red", "bold red", "yellow"]
    assert panels.logs_sheet(lines, 0).rows == () and panels.logs_sheet(lines, -1).rows == ()
    assert sheet.more == ""


@pytest.mark.parametrize(
    ("severity", "number", "style"),
    [
        ("TRACE", 1, "dim"),
        ("DEBUG", 5, "dim"),
        ("INFO", 9, "green"),
        ("WARN", 13, "yellow"),
        ("WARNING", 13, "yellow"),
        ("ERROR", 17, "red"),
        ("FATAL", 21, "bold red"),
        ("CRITICAL", 21, "bold red"),
        ("X", 12, ""),
        ("X", 13, "yellow"),
        ("X", 16, "yellow"),
        ("X", 17, "red"),
        ("X", 20, "red"),
        ("X", 21, "bold red"),
    ],
)
def test_severity_styles(severity: str, number: int, style: str) -> None:
    assert panels._severity_style(log("m", severity, number)) == style


def test_a_message_below_warn_is_not_styled() -> None:
    (row,) = panels.logs_sheet([log("m", "INFO", 12)], 1).rows
    assert styles(row.cells) == ("", "green", "", "")


# -- columns and tables ----------------------------------------------------------------------------------------


def sheet_of(columns: tuple[Column, ...], *rows: tuple[str, ...], more: str = "") -> Sheet:
    return Sheet(columns, tuple(Row(cells) for cells in rows), more)


def test_columns_are_kept_by_rank_while_they_fit() -> None:
    sheet = sheet_of(
        (Column("a", 0), Column("b", 2), Column("c", 1)),
        ("aaaa", "bbbbbb", "cc"),
    )
    assert fit_columns(sheet, 100) == ([(0, 4), (1, 6), (2, 2)], [])
    assert fit_columns(sheet, 4 + 2 + 2 + 2 + 6) == ([(0, 4), (1, 6), (2, 2)], [])
    assert fit_columns(sheet, 4 + 2 + 2 + 2 + 5) == ([(0, 4), (2, 2)], [])  # b is the last by rank
    assert fit_columns(sheet, 8) == ([(0, 4), (2, 2)], [])
    assert fit_columns(sheet, 7) == ([(0, 4)], [])
    assert fit_columns(sheet, 2) == ([(0, 2)], [])  # the first column is cut to the room
    assert fit_columns(sheet, 0) == ([(0, 1)], [])


def test_empty_and_shared_columns_leave_the_table() -> None:
    sheet = sheet_of(
        (
            Column("name", 0),
            Column("empty", 1),
            Column("topic", 2, shared="topic {}"),
            Column("pid", 3, shared="pid {}"),
        ),
        ("x", "-", "t", "1"),
        ("y", "", "t", "2"),
    )
    assert fit_columns(sheet, 100) == ([(0, 4), (3, 3)], ["topic t"])
    continued = Sheet(sheet.columns, (Row(("x", "a", "t", "1")), Row(("", "b", "", ""), continued=True)))
    assert fit_columns(continued, 100) == ([(0, 4), (1, 5)], ["topic t", "pid 1"])
    assert fit_columns(Sheet(sheet.columns, ()), 100)[0] == [(0, 4), (1, 5), (2, 5), (3, 3)]


def test_reserved_and_flexible_widths() -> None:
    sheet = sheet_of(
        (Column("n", 0), Column("v", 1, width=6), Column("msg", 2, flexible=True), Column("long", 3)),
        ("x", "1", "m" * 30, "l" * 40),
    )
    chosen, _ = fit_columns(sheet, 200)
    assert chosen == [(0, 1), (1, 6), (2, 30), (3, panels.WIDEST)]
    chosen, _ = fit_columns(sheet, 1 + 2 + 6 + 2 + 12 + 2 + 32)
    assert chosen == [(0, 1), (1, 6), (2, 12), (3, 32)]  # the flexible column at its least
    chosen, _ = fit_columns(sheet, 1 + 2 + 6 + 2 + 20)
    assert chosen == [(0, 1), (1, 6), (2, 20)]  # widened by the room left
    small = sheet_of((Column("name", 0), Column("message", 1, width=20, flexible=True)), ("a", "short"))
    assert fit_columns(small, 100)[0] == [(0, 4), (1, 7)]  # no wider than its widest cell
    least = sheet_of((Column("m", 0, width=3, flexible=True),), ("abcdef",))
    assert fit_columns(least, 4)[0] == [(0, 4)]
    assert (panels.FLEX_LEAST, panels.WIDEST, panels.GAP) == (12, 32, 2)


def test_a_plain_table_draws_every_column_and_the_more_line() -> None:
    sheet = sheet_of(
        (Column("name", 0), Column("value", 1, right=True)),
        ("a", "1"),
        ("bbb", "22"),
        more="… 1 more",
    )
    assert draw(panels.plain_table(sheet)) == ["name  value", "a         1", "bbb      22", "… 1 more"]
    assert draw(panels.plain_table(Sheet(sheet.columns, sheet.rows))) == [
        "name  value",
        "a         1",
        "bbb      22",
    ]


def test_a_live_table_draws_the_columns_that_fit_and_cuts_with_an_ellipsis() -> None:
    sheet = sheet_of(
        (
            Column("name", 0),
            Column("message", 1, flexible=True),
            Column("n", 2, right=True),
            Column("topic", 3, shared="topic {}"),
        ),
        ("a", "a long message that is cut", "1", "t"),
        ("b", "short", "22", "t"),
        more="… 3 more",
    )
    table, notes = panels.live_table(sheet, 4 + 2 + 12 + 2 + 2)
    assert notes == ["topic t"]
    assert draw(table) == [
        "name  message        n",
        "a     a long mess…   1",
        "b     short         22",
        "… 3 more",
    ]
    table, notes = panels.live_table(Sheet(sheet.columns, sheet.rows), 100)
    assert draw(table) == [
        "name  message                      n",
        "a     a long message that is cut   1",
        "b     short                       22",
    ]


def test_streams_that_do_not_fit_with_a_line_to_spare() -> None:
    rows = [StreamRow("t", f"s{i}", (("a", 1), ("b", 2)), 1, 1.0) for i in range(4)]
    sheet = panels.streams_sheet(rows, 6)  # two streams of two lines, the "more" line, one spare
    assert [plain(r.cells)[0] for r in sheet.rows] == ["s0", "", "s1", ""]
    assert sheet.more == "… 2 more streams"
