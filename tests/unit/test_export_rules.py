"""Shipping off the caller's thread (otel_liveview.export), in-process with stand-in senders and sinks:
the bounded queue, batches and what a failed one counts, the export thread's schedule, and the metric
exporters' accounting (docs/reliability.md)."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics import Counter, Histogram, ObservableGauge, UpDownCounter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.metrics.view import LastValueAggregation
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope as SdkScope

from otel_liveview import encoding, export
from otel_liveview.export import (
    ConsoleLogSink,
    CountingMetricExporter,
    ExportWorker,
    LogShipper,
    OtlpLogSink,
    OtlpMetricExporter,
    RecordQueue,
)
from otel_liveview.otlp import Outcome
from otel_liveview.tables import Tables
from tests.support.receiver import decode_any, decode_attributes

RESOURCE = encoding.resource({"service.name": "export-test"})
SCOPE = encoding.scope("otel_liveview", "1.2.3")


def log_item(n: int) -> tuple[Any, ...]:
    return ("log", 1_000 + n, "topic", 9, "INFO", f"line {n}", {"n": n})


def data_item(n: int) -> tuple[Any, ...]:
    return ("data", 2_000 + n, "topic", "sensors", {"v": n})


def update_item(n: int, metric: str = "loss") -> tuple[Any, ...]:
    key = (("metric", metric), ("phase", "train"), ("topic", "topic"))
    return ("metric", 3_000.0 + n, key, n / 10, float(n), None, None)


def dropped(tables: Tables) -> dict[str, int]:
    return {"{kind}/{reason}".format(**dict(key)): value for key, value in tables.dropped.items() if value}


# -- the queue ------------------------------------------------------------------------------------


def test_the_queue_refuses_what_does_not_fit_and_hands_out_in_order() -> None:
    queue = RecordQueue(capacity=3, wake_at=2)
    assert [queue.put((i,)) for i in range(4)] == [True, True, True, False]
    assert len(queue) == 3
    assert queue.take(2) == [(0,), (1,)]
    assert queue.take(5) == [(2,)]
    assert queue.take(5) == [] and len(queue) == 0


def test_the_queue_wakes_the_export_thread_when_a_batch_is_full() -> None:
    queue = RecordQueue(capacity=10, wake_at=3)
    queue.put((1,))
    queue.put((2,))
    assert not queue.wake.is_set()
    queue.put((3,))
    assert queue.wake.is_set()


def test_a_reset_queue_is_empty_with_a_fresh_wake_up() -> None:
    queue = RecordQueue(capacity=2, wake_at=1)
    queue.put((1,))
    old_wake = queue.wake
    queue.reset()
    assert len(queue) == 0 and queue.take(10) == []
    assert queue.wake is not old_wake and not queue.wake.is_set()
    assert queue.put((2,)) and queue.put((3,)) and not queue.put((4,))  # the capacity stays


# -- sinks ----------------------------------------------------------------------------------------


@dataclass
class FakeEndpoint:
    timeout: float = 7.0


@dataclass
class FakeSender:
    ok: bool = True
    endpoint: FakeEndpoint = field(default_factory=FakeEndpoint)
    sent: list[tuple[Any, float, bool]] = field(default_factory=list)
    closed: int = 0

    def send(self, request: Any, deadline: float, retry: bool = False) -> Outcome:
        self.sent.append((request, deadline, retry))
        return Outcome(ok=self.ok)

    def close(self) -> None:
        self.closed += 1


def test_the_export_thread_retries_within_the_timeout_and_a_flush_tries_once() -> None:
    sender = FakeSender()
    sink = OtlpLogSink(sender)  # type: ignore[arg-type]
    batch = encoding.LogBatch(RESOURCE, SCOPE, 128)
    before = time.monotonic()
    assert sink.export(batch, None) is True
    after = time.monotonic()
    ((request, deadline, retry),) = sender.sent
    assert request is batch.request and retry is True
    assert before + 7.0 <= deadline <= after + 7.0
    sender.ok = False
    assert sink.export(batch, 123.0) is False
    assert sender.sent[-1] == (batch.request, 123.0, False)
    sink.shutdown()
    assert sender.closed == 1


def test_the_console_sink_prints_one_json_line_per_record(capsys: pytest.CaptureFixture[str]) -> None:
    batch = encoding.LogBatch(RESOURCE, SCOPE, 128)
    for n in range(2):
        batch.add({"timestamp": n + 1, "body": f"line {n}"}, "log", observed=5)
    sink = ConsoleLogSink()
    assert sink.export(batch, None) is True
    sink.shutdown()
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [
        {"timeUnixNano": "1", "observedTimeUnixNano": "5", "body": {"stringValue": "line 0"}},
        {"timeUnixNano": "2", "observedTimeUnixNano": "5", "body": {"stringValue": "line 1"}},
    ]


# -- batches --------------------------------------------------------------------------------------


@dataclass
class FakeSink:
    delivers: bool = True
    raises: bool = False
    batches: list[Any] = field(default_factory=list)
    deadlines: list[float | None] = field(default_factory=list)
    closed: int = 0

    def export(self, batch: Any, deadline: float | None) -> bool:
        self.batches.append(batch)
        self.deadlines.append(deadline)
        if self.raises:
            raise ConnectionError("gone")
        return self.delivers

    def shutdown(self) -> None:
        self.closed += 1


def shipper(*sinks: FakeSink, tables: Tables | None = None, batch_size: int = 512) -> LogShipper:
    return LogShipper(sinks, RESOURCE, SCOPE, 128, tables or Tables(), batch_size)  # type: ignore[arg-type]


def test_a_shipped_batch_holds_every_record_emitted_since_the_last() -> None:
    sink = FakeSink()
    ship = shipper(sink)
    start = time.time_ns()
    ship.emit([log_item(1)])
    ship.emit([data_item(2)])
    assert ship.ship(deadline=42.0) is True
    ((batch,),) = [sink.batches]
    assert sink.deadlines == [42.0] and batch.kinds == {"log": 1, "data": 1}
    records = list(batch.records())
    assert [decode_any(r.body) for r in records] == ["line 1", {"v": 2}]
    assert [r.time_unix_nano for r in records] == [1_001, 2_002]
    assert all(start <= r.observed_time_unix_nano <= time.time_ns() for r in records)
    assert decode_attributes(records[0].attributes) == {"n": 1, "topic": "topic"}
    assert batch.request.resource_logs[0].resource == RESOURCE
    assert batch.request.resource_logs[0].scope_logs[0].scope == SCOPE
    assert ship.ship() is True and len(sink.batches) == 1  # nothing new: nothing sent
    ship.emit([log_item(3)])
    assert ship.ship() is True
    assert len(sink.batches[1]) == 1 and sink.deadlines[1] is None
    ship.shutdown()
    assert sink.closed == 1


def test_a_batch_a_sink_did_not_take_is_counted_per_kind() -> None:
    tables = Tables()
    good, bad = FakeSink(), FakeSink(delivers=False)
    ship = shipper(good, bad, tables=tables)
    for n in range(3):
        ship.emit([log_item(n)])
    ship.emit([data_item(9)])
    assert ship.ship() is False
    assert len(good.batches) == len(bad.batches) == 1  # every sink gets the batch
    assert dropped(tables) == {"log/export_failed": 3, "data/export_failed": 1}


def test_a_sink_that_raises_is_a_failed_batch_and_the_other_sinks_still_get_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tables = Tables()
    broken, good = FakeSink(raises=True), FakeSink()
    ship = shipper(broken, good, tables=tables)
    ship.emit([log_item(1), log_item(2)])
    with caplog.at_level(logging.ERROR, logger="otel_liveview"):
        assert ship.ship() is False
    assert len(good.batches) == 1
    assert dropped(tables) == {"log/export_failed": 2}
    assert [r.getMessage() for r in caplog.records] == ["exporting 2 records failed"]


def test_without_sinks_records_are_still_built_and_feed_the_data_gauge() -> None:
    tables = Tables()
    ship = shipper(tables=tables)
    ship.emit([data_item(5)])
    assert ship.ship() is True
    assert tables.data.items() == [((("key", "v"), ("stream", "sensors"), ("topic", "topic")), 5.0)]


def test_metric_updates_become_one_record_per_series_counted_per_update() -> None:
    sink = FakeSink()
    ship = shipper(sink)
    ship.emit([update_item(1), log_item(1), update_item(2, "acc"), update_item(3), update_item(4)])
    assert ship.ship() is True
    ((batch,),) = [sink.batches]
    assert batch.kinds == {"log": 1, "metric": 4}
    bodies = {decode_any(r.body)["metric"]: decode_any(r.body) for r in batch.records() if r.event_name}
    assert bodies["loss"]["value"] == [0.1, 0.3, 0.4] and bodies["loss"]["step"] == [1.0, 3.0, 4.0]
    assert bodies["acc"]["time"] == [3_002.0]


def test_records_beyond_the_batch_size_go_in_further_batches() -> None:
    tables = Tables()
    sink = FakeSink(delivers=False)
    ship = shipper(sink, tables=tables, batch_size=2)
    ship.emit([log_item(n) for n in range(3)] + [update_item(n, f"m{n}") for n in range(2)])
    assert ship.ship() is False
    assert [len(batch) for batch in sink.batches] == [2, 2, 1]
    assert dropped(tables) == {"log/export_failed": 3, "metric/export_failed": 2}


def test_a_record_that_cannot_be_built_is_counted_and_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tables = Tables()
    sink = FakeSink()
    ship = shipper(sink, tables=tables)
    unknown_severity = ("log", 1, "topic", 999, "X", "line", {})
    not_a_series = ("metric", 1.0, None, 0.5, None, None, None)
    with caplog.at_level(logging.ERROR, logger="otel_liveview"):
        ship.emit([log_item(0), unknown_severity, not_a_series, log_item(2), not_a_series])
    assert ship.ship() is True
    assert [decode_any(r.body) for r in sink.batches[0].records()] == ["line 0", "line 2"]
    assert dropped(tables) == {"log/invalid": 1, "metric/invalid": 2}  # each update of the series
    assert [r.getMessage() for r in caplog.records] == [
        "building a log record failed",
        "building a metric record failed",
    ]


# -- the export thread ------------------------------------------------------------------------------


@dataclass
class Recorder:
    """emit and after_batch of an ExportWorker: what was emitted, batch by batch."""

    delivers: bool = True
    emitted: list[Any] = field(default_factory=list)
    batches: list[list[Any]] = field(default_factory=list)
    deadlines: list[float | None] = field(default_factory=list)
    pending: list[Any] = field(default_factory=list)

    def emit(self, items: list[tuple[Any, ...]]) -> None:
        self.emitted.extend(items)
        self.pending.extend(items)

    def after_batch(self, deadline: float | None) -> bool:
        self.batches.append(self.pending)
        self.pending = []
        self.deadlines.append(deadline)
        return self.delivers


def worker_for(
    queue: RecordQueue,
    recorder: Recorder,
    batch_size: int = 2,
    tables: Tables | None = None,
    delay: float = 60.0,
    updates: RecordQueue | None = None,
    updates_interval: float = 3600.0,
) -> ExportWorker:
    return ExportWorker(
        queue,
        RecordQueue(capacity=100, wake_at=50, wake=queue.wake) if updates is None else updates,
        recorder.emit,
        recorder.after_batch,
        tables or Tables(),
        batch_size=batch_size,
        delay=delay,
        updates_interval=updates_interval,
    )


def filled(count: int, capacity: int = 100, wake_at: int = 2) -> RecordQueue:
    queue = RecordQueue(capacity=capacity, wake_at=wake_at)
    for n in range(count):
        queue.put(("log", n))
    return queue


def test_drain_ships_everything_in_batches_of_the_batch_size() -> None:
    recorder = Recorder()
    worker = worker_for(filled(5), recorder, batch_size=2)
    assert worker.drain() is True
    assert [[item[1] for item in batch] for batch in recorder.batches] == [[0, 1], [2, 3], [4]]
    assert recorder.deadlines == [None, None, None]
    deadline = time.monotonic() + 30
    worker._queue.put(("log", 5))
    assert worker.drain(deadline) is True
    assert recorder.deadlines[-1] == deadline


def test_drain_without_a_batch_callback_just_emits() -> None:
    recorder = Recorder()
    worker = worker_for(filled(3), recorder)
    worker._after_batch = None
    assert worker.drain() is True
    assert [item[1] for item in recorder.emitted] == [0, 1, 2]


def test_drain_full_only_leaves_a_partial_batch_for_later() -> None:
    recorder = Recorder()
    queue = filled(5, wake_at=2)
    worker = worker_for(queue, recorder, batch_size=2)
    assert worker.drain(full_only=True) is True
    assert len(queue) == 1 and len(recorder.batches) == 2


def test_what_arrives_while_a_batch_is_on_the_wire_waits_for_a_full_batch_or_a_flush() -> None:
    recorder = Recorder()
    queue = filled(3, wake_at=4)
    worker = worker_for(queue, recorder, batch_size=4)
    arrivals = iter(range(10, 13))
    deliver = recorder.after_batch

    def after_batch(deadline: float | None) -> bool:
        arrived = next(arrivals, None)  # published by the caller during this export
        if arrived is not None:
            queue.put(("log", arrived))
        return deliver(deadline)

    worker._after_batch = after_batch
    assert worker.drain() is True  # the export thread's scheduled drain
    assert [[item[1] for item in batch] for batch in recorder.batches] == [[0, 1, 2]]
    assert len(queue) == 1  # what arrived meanwhile waits: no request of its own
    assert worker.drain(deadline=time.monotonic() + 30) is True  # a flush empties the queue
    assert len(queue) == 0 and [item[1] for item in recorder.emitted] == [0, 1, 2, 10, 11, 12]


def test_a_batch_not_delivered_makes_drain_false_and_the_rest_still_goes() -> None:
    recorder = Recorder(delivers=False)
    queue = filled(3)
    worker = worker_for(queue, recorder, batch_size=2)
    assert worker.drain() is False
    assert len(recorder.batches) == 2 and len(queue) == 0


def test_a_deadline_that_passed_ships_nothing_more() -> None:
    recorder = Recorder()
    queue = filled(3)
    worker = worker_for(queue, recorder)
    assert worker.drain(deadline=time.monotonic() - 1) is False
    assert recorder.batches == [] and len(queue) == 3
    assert worker_for(RecordQueue(5, 2), recorder).drain(deadline=time.monotonic() - 1) is True  # empty


def test_a_drain_waits_no_longer_than_its_deadline_behind_a_paused_export() -> None:
    recorder = Recorder()
    worker = worker_for(filled(3), recorder)
    assert worker.pause(timeout=1.0) is True
    assert worker.pause(timeout=0.01) is False  # held: a second pause must wait
    started = time.monotonic()
    assert worker.drain(deadline=started + 0.05) is False
    assert time.monotonic() - started < 5
    assert recorder.batches == []
    worker.resume()
    assert worker.drain() is True and len(recorder.emitted) == 3


def test_stop_ships_what_is_left() -> None:
    recorder = Recorder()
    queue = filled(5)
    worker = worker_for(queue, recorder, batch_size=2)
    assert worker.stop(timeout=10) is True
    assert len(recorder.emitted) == 5 and len(queue) == 0
    assert all(deadline is not None for deadline in recorder.deadlines)


def test_stopping_with_the_collector_away_counts_the_rest_without_waiting() -> None:
    tables = Tables()
    recorder = Recorder(delivers=False)
    queue = RecordQueue(capacity=100, wake_at=50)
    for n in range(5):
        queue.put(("log" if n % 2 else "data", n))
    worker = worker_for(queue, recorder, batch_size=2, tables=tables)
    assert worker.stop(timeout=10) is True  # the queue emptied: what was lost is counted
    assert len(recorder.batches) == 1  # one attempt, then the rest is counted
    assert dropped(tables) == {"log/export_failed": 1, "data/export_failed": 2}
    assert len(queue) == 0


def test_stop_gives_up_after_its_timeout_behind_a_stuck_export() -> None:
    recorder = Recorder()
    queue = filled(3)
    worker = worker_for(queue, recorder)
    worker.pause(timeout=1.0)
    try:
        started = time.monotonic()
        assert worker.stop(timeout=0.05) is False
        assert time.monotonic() - started < 5
    finally:
        worker.resume()


def test_the_export_thread_is_a_named_daemon_that_drains_and_stops() -> None:
    recorder = Recorder()
    queue = RecordQueue(capacity=100, wake_at=2)
    worker = worker_for(queue, recorder, batch_size=2, delay=3600.0)
    worker.start()
    try:
        (thread,) = [t for t in threading.enumerate() if t.name == "otel-liveview-export" and t.is_alive()]
        assert thread.daemon
        done = threading.Event()
        original = recorder.after_batch

        def after_batch(deadline: float | None) -> bool:
            result = original(deadline)
            done.set()
            return result

        worker._after_batch = after_batch
        queue.put(("log", 0))
        queue.put(("log", 1))  # a full batch wakes the thread, long before the hour is up
        assert done.wait(10)
        assert [item[1] for item in recorder.emitted] == [0, 1]
    finally:
        assert worker.stop(timeout=10) is True
    thread.join(10)
    assert not thread.is_alive()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


class ScriptedWake:
    """Stands in for the queue's wake-up: each wait() runs the next step of a script."""

    def __init__(self, steps: Iterator[Any]) -> None:
        self.steps = steps
        self.waits: list[float] = []

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        next(self.steps)()
        return True

    def clear(self) -> None:
        pass

    def set(self) -> None:
        pass


