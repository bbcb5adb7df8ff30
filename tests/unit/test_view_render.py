"""The live screen (otel_liveview/view/screen.py render_screen) drawn in-process through rich's capture
console at the sizes users have: what shows, what is left out, and that nothing overlaps or breaks.

Snapshots are built from the board's row dataclasses (exact values, ages and pids), or from a Board
fed with OTLP requests where the board's folding is part of what is tested.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, replace

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from rich.cells import cell_len
from rich.console import Console

from otel_liveview._internal.config import Settings
from otel_liveview.view.board import (
    Board,
    ExperimentRow,
    LogLine,
    MetricRow,
    PublisherRow,
    Snapshot,
    StreamRow,
)
from otel_liveview.view.screen import render_plain, render_screen

ENDPOINTS: dict[str, str | None] = {"grpc": "127.0.0.1:4317", "http": "127.0.0.1:4318"}
TOPIC = "demo:view"
TRAINER, EVALUATOR = 4242, 4243
INFO = (("batch_size", "64"), ("dataset", "mnist"), ("lr", "0.001"))
ERROR = "FloatingPointError: loss diverged to NaN at step 14"


def screen(snapshot: Snapshot, width: int, height: int) -> list[str]:
    """The frame's lines as a terminal of `width` x `height` shows them."""
    out = io.StringIO()
    console = Console(
        file=out, width=width, height=height, color_system=None, legacy_windows=False, force_terminal=False
    )
    console.print(render_screen(snapshot, ENDPOINTS, width, height))
    return out.getvalue().rstrip("\n").split("\n")


@dataclass(frozen=True)
class Box:
    title: str
    top: int
    left: int
    bottom: int
    right: int
    body: list[str]  # the lines inside the border, padding included


def boxes(lines: list[str]) -> list[Box]:
    """Every panel on the screen, each checked to be a whole box: corners, edges, nothing drawn over it."""
    found = []
    for top, line in enumerate(lines):
        for match in re.finditer("╭", line):
            left = match.start()
            right = line.index("╮", left)
            title = line[left + 1 : right].strip("─").strip()
            bottom = next((row for row in range(top + 1, len(lines)) if lines[row][left] == "╰"), None)
            assert bottom is not None, (f"{title}: no bottom border", lines)
            assert lines[bottom][left : right + 1] == "╰" + "─" * (right - left - 1) + "╯", (title, lines)
            for row in range(top + 1, bottom):
                assert lines[row][left] == "│" and lines[row][right] == "│", (title, row, lines)
            body = [lines[row][left + 1 : right] for row in range(top + 1, bottom)]
            found.append(Box(title, top, left, bottom, right, body))
    for one in found:
        for other in found:
            if one is not other:
                apart = (
                    one.bottom < other.top
                    or other.bottom < one.top
                    or one.right < other.left
                    or other.right < one.left
                )
                assert apart, (one.title, other.title)
    return found


def panel(found: list[Box], name: str) -> Box:
    (box,) = [box for box in found if box.title.split(" (")[0].split(" · ")[0] == name]
    return box


def columns(box: Box) -> list[str]:
    """The header row of the panel's (first) table."""
    return box.body[0].split()


def checked(snapshot: Snapshot, width: int, height: int) -> tuple[list[str], list[Box]]:
    lines = screen(snapshot, width, height)
    assert len(lines) == height, lines
    assert all(len(line) == cell_len(line) <= width for line in lines), lines  # one cell per character
    return lines, boxes(lines)


# -- a demo-like run: two processes, three experiments, seven series, two streams, logs ------------------


def experiments() -> tuple[ExperimentRow, ...]:
    return (
        ExperimentRow(TOPIC, "demo-mnist", "running", None, TRAINER, 0.4, 67.0, INFO,
                      (("eval", "steps", 3.0, 40.0), ("train", "steps", 130.0, 1000.0))),
        ExperimentRow(TOPIC, "demo-sweep", "failed", ERROR, TRAINER, 1.0, 2.0, (("lr", "0.5"),)),
        ExperimentRow(TOPIC, "demo-warmup", "completed", None, TRAINER, 9.0, 30.0),
    )  # fmt: skip


