"""The view's board (otel_liveview/view/board.py) folding OTLP requests built with the protobuf classes
into `Board.snapshot()` rows, in-process: metric rows, data streams, experiments and their ranks,
publishers, logs and errors, and the board's own counts."""

from __future__ import annotations

import math
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
    Summary,
    SummaryDataPoint,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from otel_liveview.view import decoding, folds
from otel_liveview.view.board import Board, Limits, MetricRow, RankRow, Snapshot, severity_name


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=kv(value)))
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    return AnyValue(string_value=str(value))


def kv(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def resource(instance: str, **extra: Any) -> Resource:
    attributes = {"service.instance.id": instance, "service.name": "svc", "process.pid": 42, **extra}
    return Resource(attributes=kv({k: v for k, v in attributes.items() if v is not None}))


def points(*entries: tuple[dict[str, Any], float, int]) -> list[NumberDataPoint]:
    return [NumberDataPoint(attributes=kv(a), as_double=v, time_unix_nano=t) for a, v, t in entries]


def export(instance: str, *metrics: Metric, **extra: Any) -> ExportMetricsServiceRequest:
    return ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=resource(instance, **extra), scope_metrics=[ScopeMetrics(metrics=metrics)]
            )
        ]
    )


def gauge(name: str, *entries: tuple[dict[str, Any], float, int]) -> Metric:
    return Metric(name=name, gauge=Gauge(data_points=points(*entries)))


def logs(instance: str, *records: LogRecord, **extra: Any) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(resource=resource(instance, **extra), scope_logs=[ScopeLogs(log_records=records)])
        ]
    )


def event(name: str, body: Any, time: int = 1, **attributes: Any) -> LogRecord:
    return LogRecord(event_name=name, body=any_value(body), time_unix_nano=time, attributes=kv(attributes))


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def only(snapshot: Snapshot, name: str) -> MetricRow:
    rows = [row for row in snapshot.metrics if row.name == name]
    assert len(rows) == 1, rows
    return rows[0]


LOSS = {"metric": "loss", "topic": "t", "phase": "train"}


# -- decoding -----------------------------------------------------------------------------------------------


def test_any_values_decode_to_python_values() -> None:
    decode = decoding.decode_any
    assert decode(AnyValue()) is None
    assert decode(any_value("s")) == "s"
    assert decode(any_value(True)) is True
    assert decode(any_value(3)) == 3
    assert decode(any_value(2.5)) == 2.5
    assert decode(any_value(b"\x01\xff")) == "01ff"
    assert decode(any_value({"a": [1, {"b": "c"}], "d": None})) == {"a": [1, {"b": "c"}], "d": "None"}
    nested: Any = "leaf"
    for _ in range(40):
        nested = [nested]
    decoded = decode(any_value(nested))
    for _ in range(33):
        decoded = decoded[0]
    assert decoded == "<too deep>"
    assert decode(any_value(["x"]), depth=31) == ["x"]
    assert decode(any_value(["x"]), depth=32) == ["<too deep>"]
    assert decode(any_value(["x"]), depth=33) == "<too deep>"


def test_label_text_and_short_text() -> None:
    assert [decoding.label_text(v) for v in (True, False, 3, 2.5, "x", None)] == [
        "true",
        "false",
        "3",
        "2.5",
        "x",
        "None",
    ]
    assert decoding.short_text("a" * 300) == "a" * 300
    assert decoding.short_text("a" * 301) == "a" * 299 + "…"
    assert decoding.short_text(12) == "12"


def test_integers_from_anything() -> None:
    assert [decoding.as_int(v) for v in (7, "8", 9.9, "x", None)] == [7, 8, 9, None, None]


@pytest.mark.parametrize(
    ("number", "name"),
    [
        *[(0, "UNSET"), (-1, "UNSET"), (1, "TRACE"), (4, "TRACE"), (5, "DEBUG"), (8, "DEBUG"), (9, "INFO")],
        *[(12, "INFO"), (13, "WARN"), (16, "WARN"), (17, "ERROR"), (20, "ERROR"), (21, "FATAL")],
        *[(24, "FATAL"), (30, "FATAL")],
    ],
)
def test_severity_names_by_number(number: int, name: str) -> None:
    assert severity_name(number) == name


def test_the_severity_text_wins_upper_cased() -> None:
    assert severity_name(9, "notice") == "NOTICE"
    assert severity_name(0, "") == "UNSET"


def test_rank_order_puts_unlaunched_first_and_ranks_in_number_order() -> None:
    names = ["rank 10 on n", "", "rank 9 on n", "rank x on n", "rank 2 on m"]
    assert sorted(names, key=folds._rank_order) == [
        "",
        "rank x on n",
        "rank 2 on m",
        "rank 9 on n",
        "rank 10 on n",
    ]


def test_the_default_limits() -> None:
    limits = Limits()
    assert (limits.metric_rows, limits.history, limits.streams, limits.stream_keys) == (500, 40, 64, 64)
    assert (limits.experiments, limits.publishers, limits.logs, limits.alive_seconds) == (64, 256, 20, 5.0)


# -- metric rows ------------------------------------------------------------------------------------------


def test_value_step_and_epoch_of_one_export_make_one_row() -> None:
    clock = Clock()
    board = Board(clock=clock)
    board.add_metrics(
        export(
            "a",
            gauge("liveview.metric", (LOSS, 0.5, 10)),
            gauge("liveview.metric.step", (LOSS, 7, 10)),
            gauge("liveview.metric.epoch", (LOSS, 2, 10)),
            **{"liveview.topic": "resource-topic"},
        )
    )
    clock.now += 3
    (row,) = board.snapshot().metrics
    assert row == MetricRow(
        name="loss",
        labels=(("phase", "train"),),
        topic="t",
        instance="a",
        pid=42,
        kind="liveview",
        value=0.5,
        nonfinite=None,
        step=7.0,
        epoch=2.0,
        history=(0.5,),
        age=3.0,
    )
    snapshot = board.snapshot()
    assert snapshot.totals == {"metric requests": 1, "points": 3}


