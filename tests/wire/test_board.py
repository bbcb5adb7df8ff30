"""The view's state (otel_liveview/view/board.py): OTLP requests folded into panel rows.

Most requests here are the real library's, recorded by the in-suite receiver from a publishing
script in its own interpreter and replayed into a Board one by one; the rest are another
OpenTelemetry SDK's (in this process) or built with opentelemetry-proto for cases no SDK sends on
demand (out-of-order exports, caps, foreign attribute shapes).
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from otel_liveview.view.board import Board, Limits, Snapshot
from otel_liveview.view.receiver import OtlpReceiver
from tests.support.processes import publisher_env, run_python
from tests.support.receiver import Receiver, serving_http

pytestmark = pytest.mark.timeout(120)


def replay(receiver: Receiver, board: Board | None = None) -> Board:
    board = board or Board()
    for request in list(receiver.metrics):
        board.add_metrics(request)
    for request in list(receiver.logs):
        board.add_logs(request)
    return board


def metric(snapshot: Snapshot, name: str, **labels: str) -> Any:
    rows = [r for r in snapshot.metrics if r.name == name and dict(r.labels) == labels]
    assert len(rows) == 1, (name, labels, [(r.name, r.labels) for r in snapshot.metrics])
    return rows[0]


# -- the library's own requests -------------------------------------------------------------------------


def test_every_origin_lands_in_metrics_streams_logs_and_publishers() -> None:
    count = 30
    with serving_http() as receiver:
        run_python(
            f"from tests.support.publisher import main; main('board:test', {count}, "
            "['main', 'threads', 'tasks', 'fork', 'spawn'])",
            publisher_env(receiver.endpoint, OTEL_SERVICE_NAME="board-test"),
        )
        board = replay(receiver)
    snapshot = board.snapshot()
    origins = ["main", *(f"thread{i}" for i in range(4)), *(f"task{i}" for i in range(4)), "fork", "spawn"]
    for origin in origins:
        row = metric(snapshot, f"seq_{origin}", phase="test")
        assert (row.value, row.step, row.epoch, row.topic) == (count - 1, count - 1, None, "board:test")
        assert row.nonfinite is None and row.history[-1] == count - 1
    pids = {metric(snapshot, f"seq_{o}", phase="test").pid for o in origins}
    assert len(pids) == 3  # the parent, the fork child and the spawn child

    publishers = {p.pid: p for p in snapshot.publishers}
    assert set(publishers) == pids and all(p.service == "board-test" for p in publishers.values())
    assert len({p.instance for p in snapshot.publishers}) == 3
    parent = publishers[metric(snapshot, "seq_main", phase="test").pid]
    assert dict(parent.published) == {"data": 9 * count, "log": 9 * count, "metric": 9 * count, "status": 0}
    assert parent.dropped == () and parent.topic == "board:test" and parent.sdk == "python"

    (stream,) = snapshot.streams
    assert (stream.topic, stream.stream, stream.events) == ("board:test", "wire", 11 * count)
    values = dict(stream.values)
    assert set(values) == {"origin", "seq", "pid", "value"}
    assert values["pid"] in pids and values["origin"] in origins

    # the last 20 plain log records: no event among them, oldest first
    assert len(snapshot.logs) == 20
    assert [line.time_unix_nano for line in snapshot.logs] == sorted(
        line.time_unix_nano for line in snapshot.logs
    )
    assert all(line.severity == "INFO" and not line.body.startswith("[") for line in snapshot.logs)
    assert {line.body.split()[0] for line in snapshot.logs} <= set(origins)
    assert snapshot.totals["log records"] == 11 * count and snapshot.totals["data events"] == 11 * count
    assert snapshot.totals.get("rejected", 0) == 0 and snapshot.cut == {}


def test_experiment_status_completed_and_failed_with_the_error() -> None:
    script = textwrap.dedent(
        """
        from otel_liveview import LiveViewExperiment
        with LiveViewExperiment(name="good", base_topic="board:status"):
            pass
        try:
            with LiveViewExperiment(name="bad", base_topic="board:status"):
                raise ValueError("diverged at step 7")
        except ValueError:
            pass
        """
    )
    with serving_http() as receiver:
        run_python(script, publisher_env(receiver.endpoint))
        board = replay(receiver)
        only_gauges = replay(Receiver(metrics=list(receiver.metrics)))
    rows = {row.experiment: row for row in board.snapshot().experiments}
    assert rows["good"].status == "completed" and rows["good"].error is None
    assert rows["bad"].status == "failed" and rows["bad"].error == "ValueError: diverged at step 7"
    assert {row.topic for row in rows.values()} == {"board:status"}
    # the gauge alone (events lost) still tells the status
    assert {row.experiment: row.status for row in only_gauges.snapshot().experiments} == {
        "good": "completed",
        "bad": "failed",
    }


def test_non_finite_values_show_as_nan_and_inf_and_clear_again() -> None:
    script = textwrap.dedent(
        """
        import otel_liveview
        from otel_liveview import ExperimentBroadcaster
        b = ExperimentBroadcaster(base_topic="board:nan")
        for value in (0.5, float("nan"), float("inf"), float("-inf"), 0.25):
            b.publish_metric_sync("loss", value, step=3, epoch=1, phase="train")
            assert otel_liveview.flush(10)
        """
    )
    with serving_http() as receiver:
        # no periodic export: one metric request per flush
        run_python(script, publisher_env(receiver.endpoint, OTEL_METRIC_EXPORT_INTERVAL="600000"))
        requests = list(receiver.metrics)
    board = Board()
    seen = []
    for request in requests:
        board.add_metrics(request)
        row = metric(board.snapshot(), "loss", phase="train")
        seen.append((row.nonfinite, row.value))
    assert seen[:5] == [(None, 0.5), ("nan", 0.5), ("inf", 0.5), ("-inf", 0.5), (None, 0.25)]
    row = metric(board.snapshot(), "loss", phase="train")
    assert (row.step, row.epoch) == (3, 1)
    history = row.history
    assert history[0] == 0.5 and all(math.isnan(v) for v in history[1:4]) and history[4] == 0.25
    assert len(history) == 5  # the exit export repeats 0.25: not a new sample


def test_repeated_exports_do_not_grow_the_history_but_new_values_do() -> None:
    script = textwrap.dedent(
        """
        import otel_liveview
        from otel_liveview import ExperimentBroadcaster
        b = ExperimentBroadcaster(base_topic="board:history")
        for step in range(50):
            b.publish_metric_sync("accuracy", step / 100, step=step)
            assert otel_liveview.flush(10)
        for _ in range(3):
            assert otel_liveview.flush(10)
        """
    )
    with serving_http() as receiver:
        run_python(script, publisher_env(receiver.endpoint, OTEL_METRIC_EXPORT_INTERVAL="600000"))
        board = replay(receiver, Board(Limits(history=40)))
    row = metric(board.snapshot(), "accuracy")
    assert row.history == tuple(step / 100 for step in range(10, 50))  # bounded, newest last
    assert (row.value, row.step) == (0.49, 49)


# -- another SDK's requests -----------------------------------------------------------------------------


def test_plain_opentelemetry_sdk_metrics_and_logs_are_shown_as_far_as_they_map() -> None:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource as SdkResource

    board = Board()
    with OtlpReceiver(board, None, "127.0.0.1:0") as receiver:
        endpoint = f"http://{receiver.http_bound}"
        resource = SdkResource.create({"service.name": "other-app"})
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"), export_interval_millis=600_000
        )
        meters = MeterProvider(resource=resource, metric_readers=[reader])
        meter = meters.get_meter("other")
        meter.create_counter("http.requests").add(7, {"route": "/train"})
        meter.create_histogram("latency").record(2.0)
        meter.create_histogram("latency").record(4.0)
        meter.create_gauge("temperature").set(21.5, {"room": "lab"})
        meters.force_flush()
        meters.shutdown()
        loggers = LoggerProvider(resource=resource)
        loggers.add_log_record_processor(
            SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs"))
        )
        logger = loggers.get_logger("other")
        logger.emit(body="disk almost full", severity_number=_severity("WARN"), attributes={"disk": "sda"})
        logger.emit(body={"clicked": "ok"}, event_name="com.example.click")
        loggers.shutdown()
    snapshot = board.snapshot()
    assert metric(snapshot, "http.requests", route="/train").value == 7
    assert metric(snapshot, "http.requests", route="/train").kind == "sum"
    assert metric(snapshot, "latency").value == 3.0 and metric(snapshot, "latency").kind == "histogram"
    assert metric(snapshot, "temperature", room="lab").value == 21.5
    (publisher,) = snapshot.publishers
    assert publisher.service == "other-app" and publisher.alive
    lines = [(line.severity, line.body) for line in snapshot.logs]
    assert ("WARN", "disk almost full") in lines
    assert any(body.startswith("[com.example.click]") and "clicked" in body for _, body in lines)


def _severity(name: str) -> Any:
    from opentelemetry._logs import SeverityNumber

    return getattr(SeverityNumber, name)


# -- built requests: ordering, foreign shapes, caps -----------------------------------------------------


def kv(**attributes: Any) -> list[KeyValue]:
    out = []
    for key, value in attributes.items():
        if isinstance(value, str):
            out.append(KeyValue(key=key, value=AnyValue(string_value=value)))
        elif isinstance(value, float):
            out.append(KeyValue(key=key, value=AnyValue(double_value=value)))
        else:
            out.append(KeyValue(key=key, value=AnyValue(int_value=value)))
    return out


def gauge_request(
    instance: str, name: str, points: list[tuple[dict[str, Any], float, int]], pid: int = 1
) -> ExportMetricsServiceRequest:
    data_points = [NumberDataPoint(attributes=kv(**a), as_double=v, time_unix_nano=t) for a, v, t in points]
    return ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=Resource(
                    attributes=kv(
                        **{"service.instance.id": instance, "service.name": "svc", "process.pid": pid}
                    )
                ),
                scope_metrics=[
                    ScopeMetrics(metrics=[Metric(name=name, gauge=Gauge(data_points=data_points))])
                ],
            )
        ]
    )


def logs_request(instance: str, records: list[LogRecord]) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=kv(**{"service.instance.id": instance, "service.name": "svc"})),
                scope_logs=[ScopeLogs(log_records=records)],
            )
        ]
    )


def test_an_older_export_arriving_late_does_not_replace_a_newer_value() -> None:
    board = Board()
    labels = {"metric": "loss", "topic": "t"}
    board.add_metrics(gauge_request("a", "liveview.metric", [(labels, 0.2, 2_000)]))
    board.add_metrics(gauge_request("a", "liveview.metric", [(labels, 0.9, 1_000)]))  # a retry of old data
    row = metric(board.snapshot(), "loss")
    assert row.value == 0.2 and row.history == (0.2,)


def test_logs_are_kept_in_time_order_and_only_the_last_ones() -> None:
    board = Board(Limits(logs=3))
    times = [50, 10, 40, 20, 30]
    for t in times:
        board.add_logs(
            logs_request("a", [LogRecord(time_unix_nano=t, body=AnyValue(string_value=f"at {t}"))])
        )
    assert [line.body for line in board.snapshot().logs] == ["at 30", "at 40", "at 50"]
    assert board.snapshot().logs[0].severity == "UNSET"


def test_severity_from_number_when_the_text_is_missing() -> None:
    board = Board()
    records = [
        LogRecord(time_unix_nano=i + 1, severity_number=n, body=AnyValue(string_value=str(n)))
        for i, n in enumerate(
            (
                logs_pb2.SEVERITY_NUMBER_DEBUG,
                logs_pb2.SEVERITY_NUMBER_INFO,
                logs_pb2.SEVERITY_NUMBER_WARN,
                logs_pb2.SEVERITY_NUMBER_ERROR,
                logs_pb2.SEVERITY_NUMBER_FATAL,
            )
        )
    ]
    board.add_logs(logs_request("a", records))
    assert [line.severity for line in board.snapshot().logs] == ["DEBUG", "INFO", "WARN", "ERROR", "FATAL"]


def test_data_gauge_alone_only_takes_changes_so_an_idle_process_does_not_win() -> None:
    board = Board()
    key = {"stream": "sensors", "key": "temperature", "topic": "t"}
    board.add_metrics(gauge_request("idle", "liveview.data", [(key, 20.0, 100)]))
    board.add_metrics(gauge_request("busy", "liveview.data", [(key, 25.0, 200)]))
    board.add_metrics(gauge_request("idle", "liveview.data", [(key, 20.0, 300)]))  # the same value again
    (stream,) = board.snapshot().streams
    assert dict(stream.values) == {"temperature": 25.0} and stream.events == 0


def test_library_instrument_names_without_the_library_labels_are_plain_rows() -> None:
    board = Board()
    board.add_metrics(gauge_request("a", "liveview.metric", [({"something": "else"}, 3.0, 1)]))
    board.add_metrics(gauge_request("a", "liveview.data", [({}, 4.0, 1)]))
    names = {(r.name, r.labels, r.value) for r in board.snapshot().metrics}
    assert names == {("liveview.metric", (("something", "else"),), 3.0), ("liveview.data", (), 4.0)}


def test_a_foreign_nan_gauge_is_shown_as_nan() -> None:
    board = Board()
    board.add_metrics(gauge_request("a", "pressure", [({}, math.inf, 1)]))
    row = metric(board.snapshot(), "pressure")
    assert row.nonfinite == "inf" and row.value is None and math.isnan(row.history[0])


def test_every_table_is_capped_and_what_was_cut_is_counted() -> None:
    limits = Limits(metric_rows=5, history=4, streams=2, stream_keys=3, experiments=2, publishers=3, logs=2)
    board = Board(limits)
    for i in range(10):
        board.add_metrics(
            gauge_request(f"p{i}", "liveview.metric", [({"metric": f"m{i}", "topic": "t"}, i, 1)])
        )
    for v in range(10):
        board.add_metrics(
            gauge_request("p9", "liveview.metric", [({"metric": "m9", "topic": "t"}, v + 100, v + 2)])
        )
    for i in range(4):
        for k in range(5):
            board.add_metrics(
                gauge_request(
                    "p9", "liveview.data", [({"stream": f"s{i}", "key": f"k{k}", "topic": "t"}, k, 1)]
                )
            )
        board.add_metrics(
            gauge_request(
                "p9",
                "liveview.experiment.status",
                [({"experiment": f"e{i}", "status": "running", "topic": "t"}, 1.0, 1)],
            )
        )
    snapshot = board.snapshot()
    assert [r.name for r in snapshot.metrics] == ["m5", "m6", "m7", "m8", "m9"]  # least recently updated go
    assert metric(snapshot, "m9").history == (106, 107, 108, 109)
    assert [s.stream for s in snapshot.streams] == ["s2", "s3"]
    assert [k for k, _ in snapshot.streams[-1].values] == ["k0", "k1", "k2"]  # the first keys, as the library
    assert [e.experiment for e in snapshot.experiments] == ["e2", "e3"]
    assert len(snapshot.publishers) == 3
    assert snapshot.cut == {
        "metric rows": 5,
        "publishers": 7,
        "streams": 2,
        "stream keys": 8,
        "experiments": 2,
    }


def test_publishers_are_alive_while_they_export_and_gone_after() -> None:
    now = [100.0]
    board = Board(Limits(alive_seconds=5), clock=lambda: now[0])
    board.add_metrics(
        gauge_request("a", "liveview.metric", [({"metric": "x", "topic": "t"}, 1.0, 1)], pid=11)
    )
    now[0] = 103.0
    board.add_logs(logs_request("b", [LogRecord(time_unix_nano=1, body=AnyValue(string_value="hi"))]))
    now[0] = 107.0
    alive = {p.instance: p.alive for p in board.snapshot().publishers}
    assert alive == {"a": False, "b": True}


def test_processes_without_service_instance_id_are_told_apart_by_host_and_pid() -> None:
    board = Board()
    for pid in (7, 8, 7):
        resource = Resource(attributes=kv(**{"service.name": "legacy", "host.name": "h", "process.pid": pid}))
        board.add_logs(ExportLogsServiceRequest(resource_logs=[ResourceLogs(resource=resource)]))
    assert sorted(p.instance for p in board.snapshot().publishers) == ["legacy@h:7", "legacy@h:8"]


@pytest.mark.parametrize("name", ["liveview.experiment.planned", "liveview.experiment.total"])
def test_a_phase_s_planned_steps_give_progress_under_either_name(name: str) -> None:
    """liveview.experiment.total is the gauge's name up to 0.1.0: such a publisher still shows progress."""
    board = Board(Limits())
    run = {"experiment": "mnist", "topic": "t"}
    board.add_metrics(
        gauge_request("a", "liveview.experiment.status", [({**run, "status": "running"}, 1.0, 5)])
    )
    board.add_metrics(gauge_request("a", name, [({**run, "phase": "train", "unit": "steps"}, 100.0, 5)]))
    train = {"metric": "loss", "topic": "t", "phase": "train"}
    board.add_metrics(gauge_request("a", "liveview.metric.step", [(train, 25.0, 6)]))
    board.add_metrics(gauge_request("a", "liveview.metric", [(train, 0.5, 6)]))
    assert board.snapshot().experiments[0].progress == (("train", "steps", 25.0, 100.0),)