def metric(
    name: str, phase: str, value: float, step: float | None, epoch: float | None = None, *,
    pid: int = TRAINER, nonfinite: str | None = None,
) -> MetricRow:  # fmt: skip
    history = (value * 0.5, value * 0.8, value)
    return MetricRow(name, (("phase", phase),), TOPIC, f"i{pid}", pid, "liveview", value, nonfinite, step,
                     epoch, history, 0.5)  # fmt: skip


def metrics() -> tuple[MetricRow, ...]:
    return (
        metric("accuracy", "eval", 0.54, 3, pid=EVALUATOR),
        metric("accuracy", "train", 0.48, 130, 2),
        metric("cpu_percent", "system", 99.5, None),
        metric("learning_rate", "train", 0.000956, 130, 2),
        metric("loss", "train", 1.66, 130, 2),
        metric("memory_mb", "system", 57.7, None),
        metric("sweep_loss", "sweep", 0.0, 14, nonfinite="nan"),
    )


def streams() -> tuple[StreamRow, ...]:
    sensors = (("arm.x", 0.53), ("arm.y", 0.84), ("pressure", 101.3), ("status", "ok"), ("temperature", 21.7))
    return (
        StreamRow(TOPIC, "sensors", sensors, 73, 0.2),
        StreamRow(TOPIC, "gpu", (("util", 93.0),), 12, 0.3),
    )


def logs(count: int = 20) -> tuple[LogLine, ...]:
    start = 1_700_000_000_000_000_000
    lines = [
        LogLine(start + i * 50_000_000, 5, "DEBUG", f"step {110 + i} loss 1.7", "otel-liveview", TRAINER,
                (("step", str(110 + i)),))
        for i in range(count)
    ]  # fmt: skip
    lines[-3] = replace(lines[-3], severity_number=17, severity="ERROR", body="data loader retried a batch")
    return tuple(lines)


def publishers() -> tuple[PublisherRow, ...]:
    published = (("data", 73.0), ("log", 141.0), ("metric", 400.0), ("status", 3.0))
    return (
        PublisherRow("i4242", "otel-liveview", TRAINER, "vm", TOPIC, "python", True, 0.2, published, ()),
        PublisherRow(
            "i4243", "otel-liveview", EVALUATOR, "vm", TOPIC, "python", True, 0.6, (("log", 2.0),), ()
        ),
    )


def demo(**changes: object) -> Snapshot:
    snapshot = Snapshot(
        experiments(), metrics(), streams(), logs(), publishers(), (logs()[-3],),
        {"metric requests": 60, "log requests": 30}, {}, (),
    )  # fmt: skip
    return replace(snapshot, **changes)  # type: ignore[arg-type]


def body_rows(box: Box) -> list[str]:
    """The panel's lines under its table header that hold something."""
    return [line for line in box.body[1:] if line.strip()]


def status_words(box: Box) -> list[str]:
    return re.findall(r"\b(initializing|running|completed|failed|aborted)\b", "\n".join(box.body))


# -- sizes ----------------------------------------------------------------------------------------------


def test_at_80x24_it_shows_less_and_says_what_it_left_out() -> None:
    lines, found = checked(demo(), 80, 24)
    assert [box.title.split(" · ")[0] for box in found] == [
        "Experiments",
        "Metrics (7 series)",
        "Data streams (2)",
    ]
    assert "| no room for Errors, Logs, Publishers |" in lines[0]
    experiments_box, metrics_box, streams_box = found
    assert columns(experiments_box) == ["experiment", "status", "progress", "error"]
    assert status_words(experiments_box) == ["running", "failed", "completed"]
    assert "FloatingPointE" in experiments_box.body[2]
    # value and step before labels and the sparkline; one topic for all: in the title, not a column
    assert columns(metrics_box) == ["metric", "labels", "value", "step", "epoch", "recent", "pid"]
    assert metrics_box.title == "Metrics (7 series) · topic demo:view"
    assert re.search(r"loss +phase=train +1\.66 +130 +2 ", "\n".join(metrics_box.body))
    assert body_rows(metrics_box)[-1].strip() == "… 2 more"
    # the wide stream does not hide the narrow one
    assert [row.split()[0] for row in body_rows(streams_box) if not row.startswith("  ")] == [
        "sensors",
        "gpu",
    ]
    assert "… 2 more keys" in "\n".join(streams_box.body)