def test_the_topic_defaults_to_the_resource_s_and_values_may_be_integers() -> None:
    board = Board()
    point = NumberDataPoint(attributes=kv({"metric": "count", "n": 1}), as_int=5, time_unix_nano=1)
    board.add_metrics(
        export(
            "a",
            Metric(name="liveview.metric", gauge=Gauge(data_points=[point])),
            **{"liveview.topic": "from-resource"},
        )
    )
    (row,) = board.snapshot().metrics
    assert (row.topic, row.labels, row.value) == ("from-resource", (("n", "1"),), 5.0)
    (publisher,) = board.snapshot().publishers
    assert publisher.topic == "from-resource"


def test_history_grows_on_a_change_of_value_or_step_only() -> None:
    clock = Clock()
    board = Board(Limits(history=3), clock=clock)
    for time, value, step in [(1, 1.0, 1), (2, 1.0, 1), (3, 1.0, 2), (4, 2.0, 2), (5, 3.0, 3), (6, 3.0, 3)]:
        clock.now = 1000 + time
        board.add_metrics(
            export(
                "a",
                gauge("liveview.metric", (LOSS, value, time)),
                gauge("liveview.metric.step", (LOSS, step, time)),
            )
        )
    clock.now = 1010
    row = only(board.snapshot(), "loss")
    assert row.history == (1.0, 2.0, 3.0)  # capped at 3
    assert (row.value, row.step, row.age) == (3.0, 3.0, 5.0)  # changed last at 1005


def test_an_older_export_does_not_replace_a_newer_one_but_one_as_old_does() -> None:
    board = Board()
    board.add_metrics(export("a", gauge("liveview.metric", (LOSS, 0.2, 2000))))
    board.add_metrics(export("a", gauge("liveview.metric", (LOSS, 0.9, 1000))))
    assert only(board.snapshot(), "loss").value == 0.2
    board.add_metrics(export("a", gauge("liveview.metric", (LOSS, 0.3, 2000))))
    row = only(board.snapshot(), "loss")
    assert row.value == 0.3 and row.history == (0.2, 0.3)


def test_a_step_alone_keeps_the_value_and_starts_no_history() -> None:
    board = Board()
    board.add_metrics(export("a", gauge("liveview.metric.step", (LOSS, 4, 1))))
    row = only(board.snapshot(), "loss")
    assert (row.value, row.step, row.history, row.kind) == (None, 4.0, (), "liveview")
    board.add_metrics(export("a", gauge("liveview.metric", (LOSS, 1.5, 2))))
    board.add_metrics(export("a", gauge("liveview.metric.epoch", (LOSS, 1, 3))))
    row = only(board.snapshot(), "loss")
    assert (row.value, row.step, row.epoch, row.history) == (1.5, 4.0, 1.0, (1.5,))


def test_nonfinite_values_show_by_kind_and_clear_with_the_next_finite_value() -> None:
    board = Board()
    nan = {**LOSS, "value": "nan"}
    inf = {**LOSS, "value": "inf"}
    board.add_metrics(export("a", gauge("liveview.metric", (LOSS, 0.5, 1))))
    board.add_metrics(
        export(
            "a",
            gauge("liveview.metric.nonfinite", (inf, 0, 2), (nan, 1, 2)),
            gauge("liveview.metric.step", (LOSS, 2, 2)),
        )
    )
    row = only(board.snapshot(), "loss")
    assert (row.nonfinite, row.value) == ("nan", 0.5)
    assert row.history[0] == 0.5 and math.isnan(row.history[1]) and len(row.history) == 2
    board.add_metrics(export("a", gauge("liveview.metric.nonfinite", (nan, 0, 3), (inf, 1, 3))))
    assert only(board.snapshot(), "loss").nonfinite == "inf"
    board.add_metrics(export("a", gauge("liveview.metric", (LOSS, 0.25, 4))))
    row = only(board.snapshot(), "loss")
    assert (row.nonfinite, row.value) == (None, 0.25)
    assert row.history[-1] == 0.25 and len(row.history) == 4


def test_a_nonfinite_point_with_a_value_in_the_same_export_keeps_the_mark() -> None:
    board = Board()
    nan = {**LOSS, "value": "nan"}
    board.add_metrics(
        export("a", gauge("liveview.metric", (LOSS, 0.5, 1)), gauge("liveview.metric.nonfinite", (nan, 1, 1)))
    )
    row = only(board.snapshot(), "loss")
    assert (row.nonfinite, row.value) == ("nan", 0.5)
    board.add_metrics(
        export("a", gauge("liveview.metric", (LOSS, 0.7, 2)), gauge("liveview.metric.nonfinite", (nan, 0, 2)))
    )
    row = only(board.snapshot(), "loss")
    assert (row.nonfinite, row.value) == (None, 0.7)


def test_a_nonfinite_point_without_its_kind_is_a_plain_row() -> None:
    board = Board()
    board.add_metrics(export("a", gauge("liveview.metric.nonfinite", (LOSS, 1, 1))))
    (row,) = board.snapshot().metrics
    assert (row.name, row.kind, row.value) == ("liveview.metric.nonfinite", "gauge", 1.0)