def test_a_partial_batch_waits_for_the_schedule_delay_and_a_full_one_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(export, "time", clock)
    recorder = Recorder()
    queue = RecordQueue(capacity=100, wake_at=3)
    worker = worker_for(queue, recorder, batch_size=3, delay=0.5)

    def at(now: float, *items: int, stop: bool = False) -> Any:
        def step() -> None:
            clock.now = now
            for n in items:
                queue.put(("log", n))
            worker._stopping = stop

        return step

    wake = ScriptedWake(
        iter(
            [
                at(100.1, 1),  # one record, early: it waits
                at(100.5, 2),  # the delay is up (exactly): both go
                at(100.6, 3, 4, 5),  # a full batch goes at once, and the delay starts over
                at(100.8, 6),  # a partial one waits again
                at(101.0),  # half a second since the partial batch, not since the full one: it waits
                at(101.1),  # the delay is up: it goes
                at(101.2, stop=True),
            ]
        )
    )
    queue.wake = wake  # type: ignore[assignment]
    worker._run()
    assert [[item[1] for item in batch] for batch in recorder.batches] == [[1, 2], [3, 4, 5], [6]]
    assert wake.waits == pytest.approx([0.5, 0.4, 0.5, 0.5, 0.3, 0.1, 0.5])
    assert len(queue) == 0