def test_info_elapsed_progress_and_errors_of_an_experiment() -> None:
    board = Board(Limits(logs=2), wall_ns=lambda: 1_000_500 * 10**9)
    run = {"experiment": "mnist", "topic": "t"}
    board.add_metrics(
        gauge_request("a", "liveview.experiment.status", [({**run, "status": "running"}, 1.0, 5)])
    )
    board.add_metrics(
        gauge_request("a", "liveview.experiment.info", [({**run, "seed": "7", "model.depth": "3"}, 1.0, 5)])
    )
    board.add_metrics(gauge_request("a", "liveview.experiment.start_time_seconds", [(run, 1_000_000.0, 5)]))
    totals = [
        ({**run, "phase": "train", "unit": "steps"}, 1000.0, 5),
        ({**run, "phase": "eval", "unit": "epochs"}, 4.0, 5),
    ]
    board.add_metrics(gauge_request("a", "liveview.experiment.planned", totals))
    train = {"metric": "loss", "topic": "t", "phase": "train"}
    board.add_metrics(gauge_request("a", "liveview.metric.step", [(train, 250.0, 6)]))
    board.add_metrics(gauge_request("a", "liveview.metric", [(train, 0.5, 6)]))
    (row,) = board.snapshot().experiments
    assert row.info == (("model.depth", "3"), ("seed", "7"))  # the run's own labels are not info
    assert row.elapsed == 500.0  # still running: until now
    assert row.progress == (("eval", "epochs", None, 4.0), ("train", "steps", 250.0, 1000.0))
    board.add_metrics(gauge_request("a", "liveview.experiment.end_time_seconds", [(run, 1_000_120.0, 7)]))
    assert board.snapshot().experiments[0].elapsed == 120.0  # ended: the run's duration
    for t, level in ((1, "ERROR"), (2, "INFO"), (3, "INFO"), (4, "INFO"), (5, "FATAL")):
        record = LogRecord(
            time_unix_nano=t, severity_number=_severity(level).value, body=AnyValue(string_value=level)
        )
        board.add_logs(logs_request("a", [record]))
    snapshot = board.snapshot()
    assert [line.body for line in snapshot.logs] == ["INFO", "FATAL"]  # the last two lines only
    assert [line.body for line in snapshot.errors] == ["ERROR", "FATAL"]  # errors stay longer