@pytest.mark.parametrize(("value", "label"), [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")])
def test_another_sdk_s_nonfinite_gauge_is_marked(value: float, label: str) -> None:
    board = Board()
    board.add_metrics(export("a", gauge("pressure", ({}, 1.0, 1))))
    board.add_metrics(export("a", gauge("pressure", ({}, value, 2))))
    row = only(board.snapshot(), "pressure")
    assert (row.nonfinite, row.value) == (label, 1.0)
    assert row.history[0] == 1.0 and math.isnan(row.history[1])
    board.add_metrics(export("a", gauge("pressure", ({}, 2.0, 3))))
    row = only(board.snapshot(), "pressure")
    assert (row.nonfinite, row.value, row.history[-1]) == (None, 2.0, 2.0)


def test_other_instruments_are_rows_of_their_kind_without_the_launch_labels() -> None:
    board = Board()
    launch = {"liveview.run.id": "r", "liveview.rank": "1", "liveview.node.name": "n"}
    histogram = Metric(
        name="latency",
        histogram=Histogram(
            data_points=[HistogramDataPoint(count=4, sum=10.0, time_unix_nano=1, attributes=kv({"op": "x"}))]
        ),
    )
    empty = Metric(
        name="empty",
        histogram=Histogram(data_points=[HistogramDataPoint(count=0, sum=0.0, time_unix_nano=1)]),
    )
    exponential = Metric(
        name="sizes",
        exponential_histogram=ExponentialHistogram(
            data_points=[ExponentialHistogramDataPoint(count=2, sum=3.0, time_unix_nano=1)]
        ),
    )
    summary = Metric(
        name="rtt", summary=Summary(data_points=[SummaryDataPoint(count=5, sum=1.0, time_unix_nano=1)])
    )
    total = Metric(name="requests", sum=Sum(data_points=points(({**launch, "code": 200}, 12.0, 1))))
    board.add_metrics(
        export(
            "a",
            gauge("temp", ({**launch, "room": "a"}, 21.0, 1)),
            total,
            histogram,
            empty,
            exponential,
            summary,
            Metric(name="nothing"),
        )
    )
    snapshot = board.snapshot()
    rows = {row.name: row for row in snapshot.metrics}
    assert (rows["temp"].kind, rows["temp"].labels, rows["temp"].value) == ("gauge", (("room", "a"),), 21.0)
    assert (rows["requests"].kind, rows["requests"].labels, rows["requests"].value) == (
        "sum",
        (("code", "200"),),
        12.0,
    )
    assert (rows["latency"].kind, rows["latency"].labels, rows["latency"].value) == (
        "histogram",
        (("op", "x"),),
        2.5,
    )
    assert (rows["sizes"].kind, rows["sizes"].value) == ("histogram", 1.5)
    assert (rows["rtt"].kind, rows["rtt"].value) == ("summary", 0.2)
    assert (rows["empty"].nonfinite, rows["empty"].value) == ("nan", None)
    assert "nothing" not in rows
    assert rows["temp"].topic == "" and rows["temp"].step is None
    assert snapshot.totals["points"] == 6


def test_library_names_without_the_library_s_labels_are_plain_rows() -> None:
    board = Board()
    names = [
        "liveview.metric",
        "liveview.metric.step",
        "liveview.metric.epoch",
        "liveview.data",
        "liveview.experiment.status",
        "liveview.experiment.info",
        "liveview.experiment.start_time_seconds",
        "liveview.experiment.end_time_seconds",
        "liveview.experiment.planned",
        "liveview.published",
        "liveview.dropped",
    ]
    board.add_metrics(export("a", *(gauge(name, ({"other": "x"}, 3.0, 1)) for name in names)))
    snapshot = board.snapshot()
    assert sorted(row.name for row in snapshot.metrics) == sorted(names)
    assert all(row.kind == "gauge" and row.value == 3.0 for row in snapshot.metrics)
    assert snapshot.experiments == () and snapshot.streams == ()
    board2 = Board()
    board2.add_metrics(
        export("a", gauge("liveview.experiment.planned", ({"experiment": "e", "phase": "p"}, 3.0, 1)))
    )
    assert [row.name for row in board2.snapshot().metrics] == ["liveview.experiment.planned"]
    board3 = Board()
    board3.add_metrics(
        export(
            "a",
            gauge("liveview.dropped", ({"kind": "log"}, 3.0, 1)),
            gauge("liveview.data", ({"stream": "s"}, 1.0, 1)),
        )
    )
    assert sorted(row.name for row in board3.snapshot().metrics) == ["liveview.data", "liveview.dropped"]


def test_the_launch_gauges_are_not_rows() -> None:
    board = Board()
    names = [
        "liveview.launch.world_size",
        "liveview.launch.restarts",
        "liveview.launch.restart_count",
        "liveview.launch.step",
    ]
    board.add_metrics(export("a", *(gauge(name, ({"topic": "t"}, 4.0, 1)) for name in names)))
    assert board.snapshot().metrics == ()


def test_rows_are_sorted_by_topic_name_labels_pid_and_instance() -> None:
    board = Board()
    for instance, pid, topic, name, label in [
        ("d", 2, "b", "x", "1"),
        ("c", 1, "b", "x", "1"),
        ("b", 5, "a", "y", "1"),
        ("a", 5, "a", "x", "2"),
        ("e", 5, "a", "x", "1"),
        ("f", None, "a", "x", "1"),
    ]:
        board.add_metrics(
            export(
                instance,
                gauge("liveview.metric", ({"metric": name, "topic": topic, "l": label}, 1, 1)),
                **{"process.pid": pid},
            )
        )
    order = [(row.topic, row.name, row.labels[0][1], row.instance) for row in board.snapshot().metrics]
    assert order == [
        ("a", "x", "1", "f"),
        ("a", "x", "1", "e"),
        ("a", "x", "2", "a"),
        ("a", "y", "1", "b"),
        ("b", "x", "1", "c"),
        ("b", "x", "1", "d"),
    ]


def test_metric_rows_beyond_the_cap_go_least_recently_updated_first() -> None:
    board = Board(Limits(metric_rows=2))
    for name in ("m1", "m2", "m1", "m3"):
        board.add_metrics(export("a", gauge("liveview.metric", ({"metric": name, "topic": "t"}, 1, 1))))
    assert [row.name for row in board.snapshot().metrics] == ["m1", "m3"]
    assert board.snapshot().cut == {"metric rows": 1}


# -- data streams ------------------------------------------------------------------------------------------


def test_data_events_fill_a_stream_with_dotted_keys_and_count() -> None:
    clock = Clock()
    board = Board(clock=clock)
    body = {"temp": 21.5, "pos": {"x": 1, "y": 2}, "name": "n" * 400, "ok": True}
    board.add_logs(logs("a", event("liveview.data", body, 5, stream="sensors", topic="t")))
    board.add_logs(logs("a", event("liveview.data", 7, 6, stream="scalar", topic="t")))
    board.add_logs(logs("a", event("liveview.data", {"temp": 1.0}, 7, topic="t")))  # no stream: counted only
    clock.now += 2
    snapshot = board.snapshot()
    scalar, sensors = snapshot.streams
    assert (sensors.topic, sensors.stream, sensors.events, sensors.age) == ("t", "sensors", 1, 2.0)
    assert sensors.values == (
        ("name", "n" * 299 + "…"),
        ("ok", True),
        ("pos.x", 1),
        ("pos.y", 2),
        ("temp", 21.5),
    )
    assert (scalar.stream, scalar.values) == ("scalar", (("value", 7),))
    assert snapshot.totals == {"log requests": 3, "data events": 3}


def test_a_later_event_replaces_a_key_and_an_older_one_does_not() -> None:
    board = Board()
    board.add_logs(logs("a", event("liveview.data", {"k": 1}, 10, stream="s")))
    board.add_logs(logs("a", event("liveview.data", {"k": 2}, 5, stream="s")))
    assert board.snapshot().streams[0].values == (("k", 1),)
    board.add_logs(logs("a", event("liveview.data", {"k": 3}, 10, stream="s")))
    assert board.snapshot().streams[0].values == (("k", 3),)
    assert board.snapshot().streams[0].events == 3


def test_the_data_gauge_fills_a_stream_only_with_changes_and_never_over_events() -> None:
    board = Board()
    key = {"stream": "s", "key": "temp", "topic": "t"}
    board.add_metrics(export("idle", gauge("liveview.data", (key, 20.0, 100))))
    board.add_metrics(export("busy", gauge("liveview.data", (key, 25.0, 200))))
    board.add_metrics(export("idle", gauge("liveview.data", (key, 20.0, 300))))
    (stream,) = board.snapshot().streams
    assert (stream.values, stream.events) == ((("temp", 25.0),), 0)
    board.add_metrics(export("idle", gauge("liveview.data", (key, 19.0, 150))))  # a change, but older
    assert board.snapshot().streams[0].values == (("temp", 25.0),)
    board.add_metrics(export("idle", gauge("liveview.data", (key, 18.0, 400))))
    assert board.snapshot().streams[0].values == (("temp", 18.0),)
    board.add_logs(logs("a", event("liveview.data", {"temp": 30.0}, 50, stream="s", topic="t")))
    assert board.snapshot().streams[0].values == (("temp", 30.0),)  # an event replaces the gauge's
    board.add_metrics(export("idle", gauge("liveview.data", (key, 17.0, 500))))
    assert board.snapshot().streams[0].values == (("temp", 30.0),)  # the events say it from now on
    assert board.snapshot().metrics == ()


def test_a_stream_keeps_its_first_keys_and_the_cap_of_streams() -> None:
    board = Board(Limits(streams=2, stream_keys=2))
    board.add_logs(logs("a", event("liveview.data", {"a": 1, "b": 2, "c": 3}, 1, stream="s1")))
    board.add_logs(logs("a", event("liveview.data", {"a": 9, "d": 4}, 2, stream="s1")))
    assert board.snapshot().streams[0].values == (("a", 9), ("b", 2))
    for name in ("s2", "s1", "s3"):
        board.add_logs(logs("a", event("liveview.data", 1, 3, stream=name)))
    snapshot = board.snapshot()
    assert [s.stream for s in snapshot.streams] == ["s1", "s3"]
    assert snapshot.cut == {"stream keys": 3, "streams": 1}  # c, d and s1's value


def test_the_gauge_s_memory_of_seen_values_is_bounded() -> None:
    board = Board(Limits(stream_keys=1))
    for index in range(20):
        key = {"stream": "s", "key": "k", "topic": "t"}
        board.add_metrics(export(f"p{index}", gauge("liveview.data", (key, float(index), index + 1))))
    row = board.streams.table.rows[("t", "s")]
    assert len(row.gauge_seen) == 4  # cleared when the 17th process's value came
    assert board.snapshot().streams[0].values == (("k", 19.0),)


# -- experiments ----------------------------------------------------------------------------------------


def status_point(
    experiment: str, status: str, value: float, time: int, topic: str = "t"
) -> tuple[dict[str, Any], float, int]:
    return ({"experiment": experiment, "status": status, "topic": topic}, value, time)


def test_the_status_gauge_s_1_is_the_status() -> None:
    clock = Clock()
    board = Board(clock=clock)
    board.add_metrics(
        export(
            "a",
            gauge(
                "liveview.experiment.status",
                status_point("e", "initializing", 0, 5),
                status_point("e", "running", 1, 5),
            ),
        )
    )
    clock.now += 4
    (row,) = board.snapshot().experiments
    assert (row.topic, row.experiment, row.status, row.error, row.pid, row.age) == (
        "t",
        "e",
        "running",
        None,
        42,
        4.0,
    )
    assert (row.elapsed, row.info, row.progress, row.ranks, row.world_size) == (None, (), (), (), None)


def test_status_events_carry_the_error_which_the_gauge_keeps() -> None:
    board = Board()
    failed = {"experiment": "e", "status": "failed", "error": "ValueError: " + "x" * 400}
    board.add_logs(logs("a", event("liveview.status", failed, 10, topic="t")))
    (row,) = board.snapshot().experiments
    assert (row.status, row.error) == ("failed", "ValueError: " + "x" * 287 + "…")
    board.add_metrics(export("a", gauge("liveview.experiment.status", status_point("e", "failed", 1, 20))))
    assert board.snapshot().experiments[0].error == row.error  # the gauge has no error text
    board.add_metrics(export("a", gauge("liveview.experiment.status", status_point("e", "running", 1, 30))))
    assert (board.snapshot().experiments[0].status, board.snapshot().experiments[0].error) == (
        "running",
        None,
    )
    assert board.snapshot().totals["status events"] == 1


def test_an_event_later_than_its_gauge_still_gives_the_error() -> None:
    board = Board()
    board.add_metrics(export("a", gauge("liveview.experiment.status", status_point("e", "failed", 1, 20))))
    board.add_logs(
        logs(
            "a",
            event("liveview.status", {"experiment": "e", "status": "failed", "error": "E: x"}, 10, topic="t"),
        )
    )
    (row,) = board.snapshot().experiments
    assert (row.status, row.error) == ("failed", "E: x")
    board.add_logs(
        logs("a", event("liveview.status", {"experiment": "e", "status": "running"}, 5, topic="t"))
    )
    assert (board.snapshot().experiments[0].status, board.snapshot().experiments[0].error) == (
        "failed",
        "E: x",
    )


def test_status_events_with_the_fields_in_attributes_and_without_them() -> None:
    board = Board()
    board.add_logs(logs("a", event("liveview.status", "", 10, experiment="e", status="completed", topic="t")))
    board.add_logs(logs("a", event("liveview.status", {"experiment": "only"}, 11)))
    (row,) = board.snapshot().experiments
    assert (row.experiment, row.status, row.topic) == ("e", "completed", "t")
    assert board.snapshot().totals["status events"] == 2


def test_a_name_run_again_is_a_new_run_whose_latest_report_holds() -> None:
    board = Board()
    board.add_metrics(
        export("first", gauge("liveview.experiment.status", status_point("e", "failed", 1, 10)))
    )
    board.add_metrics(
        export(
            "second",
            gauge("liveview.experiment.status", status_point("e", "running", 1, 20)),
            **{"process.pid": 43},
        )
    )
    (row,) = board.snapshot().experiments
    assert (row.status, row.pid) == ("running", 43)
    board.add_metrics(
        export("first", gauge("liveview.experiment.status", status_point("e", "failed", 1, 15)))
    )
    assert (board.snapshot().experiments[0].status, board.snapshot().experiments[0].pid) == ("running", 43)


def launched(rank: str, node: str = "n1", run: str = "run-1", world: Any = 3) -> dict[str, Any]:
    return {
        "liveview.run.id": run,
        "liveview.rank": rank,
        "liveview.node.name": node,
        "liveview.world_size": world,
    }


def test_a_launched_run_is_failed_if_any_rank_failed_and_lists_its_ranks() -> None:
    clock = Clock()
    board = Board(Limits(alive_seconds=5), clock=clock)
    step = {**LOSS, "topic": "t"}
    board.add_metrics(
        export(
            "r10",
            gauge("liveview.experiment.status", status_point("e", "running", 1, 10)),
            gauge("liveview.metric.step", (step, 90, 10)),
            **launched("10", "n2"),
        )
    )
    board.add_metrics(
        export(
            "r2",
            gauge("liveview.experiment.status", status_point("e", "running", 1, 11)),
            gauge("liveview.metric.step", (step, 100, 10)),
            **launched("2"),
        )
    )
    board.add_metrics(
        export(
            "r0",
            gauge("liveview.metric.step", (step, 100, 10), ({**step, "metric": "acc"}, 120, 10)),
            **launched("0"),
        )
    )
    board.add_metrics(
        export("other", gauge("liveview.metric.step", (step, 500, 10)), **launched("1", run="run-2"))
    )
    (row,) = board.snapshot().experiments
    assert row.status == "running" and row.world_size == 3
    assert row.ranks == (
        RankRow("0", "n1", None, 120.0, True),
        RankRow("2", "n1", "running", 100.0, True),
        RankRow("10", "n2", "running", 90.0, True),
    )
    clock.now += 6
    board.add_metrics(
        export("r2", gauge("liveview.experiment.status", status_point("e", "failed", 1, 12)), **launched("2"))
    )
    board.add_logs(
        logs(
            "r10",
            event(
                "liveview.status",
                {"experiment": "e", "status": "aborted", "error": "KeyboardInterrupt"},
                13,
                topic="t",
            ),
            **launched("10", "n2"),
        )
    )
    (row,) = board.snapshot().experiments
    assert (row.status, row.error) == ("failed", None)
    assert [(r.rank, r.status, r.alive) for r in row.ranks] == [
        ("0", None, False),
        ("2", "failed", True),
        ("10", "aborted", True),
    ]
    assert [p.rank for p in board.snapshot().publishers] == [
        "rank 0 on n1",
        "rank 1 on n1",
        "rank 2 on n1",
        "rank 10 on n2",
    ]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (("running", "completed"), "running"),
        (("completed", "completed"), "completed"),
        (("aborted", "running"), "aborted"),
        (("initializing", "completed"), "initializing"),
        (("failed", "aborted"), "failed"),
        (("odd", "completed"), "completed"),
        (("odd", "strange"), "strange"),
    ],
)
def test_a_run_s_status_is_the_worst_of_its_ranks(statuses: tuple[str, str], expected: str) -> None:
    board = Board()
    for index, status in enumerate(statuses):
        board.add_metrics(
            export(
                f"r{index}",
                gauge("liveview.experiment.status", status_point("e", status, 1, 10 + index)),
                **launched(str(index)),
            )
        )
    assert board.snapshot().experiments[0].status == expected