def test_queued_metric_updates_go_all_at_once_and_a_flush_takes_both_queues() -> None:
    recorder = Recorder()
    queue = filled(3)
    updates = RecordQueue(capacity=100, wake_at=50, wake=queue.wake)
    for n in range(5):
        updates.put(update_item(n))
    worker = worker_for(queue, recorder, batch_size=2, updates=updates)
    assert worker.drain_updates() is True
    assert [len(batch) for batch in recorder.batches] == [5] and len(updates) == 0
    updates.put(update_item(5))
    deadline = time.monotonic() + 30
    assert worker.flush(deadline) is True
    assert [len(batch) for batch in recorder.batches] == [5, 1, 2, 1]
    assert recorder.deadlines[1:] == [deadline] * 3
    assert worker.drain_updates() is True and len(recorder.batches) == 4  # nothing queued: nothing sent


def test_stopping_with_the_collector_away_counts_the_queued_updates_too() -> None:
    tables = Tables()
    recorder = Recorder(delivers=False)
    queue = filled(2, wake_at=50)
    updates = RecordQueue(capacity=100, wake_at=50, wake=queue.wake)
    for n in range(3):
        updates.put(update_item(n))
    worker = worker_for(queue, recorder, tables=tables, updates=updates)
    assert worker.stop(timeout=10) is True
    assert len(recorder.batches) == 1  # the updates' attempt; then the logs are counted, not sent
    assert dropped(tables) == {"log/export_failed": 2}  # the updates' own loss is the shipper's to count
    assert len(queue) == len(updates) == 0