def test_at_120x40_every_panel_and_column_shows() -> None:
    lines, found = checked(demo(), 120, 40)
    titles = [box.title for box in found]
    assert titles == [
        "Experiments · topic demo:view · pid 4242",
        "Metrics (7 series) · topic demo:view",
        "Data streams (2) · topic demo:view",
        "Publishers (2 alive of 2) · topic demo:view · host vm",
        f"Logs (last {len(body_rows(panel(found, 'Logs')))} of 20) · from otel-liveview/4242",
        "Errors",
    ]
    assert "no room" not in lines[0]
    experiments_box = panel(found, "Experiments")
    assert columns(experiments_box) == ["experiment", "status", "updated", "elapsed", "progress", "error"]
    assert status_words(experiments_box) == ["running", "failed", "completed"]
    assert "eval 3/40 8%  train 130/1000 13%" in experiments_box.body[1]
    metrics_box = panel(found, "Metrics")
    assert columns(metrics_box) == ["metric", "labels", "value", "step", "epoch", "recent", "pid"]
    assert [row.split()[0] for row in body_rows(metrics_box)] == [m.name for m in metrics()]
    assert re.search(r"accuracy +phase=eval +0\.54 +3 +- +▁▅█ +4243 ", "\n".join(metrics_box.body))
    assert len(body_rows(panel(found, "Data streams"))) == 6  # every key of both streams
    assert len(body_rows(panel(found, "Publishers"))) == 2
    logs_box = panel(found, "Logs")
    assert columns(logs_box) == ["time", "level", "message"]
    assert body_rows(logs_box)[-1].split()[1:] == ["DEBUG", "step", "129", "loss", "1.7", "step=129"]
    assert columns(panel(found, "Errors")) == ["what", "where", "detail"]


def test_at_200x60_everything_shows_with_the_info_and_all_20_logs() -> None:
    _, found = checked(demo(), 200, 60)
    assert {box.title.split(" (")[0].split(" · ")[0] for box in found} == {
        "Experiments", "Errors", "Metrics", "Data streams", "Logs", "Publishers",
    }  # fmt: skip
    experiments_box = panel(found, "Experiments")
    assert status_words(experiments_box) == ["running", "failed", "completed"]
    text = "\n".join(experiments_box.body)
    assert "demo-mnist  batch_size=64  dataset=mnist  lr=0.001" in text and "demo-sweep  lr=0.5" in text
    logs_box = panel(found, "Logs")
    assert logs_box.title.startswith("Logs (last 20) ") and len(body_rows(logs_box)) == 20
    errors = "\n".join(panel(found, "Errors").body)
    assert ERROR in errors and "data loader retried a batch" in errors and "sweep_loss" in errors
    publishers = body_rows(panel(found, "Publishers"))
    assert "data 73 log 141 metric 400 status 3" in publishers[0]


@pytest.mark.parametrize(
    "size", [(60, 15), (100, 30), (160, 50), (50, 12), (30, 8), (20, 5), (12, 3), (200, 2)]
)
def test_no_size_breaks_a_border_or_draws_one_panel_over_another(size: tuple[int, int]) -> None:
    width, height = size
    lines, found = checked(demo(), width, height)
    if height >= 8:
        assert found and found[0].title.startswith("Experiments")
    else:
        assert lines[0].startswith(" otel-live")