def test_a_launched_rank_without_a_rank_or_world_size_is_shown_as_such() -> None:
    board = Board()
    board.add_metrics(
        export(
            "x",
            gauge("liveview.experiment.status", status_point("e", "running", 1, 10)),
            **{"liveview.run.id": "r", "host.name": "h", "liveview.world_size": "many"},
        )
    )
    (row,) = board.snapshot().experiments
    assert row.ranks == (RankRow("?", "h", "running", None, True),) and row.world_size is None
    (publisher,) = board.snapshot().publishers
    assert publisher.rank == ""  # no rank: not "rank None"


def test_info_start_end_and_planned_phases_of_an_experiment() -> None:
    board = Board(wall_ns=lambda: 1_000_500 * 10**9)
    run = {"experiment": "mnist", "topic": "t"}
    board.add_metrics(
        export(
            "a",
            gauge("liveview.experiment.info", ({**run, "seed": 7, "model.depth": "3"}, 1, 5)),
            gauge("liveview.experiment.start_time_seconds", (run, 1_000_000, 5)),
            gauge("liveview.experiment.end_time_seconds", (run, 0, 5)),
            gauge(
                "liveview.experiment.planned",
                ({**run, "phase": "train", "unit": "steps"}, 1000, 5),
                ({**run, "phase": "train", "unit": "epochs"}, 10, 5),
                ({**run, "phase": "eval", "unit": "epochs"}, 4, 5),
            ),
            gauge(
                "liveview.metric.step",
                (LOSS, 250, 6),
                ({**LOSS, "metric": "acc"}, 300, 6),
                ({"metric": "x", "topic": "other", "phase": "train"}, 999, 6),
            ),
            gauge(
                "liveview.metric.epoch", (LOSS, 2, 6), ({"metric": "v", "topic": "t", "phase": "eval"}, 1, 6)
            ),
        )
    )
    (row,) = board.snapshot().experiments
    assert row.status == "unknown"  # no status reported yet
    assert row.info == (("model.depth", "3"), ("seed", "7"))
    assert row.elapsed == 500.0
    assert row.progress == (
        ("eval", "epochs", 1.0, 4.0),
        ("train", "epochs", 2.0, 10.0),
        ("train", "steps", 300.0, 1000.0),
    )
    board.add_metrics(export("a", gauge("liveview.experiment.end_time_seconds", (run, 1_000_120, 7))))
    assert board.snapshot().experiments[0].elapsed == 120.0
    board.add_metrics(
        export("a", gauge("liveview.experiment.status", status_point("mnist", "completed", 1, 8)))
    )
    assert board.snapshot().experiments[0].status == "completed"