def test_metric_updates_go_at_their_interval_or_when_their_queue_is_half_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(export, "time", clock)
    recorder = Recorder()
    queue = RecordQueue(capacity=100, wake_at=50)
    updates = RecordQueue(capacity=8, wake_at=4, wake=queue.wake)
    worker = worker_for(queue, recorder, batch_size=50, delay=0.2, updates=updates, updates_interval=1.0)

    def at(now: float, *items: int, stop: bool = False) -> Any:
        def step() -> None:
            clock.now = now
            for n in items:
                updates.put(update_item(n))
            worker._stopping = stop

        return step

    wake = ScriptedWake(
        iter(
            [
                at(100.2, 1, 2),  # the schedule delay: no events, and the updates wait
                at(100.4, 3, 4, 5, 6),  # half full: they go at once, and the interval starts again
                at(101.3, 7),
                at(101.4, 8),  # the interval is up: they go
                at(101.5, stop=True),
            ]
        )
    )
    queue.wake = wake  # type: ignore[assignment]
    worker._run()
    assert [[item[4] for item in batch] for batch in recorder.batches] == [[1, 2, 3, 4, 5, 6], [7, 8]]
    assert wake.waits == pytest.approx([0.2, 0.2, 0.2, 0.1, 0.1])  # the sooner of the two


