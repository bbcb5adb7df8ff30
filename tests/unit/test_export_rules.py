"""Shipping off the caller's thread (otel_liveview._internal.worker, sinks, metric_export), in-process with stand-in senders and sinks:
the bounded queue, batches and what a failed one counts, the export thread's schedule, and the metric
exporters' accounting (docs/reliability.md)."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics.export import AggregationTemporality
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope as SdkScope

from otel_liveview._internal import encoding
from otel_liveview._internal import worker as worker_module
from otel_liveview._internal.encoding import MetricPoints
from otel_liveview._internal.metric_export import MetricExport
from otel_liveview._internal.otlp import Outcome
from otel_liveview._internal.queue import RecordQueue
from otel_liveview._internal.sinks import ConsoleLogSink, ConsoleMetricSink, OtlpLogSink, OtlpMetricSink
from otel_liveview._internal.tables import Tables
from otel_liveview._internal.worker import ExportWorker, LogShipper
from tests.support.receiver import decode_any, decode_attributes, wait_until

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
    return LogShipper(
        sinks=sinks,  # type: ignore[arg-type]
        resource=RESOURCE,
        scope=SCOPE,
        attribute_limit=128,
        tables=tables or Tables(),
        batch_size=batch_size,
    )


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
        queue=queue,
        updates=RecordQueue(capacity=100, wake_at=50, wake=queue.wake) if updates is None else updates,
        emit=recorder.emit,
        after_batch=recorder.after_batch,
        tables=tables or Tables(),
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
    monkeypatch.setattr(worker_module, "time", clock)
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
    monkeypatch.setattr(worker_module, "time", clock)
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


class FakeMetricSink:
    """Takes metric exports (or fails them, or raises), keeping what it was given."""

    def __init__(self, delivers: bool | None = True) -> None:
        self.delivers = delivers  # None: raise
        self.exports: list[tuple[list[MetricPoints], int, float | None]] = []
        self.closed = 0

    def export(self, metrics: Sequence[MetricPoints], time_unix_nano: int, deadline: float | None) -> bool:
        self.exports.append((list(metrics), time_unix_nano, deadline))
        if self.delivers is None:
            raise ConnectionError("gone")
        return self.delivers

    def shutdown(self) -> None:
        self.closed += 1


def loss_tables() -> Tables:
    tables = Tables()
    tables.metric.set(LOSS, 0.5)
    tables.metric.set(ACC, 0.9)
    tables.published_counter("metric").add(2)
    return tables


LOSS = (("metric", "loss"), ("topic", "t"))
ACC = (("metric", "acc"), ("topic", "t"))


def test_a_metric_export_reads_every_table_with_points_gauges_first() -> None:
    tables = loss_tables()
    tables.step.set(LOSS, 3.0)
    sink = FakeMetricSink()
    exporter = MetricExport(tables, [sink], interval=3600)
    before = time.time_ns()
    assert exporter.export(deadline=None) is True
    ((metrics, collected, deadline),) = sink.exports
    assert before <= collected <= time.time_ns() and deadline is None
    assert [(m.name, m.description, list(m.points)) for m in metrics] == [
        ("liveview.metric", "Latest value of each published metric", [(LOSS, 0.5), (ACC, 0.9)]),
        ("liveview.metric.step", "Step of each metric's latest value", [(LOSS, 3.0)]),
        ("liveview.published", "Telemetry items accepted for export, by kind", [((("kind", "metric"),), 2)]),
    ]
    assert [m.starts is None for m in metrics] == [True, True, False]  # gauges, then a cumulative sum
    assert metrics[2].starts == {(("kind", "metric"),): collected}


def test_a_counter_series_keeps_the_start_of_its_first_export() -> None:
    tables = loss_tables()
    sink = FakeMetricSink()
    exporter = MetricExport(tables, [sink], interval=3600)
    exporter.export(deadline=None)
    first = sink.exports[0][1]
    tables.count_dropped("log", "queue_full")
    exporter.export(deadline=None)
    later = sink.exports[1][1]
    published, dropped_ = (m for m in sink.exports[1][0] if m.starts is not None)
    assert published.starts[(("kind", "metric"),)] == first
    assert dropped_.starts[(("kind", "log"), ("reason", "queue_full"))] == later > first


def test_nothing_to_export_sends_nothing() -> None:
    sink = FakeMetricSink()
    assert MetricExport(Tables(), [sink], interval=3600).export(deadline=None) is True
    assert sink.exports == []


def test_a_failed_metric_export_counts_its_data_points_once_per_sink_that_failed() -> None:
    tables = loss_tables()
    good, bad = FakeMetricSink(), FakeMetricSink(delivers=False)
    exporter = MetricExport(tables, [good, bad], interval=3600)
    assert exporter.last_ok is True  # nothing failed yet
    assert exporter.export(deadline=None) is True  # it ran; delivery is last_ok
    assert exporter.last_ok is False
    assert dropped(tables) == {"points/export_failed": 3}  # two gauge points and a counter
    bad.delivers = True
    exporter.export(deadline=None)
    assert exporter.last_ok is True and len(good.exports) == 2
    assert dropped(tables) == {"points/export_failed": 3}  # a delivered export counts nothing


def test_a_metric_sink_that_raises_is_a_failed_export(caplog: pytest.LogCaptureFixture) -> None:
    tables = loss_tables()
    exporter = MetricExport(tables, [FakeMetricSink(delivers=None)], interval=3600)
    with caplog.at_level(logging.ERROR, logger="otel_liveview"):
        assert exporter.export(deadline=None) is True
    assert exporter.last_ok is False
    assert dropped(tables) == {"points/export_failed": 3}
    assert [r.getMessage() for r in caplog.records] == ["exporting metrics failed"]


def test_a_flush_gives_up_at_its_deadline_behind_an_export_in_flight() -> None:
    sink = FakeMetricSink()
    exporter = MetricExport(loss_tables(), [sink], interval=3600)
    with exporter._lock:  # an export in flight
        started = time.monotonic()
        assert exporter.force_flush(timeout_millis=50) is False
        assert time.monotonic() - started < 5
    assert sink.exports == []
    assert exporter.force_flush(timeout_millis=1_000) is True
    assert sink.exports[0][2] is not None  # bounded by the flush's deadline


def test_a_copy_inherited_over_fork_exports_nothing_and_closes_its_sinks() -> None:
    sink = FakeMetricSink()
    exporter = MetricExport(loss_tables(), [sink], interval=3600)
    exporter._owner = -1  # as in a forked child: the tables are the child's, not this exporter's
    assert exporter.export(deadline=None) is True
    exporter.shutdown(timeout_millis=1_000)
    assert sink.exports == [] and sink.closed == 1


def test_the_metric_thread_exports_every_interval_and_shutdown_exports_the_last_values() -> None:
    tables = loss_tables()
    sink = FakeMetricSink()
    exporter = MetricExport(tables, [sink], interval=0.05)
    exporter.start()
    (thread,) = [t for t in threading.enumerate() if t.name == "otel-liveview-metrics" and t.is_alive()]
    assert thread.daemon
    wait_until(lambda: len(sink.exports) >= 2, timeout=30)
    assert all(deadline is None for _, _, deadline in sink.exports)  # each sink's own timeout
    tables.metric.set(LOSS, 0.25)
    exporter.shutdown(timeout_millis=10_000)
    thread.join(10)
    assert not thread.is_alive() and sink.closed == 1
    assert (LOSS, 0.25) in sink.exports[-1][0][0].points
    exported = len(sink.exports)
    assert exporter.export(deadline=None) is True and len(sink.exports) == exported  # closed: no more


def test_without_sinks_no_thread_starts_and_a_flush_succeeds() -> None:
    exporter = MetricExport(loss_tables(), [], interval=0.01)
    exporter.start()
    assert not exporter._thread.is_alive()
    assert exporter.force_flush() is True and exporter.last_ok is True
    exporter.shutdown()


def test_the_otlp_metric_sink_sends_the_encoded_request_once() -> None:
    sender = FakeSender()
    encoder = encoding.MetricsEncoder(RESOURCE, SCOPE)
    sink = OtlpMetricSink(sender, encoder)  # type: ignore[arg-type]
    metrics = [MetricPoints("liveview.metric", "", [(LOSS, 0.5)])]
    before = time.monotonic()
    assert sink.export(metrics, 1_000, deadline=None) is True
    ((request, deadline, retry),) = sender.sent
    assert request == encoder.encode(metrics, 1_000) and retry is False
    decoded = ExportMetricsServiceRequest.FromString(request)
    assert decoded.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].as_double == 0.5
    assert before + 7 <= deadline <= time.monotonic() + 7  # the endpoint's export timeout
    sender.ok = False
    assert sink.export(metrics, 1_000, deadline=123.0) is False
    assert sender.sent[-1][1] == 123.0
    sink.shutdown()
    assert sender.closed == 1


def test_the_console_metric_sink_prints_the_sdk_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    sink = ConsoleMetricSink(SdkResource({"service.name": "console"}), SdkScope("otel_liveview", "1.2.3"))
    starts = {(("kind", "log"),): 5}
    metrics = [
        MetricPoints("liveview.metric", "", [(LOSS, 0.5)]),
        MetricPoints("liveview.published", "Items accepted", [((("kind", "log"),), 7)], starts),
    ]
    assert sink.export(metrics, 1_000, deadline=None) is True
    document = json.loads(capsys.readouterr().out)
    (scope,) = document["resource_metrics"][0]["scope_metrics"]
    gauge, counter = scope["metrics"]
    assert gauge["name"] == "liveview.metric"
    assert gauge["data"]["data_points"][0]["attributes"] == {"metric": "loss", "topic": "t"}
    assert counter["data"]["is_monotonic"] is True and counter["data"]["data_points"][0]["value"] == 7
    assert counter["data"]["aggregation_temporality"] == AggregationTemporality.CUMULATIVE.value
    sink.shutdown()


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