def test_a_phase_without_steps_yet_has_no_progress_and_start_zero_is_not_a_start() -> None:
    board = Board()
    run = {"experiment": "e", "topic": "t"}
    board.add_metrics(
        export(
            "a",
            gauge("liveview.experiment.total", ({**run, "phase": "train", "unit": "steps"}, 100, 5)),
            gauge("liveview.experiment.start_time_seconds", (run, 0, 5)),
            gauge("liveview.metric", (LOSS, 1, 5)),
        )
    )
    (row,) = board.snapshot().experiments
    assert row.progress == (("train", "steps", None, 100.0),) and row.elapsed is None


def test_experiments_beyond_the_cap_go_least_recently_updated_first() -> None:
    board = Board(Limits(experiments=2))
    for name in ("e1", "e2", "e1", "e3"):
        board.add_metrics(
            export("a", gauge("liveview.experiment.status", status_point(name, "running", 1, 1)))
        )
    assert [row.experiment for row in board.snapshot().experiments] == ["e1", "e3"]
    assert board.snapshot().cut == {"experiments": 1}


# -- publishers ----------------------------------------------------------------------------------------------


def test_publishers_with_their_counts_sdk_and_liveness() -> None:
    clock = Clock()
    board = Board(Limits(alive_seconds=5), clock=clock)
    board.add_metrics(
        export(
            "a",
            gauge("liveview.published", ({"kind": "metric"}, 10, 1), ({"kind": "log"}, 3, 1)),
            gauge("liveview.dropped", ({"kind": "log", "reason": "queue_full"}, 2, 1)),
            **{"host.name": "h1", "telemetry.sdk.language": "python", "liveview.topic": "t"},
        )
    )
    clock.now += 5
    board.add_logs(logs("b", LogRecord(time_unix_nano=1), **{"service.name": "other", "process.pid": None}))
    clock.now += 0.5
    a, b = sorted(board.snapshot().publishers, key=lambda p: p.instance)
    assert (a.instance, a.service, a.pid, a.host, a.topic, a.sdk) == ("a", "svc", 42, "h1", "t", "python")
    assert (a.alive, a.age, a.published, a.dropped, a.rank) == (
        False,
        5.5,
        (("log", 3.0), ("metric", 10.0)),
        (("log", "queue_full", 2.0),),
        "",
    )
    assert (b.service, b.pid, b.host, b.sdk, b.alive, b.age) == ("other", None, "", "", True, 0.5)
    board.add_metrics(export("a", gauge("liveview.published", ({"kind": "metric"}, 11, 2))))
    a = next(p for p in board.snapshot().publishers if p.instance == "a")
    assert (a.alive, a.age, dict(a.published)["metric"]) == (True, 0.0, 11.0)