# -- metric exporters -------------------------------------------------------------------------------


def metrics_data(*attribute_sets: dict[str, Any]) -> MetricsData:
    points = [
        NumberDataPoint(attributes=attributes, start_time_unix_nano=0, time_unix_nano=1, value=1.0)
        for attributes in attribute_sets
    ]
    metric = Metric(name="liveview.metric", description="", unit="", data=Gauge(data_points=points))
    scope = ScopeMetrics(scope=SdkScope("otel_liveview"), metrics=[metric, metric], schema_url="")
    resource = ResourceMetrics(resource=SdkResource({}), scope_metrics=[scope], schema_url="")
    return MetricsData(resource_metrics=[resource, resource])


def test_the_otlp_metric_exporter_sends_one_cumulative_request_per_collection() -> None:
    sender = FakeSender()
    exporter = OtlpMetricExporter(sender)  # type: ignore[arg-type]
    assert {
        exporter._preferred_temporality[kind] for kind in (Counter, UpDownCounter, Histogram, ObservableGauge)
    } == {AggregationTemporality.CUMULATIVE}
    before = time.monotonic()
    assert (
        exporter.export(metrics_data({"metric": "loss"}), timeout_millis=2_500) is MetricExportResult.SUCCESS
    )
    ((request, deadline, retry),) = sender.sent
    assert isinstance(request, ExportMetricsServiceRequest) and retry is False
    assert request.resource_metrics[0].scope_metrics[0].metrics[0].name == "liveview.metric"
    assert before + 2.5 <= deadline <= time.monotonic() + 2.5
    exporter.export(metrics_data())
    assert before + 10 <= sender.sent[-1][1] <= time.monotonic() + 10  # the default: 10 s
    sender.ok = False
    assert exporter.export(metrics_data()) is MetricExportResult.FAILURE
    assert exporter.force_flush() is True
    exporter.shutdown()
    assert sender.closed == 1