def test_at_60x15_the_panels_it_keeps_have_rows_and_the_rest_are_named() -> None:
    lines, found = checked(demo(), 60, 15)
    assert [box.title.split(" ")[0] for box in found] == ["Experiments", "Metrics"]
    assert lines[0].startswith(" otel-liveview view | no room for Data streams, Errors, Log")
    assert status_words(found[0]) == ["running", "failed", "completed"]
    assert columns(found[1]) == ["metric", "labels", "value", "step"]
    assert len(body_rows(found[1])) == 5  # 4 series and "… 3 more"


def test_the_columns_kept_by_priority_as_the_width_shrinks() -> None:
    expected = {
        80: ["metric", "labels", "value", "step", "epoch", "recent", "pid"],
        60: ["metric", "labels", "value", "step"],
        50: ["metric", "value", "step"],
        32: ["metric", "value"],
    }
    for width, names in expected.items():
        _, found = checked(demo(), width, 40)
        assert columns(panel(found, "Metrics")) == names, width
        assert status_words(panel(found, "Experiments")) == ["running", "failed", "completed"], width
    _, found = checked(demo(), 50, 40)
    assert columns(panel(found, "Experiments")) == ["experiment", "status", "error"]


# -- stable columns ---------------------------------------------------------------------------------------


def test_the_same_rows_keep_the_same_columns_whatever_their_values() -> None:
    later = demo(
        metrics=tuple(
            replace(m, value=-123456.789 if m.step else 1e-7, step=(m.step or 0) * 7000 or None,
                    history=tuple(float(i % 7) for i in range(40)))
            for m in metrics()
        ),
        experiments=tuple(
            replace(e, age=3000.0, elapsed=4000.0,
                    progress=tuple((p, u, t, t) for p, u, _, t in e.progress))
            for e in experiments()
        ),
        logs=tuple(replace(line, body=line.body * 5) for line in logs()),
    )  # fmt: skip
    for width, height in ((80, 24), (120, 40), (200, 60)):
        _, before = checked(demo(), width, height)
        _, after = checked(later, width, height)
        assert [box.title for box in before if not box.title.startswith("Logs")] == [
            box.title for box in after if not box.title.startswith("Logs")
        ]
        for name in ("Metrics", "Data streams", "Publishers"):
            if any(box.title.startswith(name) for box in before):
                assert panel(before, name).body[0] == panel(after, name).body[0], (width, name)
        assert panel(before, "Experiments").body[0] == panel(after, "Experiments").body[0], width


def test_a_column_the_same_on_every_row_goes_to_the_title_and_comes_back_when_rows_differ() -> None:
    two_topics = demo(metrics=(*metrics()[:3], replace(metrics()[3], topic="other:topic")))
    _, found = checked(two_topics, 200, 60)
    metrics_box = panel(found, "Metrics")
    assert metrics_box.title == "Metrics (4 series)"
    assert columns(metrics_box)[-2:] == ["pid", "topic"]
    assert "other:topic" in metrics_box.body[4] and TOPIC in metrics_box.body[1]
    one_process = demo(metrics=tuple(replace(m, pid=TRAINER) for m in metrics()))
    _, found = checked(one_process, 200, 60)
    assert panel(found, "Metrics").title == "Metrics (7 series) · pid 4242 · topic demo:view"
    assert "pid" not in columns(panel(found, "Metrics"))


def test_plain_frames_keep_every_column() -> None:
    frame = render_plain(demo(), ENDPOINTS)
    header = next(line for line in frame.splitlines() if line.startswith("metric "))
    assert header.split() == ["metric", "labels", "value", "step", "epoch", "recent", "pid", "topic"]
    assert re.search(r"^loss +phase=train +1\.66 +130 +2 +▁▅█ +4242 +demo:view$", frame, re.MULTILINE)


# -- data streams from the board ----------------------------------------------------------------------------