def test_publishers_are_sorted_by_service_rank_and_pid_and_told_apart_without_an_instance_id() -> None:
    board = Board(Limits(publishers=3))
    for pid in (9, 8, 9):
        request = ExportLogsServiceRequest(
            resource_logs=[
                ResourceLogs(
                    resource=Resource(
                        attributes=kv({"service.name": "legacy", "host.name": "h", "process.pid": pid})
                    )
                )
            ]
        )
        board.add_logs(request)
    board.add_logs(ExportLogsServiceRequest(resource_logs=[ResourceLogs(resource=Resource())]))
    assert [(p.service, p.instance) for p in board.snapshot().publishers] == [
        ("legacy", "legacy@h:8"),
        ("legacy", "legacy@h:9"),
        ("unknown_service", "unknown_service@:None"),
    ]
    board.add_logs(logs("z"))
    assert len(board.snapshot().publishers) == 3 and board.snapshot().cut == {"publishers": 1}


# -- logs -------------------------------------------------------------------------------------------------------


def test_log_records_become_lines_with_their_attributes() -> None:
    board = Board()
    record = LogRecord(
        time_unix_nano=5,
        severity_number=13,
        severity_text="warning",
        body=any_value("disk nearly full"),
        attributes=kv({"topic": "t", "event.name": "", **{f"a{i}": i for i in range(10)}}),
    )
    board.add_logs(logs("a", record))
    (line,) = board.snapshot().logs
    assert (line.time_unix_nano, line.severity_number, line.severity, line.body) == (
        5,
        13,
        "WARNING",
        "disk nearly full",
    )
    assert (line.service, line.pid) == ("svc", 42)
    assert line.attributes == tuple((f"a{i}", str(i)) for i in range(8))
    assert board.snapshot().totals == {"log requests": 1, "log records": 1}
    assert board.snapshot().errors == ()