class FakeMetricExporter(MetricExporter):
    def __init__(self, result: MetricExportResult | None, aggregation: dict[type, Any] | None = None) -> None:
        super().__init__(
            preferred_temporality={Counter: AggregationTemporality.DELTA},
            preferred_aggregation=aggregation or {},
        )
        self.result = result
        self.calls: list[tuple[str, Any]] = []
        self.exported: list[tuple[MetricsData, dict[str, Any]]] = []
        self.shutdown_options: dict[str, Any] = {}

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.calls.append(("export", timeout_millis))
        self.exported.append((metrics_data, kwargs))
        if self.result is None:
            raise ConnectionError("gone")
        return self.result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        self.calls.append(("force_flush", timeout_millis))
        return False

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.calls.append(("shutdown", timeout_millis))
        self.shutdown_options = kwargs


def test_the_counting_exporter_hands_everything_to_the_inner_one() -> None:
    aggregation = LastValueAggregation()
    inner = FakeMetricExporter(MetricExportResult.SUCCESS, {Counter: aggregation})
    exporter = CountingMetricExporter(inner, Tables())
    assert exporter.last_ok is True  # nothing failed yet
    assert exporter._preferred_aggregation[Counter] is aggregation  # what the SDK's reader asks for
    data = metrics_data({"metric": "a"})
    assert exporter.export(data, option="x") is MetricExportResult.SUCCESS
    assert inner.exported == [(data, {"option": "x"})]
    assert inner.calls == [("export", 10_000)]  # the default timeout
    exporter.shutdown(option="y")
    assert inner.shutdown_options == {"option": "y"}