def data_event(stream: str, values: dict[str, float], time_ns: int) -> ExportLogsServiceRequest:
    body = KeyValueList(values=[KeyValue(key=k, value=AnyValue(double_value=v)) for k, v in values.items()])
    attributes = [KeyValue(key="stream", value=AnyValue(string_value=stream)),
                  KeyValue(key="topic", value=AnyValue(string_value=TOPIC))]  # fmt: skip
    record = LogRecord(
        time_unix_nano=time_ns,
        event_name="liveview.data",
        body=AnyValue(kvlist_value=body),
        attributes=attributes,
    )
    resource = Resource(attributes=[KeyValue(key="service.instance.id", value=AnyValue(string_value="p1"))])
    return ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=[record])])]
    )


def test_a_wide_stream_keeps_its_first_keys_as_the_library_does_and_leaves_room_for_the_others() -> None:
    board = Board()
    wide = 70
    assert Settings.max_stream_keys < wide
    board.add_logs(data_event("wide", {f"k{i:02d}": float(i) for i in range(wide)}, 1))
    board.add_logs(data_event("narrow", {"a": 1.0, "b": 2.0, "c": 3.0}, 2))
    board.add_logs(data_event("wide", {f"k{i:02d}": float(i + 100) for i in range(wide)}, 3))
    snapshot = board.snapshot()
    streams_by_name = {row.stream: dict(row.values) for row in snapshot.streams}
    kept = [f"k{i:02d}" for i in range(Settings.max_stream_keys)]
    assert list(streams_by_name["wide"]) == kept and streams_by_name["wide"]["k00"] == 100.0
    assert streams_by_name["narrow"] == {"a": 1.0, "b": 2.0, "c": 3.0}
    assert snapshot.cut == {"stream keys": 2 * (wide - Settings.max_stream_keys)}

    _, found = checked(snapshot, 120, 40)
    rows = body_rows(panel(found, "Data streams"))
    names = [row.split()[0] for row in rows if not row.startswith("  ")]
    assert names == ["narrow", "wide"]  # sorted by name, both there
    assert re.match(r" narrow +a +1 +1 +0s ago", rows[0]) and rows[1].split() == ["b", "2"], rows
    assert rows[2].split() == ["c", "3"] and re.match(r" wide +k00 +100 +2 +0s ago", rows[3]), rows
    shown = len(rows) - 3 - 1  # the narrow stream's keys and the wide one's last line
    assert shown >= 3
    assert rows[-1].split()[:4] == ["…", str(Settings.max_stream_keys - shown), "more", "keys"]


def test_many_rows_each_panel_says_how_many_more_and_status_words_stay_whole() -> None:
    statuses = ("running", "completed", "failed", "aborted", "initializing")
    many = demo(
        experiments=tuple(
            ExperimentRow(TOPIC, f"run-{i:02d}", statuses[i % 5], None, TRAINER, 1.0, 5.0) for i in range(30)
        ),
        metrics=tuple(metric(f"m{i:03d}", "train", i * 1.5, i) for i in range(200)),
        streams=tuple(
            StreamRow(TOPIC, f"s{i}", tuple((f"k{j:02d}", j) for j in range(20)), 5, 0.1) for i in range(10)
        ),
    )
    for width, height in ((80, 24), (120, 40), (200, 60)):
        _, found = checked(many, width, height)
        experiments_box = panel(found, "Experiments")
        shown = body_rows(experiments_box)
        assert status_words(experiments_box) == [statuses[i % 5] for i in range(len(shown) - 1)]
        assert shown[-1].strip() == f"… {30 - len(shown) + 1} more"
        metrics_rows = body_rows(panel(found, "Metrics"))
        assert metrics_rows[-1].strip() == f"… {200 - len(metrics_rows) + 1} more"
    _, found = checked(many, 120, 40)
    rows = body_rows(panel(found, "Data streams"))
    assert [row.split() for row in rows] == [
        ["s0", "k00", "0", "5", "0s", "ago"], ["…", "19", "more", "keys"],
        ["s1", "k00", "0", "5", "0s", "ago"], ["…", "19", "more", "keys"],
        ["s2", "k00", "0", "5", "0s", "ago"], ["…", "19", "more", "keys"],
        ["…", "7", "more", "streams"],
    ]  # fmt: skip