def test_other_bodies_and_other_sdks_events() -> None:
    board = Board(wall_ns=lambda: 99)
    board.add_logs(
        logs(
            "a",
            LogRecord(time_unix_nano=1, body=any_value({"k": "v"})),
            LogRecord(time_unix_nano=2),
            LogRecord(observed_time_unix_nano=3, event_name="browser.click", body=any_value("button")),
            LogRecord(attributes=kv({"event.name": "legacy.event"}), body=any_value(5)),
            event("liveview.metric", {}, 4),
            event("liveview.info", {}, 4),
            LogRecord(attributes=kv({"event_name": "liveview.metric"}), time_unix_nano=4),
        )
    )
    snapshot = board.snapshot()
    assert [(line.time_unix_nano, line.body) for line in snapshot.logs] == [
        (1, "{'k': 'v'}"),
        (2, ""),
        (3, "[browser.click] button"),
        (99, "[legacy.event] 5"),
    ]
    assert snapshot.totals == {
        "log requests": 1,
        "log records": 2,
        "other events": 2,
        "metric events": 2,
        "info events": 1,
    }


def test_the_last_lines_in_time_order_and_errors_kept_longer() -> None:
    board = Board(Limits(logs=3))
    for time, severity in ((50, 9), (10, 17), (40, 21), (20, 9), (30, 9), (40, 9)):
        board.add_logs(
            logs(
                "a",
                LogRecord(
                    time_unix_nano=time, severity_number=severity, body=any_value(f"{time}/{severity}")
                ),
            )
        )
    snapshot = board.snapshot()
    assert [line.body for line in snapshot.logs] == ["40/21", "40/9", "50/9"]  # same time: arrival order
    assert [line.body for line in snapshot.errors] == ["10/17", "40/21"]
    for index in range(12):
        board.add_logs(
            logs("a", LogRecord(time_unix_nano=100 + index, severity_number=17, body=any_value(str(index))))
        )
    assert [line.body for line in board.snapshot().errors] == [str(i) for i in range(2, 12)]
    assert board.snapshot().logs[0].severity == "ERROR"


def test_rejected_requests_are_counted_and_the_last_three_reasons_kept() -> None:
    board = Board()
    for index in range(4):
        board.rejected("http", f"reason {index} " + "x" * 300)
    snapshot = board.snapshot()
    assert snapshot.totals == {"rejected": 4}
    assert [reason[:13] for reason in snapshot.rejections] == [
        "http: reason ",
        "http: reason ",
        "http: reason ",
    ]
    assert [reason.split()[2] for reason in snapshot.rejections] == ["1", "2", "3"]
    assert all(len(reason) == len("http: ") + 200 for reason in snapshot.rejections)


def test_an_empty_board() -> None:
    snapshot = Board().snapshot()
    assert snapshot == Snapshot((), (), (), (), (), (), {}, {}, ())


# -- details the panels rely on ---------------------------------------------------------------------------


def test_maps_and_lists_nested_count_alike_toward_the_depth_limit() -> None:
    nested: Any = "x"
    for _ in range(17):  # levels 0-33: a map, a list, a map, ... (protobuf itself stops at 100 levels)
        nested = {"a": [nested]}
    decoded = decoding.decode_any(any_value(nested))
    for step in range(33):
        decoded = decoded["a"] if step % 2 == 0 else decoded[0]
    assert decoded == "<too deep>"  # the list at level 33
    board = Board()
    board.add_logs(logs("a", event("liveview.data", {"k": nested}, 1, stream="deep")))
    ((key, value),) = board.snapshot().streams[0].values
    assert key == "k.a" and value.startswith("[{'a': [")  # flattened through maps, not lists


def test_every_request_and_every_cut_row_is_counted() -> None:
    board = Board(Limits(metric_rows=1))
    for name in ("m1", "m2", "m3"):
        board.add_metrics(export("a", gauge("liveview.metric", ({"metric": name, "topic": "t"}, 1, 1))))
    snapshot = board.snapshot()
    assert snapshot.totals["metric requests"] == 3 and snapshot.cut == {"metric rows": 2}


def test_a_process_s_exports_update_one_publisher_row() -> None:
    board = Board()
    board.add_metrics(export("a", gauge("liveview.published", ({"kind": "metric"}, 10, 1))))
    board.add_metrics(export("a", gauge("liveview.published", ({"kind": "log"}, 3, 2))))
    (publisher,) = board.snapshot().publishers
    assert publisher.published == (("log", 3.0), ("metric", 10.0))
    assert board.snapshot().metrics == ()  # the library's counts are not rows


def test_rows_without_a_pid_sort_before_those_with_one() -> None:
    board = Board()
    for instance, pid in (("z", None), ("a", 1)):
        board.add_metrics(
            export(
                instance,
                gauge("liveview.metric", ({"metric": "m", "topic": "t"}, 1, 1)),
                **{"process.pid": pid},
            )
        )
    assert [row.instance for row in board.snapshot().metrics] == ["z", "a"]
    assert [p.instance for p in board.snapshot().publishers] == ["z", "a"]