def test_console_lines_are_flushed_as_each_batch_is_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    class Output(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1
            super().flush()

    output = Output()
    monkeypatch.setattr(sys, "stdout", output)
    batch = encoding.LogBatch(RESOURCE, SCOPE, 128)
    batch.add({"timestamp": 1, "body": "x"}, "log", observed=5)
    ConsoleLogSink().export(batch, None)
    assert output.flushes >= 1 and output.getvalue().count("\n") == 1


def test_a_failed_metric_export_counts_its_data_points() -> None:
    tables = Tables()
    inner = FakeMetricExporter(MetricExportResult.FAILURE)
    exporter = CountingMetricExporter(inner, tables)
    assert exporter._preferred_temporality[Counter] is AggregationTemporality.DELTA  # the inner exporter's
    data = metrics_data({"metric": "a"}, {"metric": "b"}, {"metric": "c"})
    assert exporter.export(data, timeout_millis=1_234) is MetricExportResult.FAILURE
    assert inner.calls == [("export", 1_234)]
    assert exporter.last_ok is False
    assert dropped(tables) == {"points/export_failed": 3 * 2 * 2}  # 3 points, 2 metrics, 2 resources
    inner.result = MetricExportResult.SUCCESS
    assert exporter.export(data) is MetricExportResult.SUCCESS
    assert exporter.last_ok is True and dropped(tables) == {"points/export_failed": 12}


def test_a_metric_exporter_that_raises_is_a_failed_export(caplog: pytest.LogCaptureFixture) -> None:
    tables = Tables()
    exporter = CountingMetricExporter(FakeMetricExporter(None), tables)
    with caplog.at_level(logging.ERROR, logger="otel_liveview"):
        assert exporter.export(metrics_data({"metric": "a"})) is MetricExportResult.FAILURE
    assert exporter.last_ok is False
    assert dropped(tables) == {"points/export_failed": 4}
    assert [r.getMessage() for r in caplog.records] == ["exporting metrics failed"]


def test_series_folded_into_the_overflow_point_are_counted() -> None:
    tables = Tables()
    exporter = CountingMetricExporter(FakeMetricExporter(MetricExportResult.SUCCESS), tables)
    exporter.export(metrics_data({"metric": "a"}, {"otel.metric.overflow": True}, {}))
    assert dropped(tables) == {"points/cardinality": 4}  # the overflow point, in 2 metrics of 2 resources


def test_the_counting_exporter_passes_flush_and_shutdown_on() -> None:
    inner = FakeMetricExporter(MetricExportResult.SUCCESS)
    exporter = CountingMetricExporter(inner, Tables())
    assert exporter.force_flush(timeout_millis=321) is False
    exporter.shutdown(timeout_millis=654)
    assert inner.calls == [("force_flush", 321), ("shutdown", 654)]
    exporter.force_flush()
    exporter.shutdown()
    assert inner.calls[-2:] == [("force_flush", 10_000), ("shutdown", 30_000)]