def test_a_publisher_is_alive_up_to_exactly_the_alive_seconds() -> None:
    clock = Clock()
    board = Board(Limits(alive_seconds=5), clock=clock)
    board.add_metrics(
        export("a", gauge("liveview.experiment.status", status_point("e", "running", 1, 1)), **launched("0"))
    )
    clock.now += 5
    assert board.snapshot().publishers[0].alive and board.snapshot().experiments[0].ranks[0].alive


def test_a_rank_s_step_is_its_furthest_on_the_experiment_s_topic_only() -> None:
    board = Board()
    run = launched("5")
    board.add_metrics(
        export("r5", gauge("liveview.experiment.status", status_point("e", "running", 1, 1)), **run)
    )
    board.add_metrics(
        export("r5", gauge("liveview.metric.step", ({"metric": "acc", "topic": "t"}, 120, 2)), **run)
    )
    board.add_metrics(
        export("r5", gauge("liveview.metric.step", ({"metric": "loss", "topic": "t"}, 100, 3)), **run)
    )
    board.add_metrics(
        export("r5", gauge("liveview.metric.step", ({"metric": "x", "topic": "other"}, 999, 4)), **run)
    )
    board.add_metrics(
        export(
            "rq",
            gauge("liveview.experiment.status", status_point("e", "running", 1, 5)),
            **{**run, "liveview.rank": None},
        )
    )
    (row,) = board.snapshot().experiments
    assert [(r.rank, r.step) for r in row.ranks] == [("5", 120.0), ("?", None)]  # numbered ranks first


def test_nonfinite_points_of_one_export_in_any_order() -> None:
    board = Board()
    nan, inf, neg = ({**LOSS, "value": kind} for kind in ("nan", "inf", "-inf"))
    board.add_metrics(export("a", gauge("liveview.metric.nonfinite", (nan, 1, 1), (inf, 0, 1), (neg, 0, 1))))
    snapshot = board.snapshot()
    assert [(row.name, row.nonfinite) for row in snapshot.metrics] == [("loss", "nan")]
    board.add_metrics(export("a", gauge("liveview.metric.step", (LOSS, 5, 2))))
    assert only(board.snapshot(), "loss").nonfinite == "nan"  # a step alone keeps the mark


def test_a_zero_value_is_zero_in_the_history() -> None:
    board = Board()
    board.add_metrics(export("a", gauge("liveview.metric", (LOSS, 0.0, 1))))
    assert only(board.snapshot(), "loss").history == (0.0,)


def test_an_older_point_does_not_stop_the_newer_ones_of_its_export() -> None:
    board = Board()
    board.add_metrics(export("a", gauge("liveview.metric", ({"metric": "old", "topic": "t"}, 1, 100))))
    fresh = [({"metric": f"m{i}", "topic": "t"}, 2.0, 50) for i in range(8)]
    board.add_metrics(export("a", gauge("liveview.metric", ({"metric": "old", "topic": "t"}, 9, 50), *fresh)))
    values = {row.name: row.value for row in board.snapshot().metrics}
    assert values == {"old": 1.0, **{f"m{i}": 2.0 for i in range(8)}}


def test_points_without_a_topic_take_the_publisher_s() -> None:
    board = Board()
    topic = {"liveview.topic": "rt"}
    board.add_metrics(export("a", gauge("liveview.data", ({"stream": "s", "key": "k"}, 1.0, 1)), **topic))
    board.add_metrics(
        export(
            "a",
            gauge("liveview.experiment.status", ({"experiment": "e", "status": "running"}, 1, 1)),
            **topic,
        )
    )
    board.add_metrics(
        export("a", gauge("liveview.experiment.info", ({"experiment": "f", "k": "v"}, 1, 1)), **topic)
    )
    board.add_logs(logs("a", event("liveview.data", {"x": 1}, 1, stream="ev"), **topic))
    board.add_logs(
        logs("a", event("liveview.status", {"experiment": "g", "status": "completed"}, 1), **topic)
    )
    snapshot = board.snapshot()
    assert {(s.topic, s.stream) for s in snapshot.streams} == {("rt", "s"), ("rt", "ev")}
    assert {(e.topic, e.experiment) for e in snapshot.experiments} == {("rt", "e"), ("rt", "f"), ("rt", "g")}
    assert snapshot.metrics == ()


def test_a_status_point_without_its_status_is_a_plain_row() -> None:
    board = Board()
    board.add_metrics(export("a", gauge("liveview.experiment.status", ({"experiment": "e"}, 1, 1))))
    snapshot = board.snapshot()
    assert snapshot.experiments == () and [row.name for row in snapshot.metrics] == [
        "liveview.experiment.status"
    ]


def test_the_library_s_experiment_gauges_make_no_plain_rows() -> None:
    board = Board()
    run = {"experiment": "e", "topic": "t"}
    board.add_metrics(
        export(
            "a",
            gauge("liveview.experiment.info", ({**run, "k": "v"}, 1, 1)),
            gauge("liveview.experiment.start_time_seconds", (run, 0.5, 1)),
            gauge("liveview.experiment.end_time_seconds", (run, 0.5, 1)),
            gauge("liveview.experiment.planned", ({**run, "phase": "p", "unit": "steps"}, 3, 1)),
            gauge("liveview.dropped", ({"kind": "log", "reason": "r"}, 1, 1)),
        )
    )
    snapshot = board.snapshot()
    assert snapshot.metrics == ()
    (row,) = snapshot.experiments
    assert row.elapsed is not None  # a start of 0.5 s after the epoch is a start


def test_the_logs_kept_are_exactly_the_limit() -> None:
    board = Board(Limits(logs=3))
    for time in (1, 2, 3):
        board.add_logs(logs("a", LogRecord(time_unix_nano=time, body=any_value(str(time)))))
    assert [line.body for line in board.snapshot().logs] == ["1", "2", "3"]
