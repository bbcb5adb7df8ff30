"""Shipping events, logs and metrics off the caller's thread, and counting what cannot be shipped.

Callers put small tuples on a bounded `RecordQueue` (never blocks: a full queue drops and counts).
One `ExportWorker` thread per process turns them into OpenTelemetry log records and hands them to
OTLP records in place (`LogShipper`) and ships each batch (or, when the application installed its own
LoggerProvider, hands them to its logger). The export thread waits for the network, so back-pressure
lands on the queue (where drops are counted) and never on the caller. Metrics are the tables'
current values, exported by a thread of their own every interval (`MetricExport`) unless the
application installed its own MeterProvider.
"""

from __future__ import annotations

import logging
import operator
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from math import isfinite
from typing import Any, Protocol

from google.protobuf import json_format
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ConsoleMetricExporter,
    Gauge,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope as SdkScope

from otel_liveview._internal import events
from otel_liveview._internal.encoding import LogBatch, MetricPoints, MetricsEncoder
from otel_liveview._internal.otlp import OtlpSender
from otel_liveview._internal.tables import Key, Tables

_log = logging.getLogger("otel_liveview")


class RecordQueue:
    """A bounded hand-off from any thread to the export worker."""

    __slots__ = ("_items", "capacity", "wake", "wake_at")

    def __init__(self, capacity: int, wake_at: int, wake: threading.Event | None = None) -> None:
        self._items: deque[tuple[Any, ...]] = deque()
        self.capacity = capacity
        self.wake_at = wake_at  # set `wake` when this many are queued
        self.wake = wake or threading.Event()

    def put(self, item: tuple[Any, ...]) -> bool:
        items = self._items
        if len(items) >= self.capacity:
            return False
        items.append(item)  # deque.append is atomic
        if len(items) == self.wake_at:
            self.wake.set()
        return True

    def take(self, limit: int) -> list[tuple[Any, ...]]:
        items = self._items
        batch = []
        try:
            for _ in range(limit):
                batch.append(items.popleft())
        except IndexError:
            pass
        return batch

    def __len__(self) -> int:
        return len(self._items)

    def reset(self, wake: threading.Event | None = None) -> None:
        """Forget everything (a forked child must not ship its parent's records)."""
        self._items = deque()
        self.wake = wake or threading.Event()


class LogSink(Protocol):
    """Where batches of records go: `export` returns True once the batch is delivered."""

    def export(self, batch: LogBatch, deadline: float | None) -> bool: ...

    def shutdown(self) -> None: ...


class OtlpLogSink:
    """A batch -> one OTLP ExportLogsServiceRequest.

    The export thread retries a batch the collector could not take (OTLP backoff, within
    OTEL_EXPORTER_OTLP_TIMEOUT) while the queue holds what arrives meanwhile; a flush or the exit
    makes one attempt, so a collector that is down costs them nothing.
    """

    def __init__(self, sender: OtlpSender) -> None:
        self.sender = sender

    def export(self, batch: LogBatch, deadline: float | None) -> bool:
        if deadline is None:  # the export thread's own pace: retry within the export timeout
            deadline = time.monotonic() + self.sender.endpoint.timeout
            return self.sender.send(batch.request, deadline, retry=True).ok
        return self.sender.send(batch.request, deadline).ok  # a flush or the exit: one attempt

    def shutdown(self) -> None:
        self.sender.close()


class ConsoleLogSink:
    """OTEL_LOGS_EXPORTER=console: each record as one line of OTLP/JSON on standard output."""

    def export(self, batch: LogBatch, deadline: float | None) -> bool:
        lines = [json_format.MessageToJson(record, indent=None) for record in batch.records()]
        print("\n".join(lines), flush=True)
        return True

    def shutdown(self) -> None:
        pass


class LogShipper:
    """Turns queued items into records in `LogBatch`es of at most `batch_size` records (`emit`), and
    ships them to every sink (`ship`). Used only from the export worker, under its lock."""

    def __init__(
        self,
        sinks: Sequence[LogSink],
        resource: Resource,
        scope: InstrumentationScope,
        attribute_limit: int,
        tables: Tables,
        batch_size: int,
    ) -> None:
        self._sinks = tuple(sinks)
        self._batch_args = (resource, scope, attribute_limit)
        self._batches = [LogBatch(*self._batch_args)]
        self._batch_size = batch_size
        self._tables = tables
        self._observed = 0

    def emit(self, items: Sequence[tuple[Any, ...]]) -> None:
        self._observed = time.time_ns()
        events.emit_all(items, self._tables, self._add)

    def _add(self, kind: str, calls: int, record: dict[str, Any]) -> None:
        # Built even without sinks: building data events feeds the liveview.data gauge.
        if not self._sinks:
            return
        batch = self._batches[-1]
        if len(batch) >= self._batch_size:  # one interval's metric events can outnumber a batch
            batch = LogBatch(*self._batch_args)
            self._batches.append(batch)
        batch.add(record, kind, self._observed, calls)

    def ship(self, deadline: float | None = None) -> bool:
        """Export the records emitted since the last call; True if every sink took them.

        `deadline` (time.monotonic()) bounds the attempt; None: each sink's own export timeout.
        """
        if not len(self._batches[0]):
            return True
        batches, self._batches = self._batches, [LogBatch(*self._batch_args)]
        delivered = True
        for batch in batches:
            delivered = self._export(batch, deadline) and delivered
        return delivered

    def _export(self, batch: LogBatch, deadline: float | None) -> bool:
        delivered = True
        for sink in self._sinks:
            try:
                delivered = sink.export(batch, deadline) and delivered
            except Exception:
                _log.exception("exporting %d records failed", len(batch))
                delivered = False
        if not delivered:
            for kind, amount in batch.kinds.items():
                self._tables.count_dropped(kind, "export_failed", amount)
        return delivered

    def shutdown(self) -> None:
        for sink in self._sinks:
            sink.shutdown()


class ExportWorker:
    """The thread that drains the queues: build records, emit them, export each batch.

    Events and logs go in batches: a full one at once, the rest after the schedule delay. Metric
    updates wait in a queue of their own and go all at once every `updates_interval` (the metric
    export interval), so each series becomes one event per interval.
    """

    def __init__(
        self,
        queue: RecordQueue,
        updates: RecordQueue,
        emit: Callable[[Sequence[tuple[Any, ...]]], None],
        after_batch: Callable[[float | None], bool] | None,
        tables: Tables,
        *,
        batch_size: int,
        delay: float,
        updates_interval: float,
    ) -> None:
        self._queue = queue
        self._updates = updates
        self._emit = emit
        self._after_batch = after_batch
        self._tables = tables
        self._batch_size = batch_size
        self._delay = delay
        self._updates_interval = updates_interval
        self._drain_lock = threading.Lock()
        self._last_batch = 0.0  # time.monotonic() when a batch last left the queue
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="otel-liveview-export", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        """Export full batches as soon as they are queued (or the queue is under pressure), and a
        partial one only once the schedule delay (OTEL_BLRP_SCHEDULE_DELAY) has passed since the
        last batch left: steady traffic goes out in full requests, whatever the callers' rhythm.
        Metric updates go when their interval has passed or their queue is half full."""
        wake = self._queue.wake  # the updates queue sets the same event
        self._last_batch = time.monotonic()
        updates_due = self._last_batch + self._updates_interval
        while not self._stopping:
            wake.wait(max(0.0, min(self._last_batch + self._delay, updates_due) - time.monotonic()))
            wake.clear()
            now = time.monotonic()
            if now >= updates_due or len(self._updates) >= self._updates.wake_at:
                self.drain_updates()
                updates_due = time.monotonic() + self._updates_interval
            if now >= self._last_batch + self._delay:
                self._last_batch = now  # the delay starts over even when nothing is queued
                self.drain()
            else:
                self.drain(full_only=True)

    def flush(self, deadline: float) -> bool:
        """Ship everything queued by `deadline` (time.monotonic()); False if something was not
        delivered or the deadline passed first."""
        updates_delivered = self.drain_updates(deadline)
        return self.drain(deadline) and updates_delivered

    def drain(self, deadline: float | None = None, *, full_only: bool = False) -> bool:
        """Ship the queued events and logs; False if a batch was not delivered or the deadline
        passed first.

        A flush (with a deadline) empties the queue. The export thread's own drain (no deadline)
        ships what is queued when it begins (nothing with `full_only`) and then only full batches
        or what relieves queue pressure: what trickles in while a batch is on the wire waits for a
        full batch or the next schedule delay instead of leaving in a request of its own.

        The lock is taken per batch, so a flush or a fork can get in between batches.
        """
        owed = 0 if full_only else len(self._queue)
        delivered = True
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return delivered and not len(self._queue)
            if deadline is None and owed <= 0 and len(self._queue) < self._queue.wake_at:
                return delivered
            if not self._acquire(deadline):  # stuck behind a slow export
                return False
            try:
                batch = self._queue.take(self._batch_size)
                if not batch:
                    return delivered
                owed -= len(batch)
                self._last_batch = time.monotonic()
                if not self._ship(batch, deadline):
                    delivered = False
                    if self._stopping:  # exiting and the collector is away: count the rest, don't wait
                        return False
            finally:
                self._drain_lock.release()

    def drain_updates(self, deadline: float | None = None) -> bool:
        """Ship every queued metric update, one event per series; False if they were not delivered
        or the deadline passed first."""
        if not len(self._updates):
            return True
        if not self._acquire(deadline):
            return False
        try:
            return self._ship(self._updates.take(len(self._updates)), deadline)
        finally:
            self._drain_lock.release()

    def _acquire(self, deadline: float | None) -> bool:
        """Take the drain lock, waiting until `deadline` at the latest (None: as long as it takes)."""
        if deadline is None:
            return self._drain_lock.acquire()
        wait = deadline - time.monotonic()
        return wait > 0 and self._drain_lock.acquire(timeout=wait)

    def _ship(self, items: list[tuple[Any, ...]], deadline: float | None) -> bool:
        self._emit(items)
        if self._after_batch is None or self._after_batch(deadline):
            return True
        if self._stopping:  # exiting and the collector is away: count the rest, don't wait
            self._discard()
        return False

    def _discard(self) -> None:
        for queue in (self._updates, self._queue):
            while batch := queue.take(self._batch_size):
                for item in batch:
                    self._tables.count_dropped(item[0], "export_failed")

    def pause(self, timeout: float) -> bool:
        """Wait (up to `timeout`) for the batch in flight, and hold further ones until `resume()`.

        Taken around fork(): an export cut in two by a fork is retried by the parent although the
        receiver got it, and that duplicates data.
        """
        return self._drain_lock.acquire(timeout=timeout)

    def resume(self) -> None:
        self._drain_lock.release()

    def stop(self, timeout: float) -> bool:
        """Ship what is left within `timeout` seconds; True if the queue emptied."""
        self._stopping = True
        self._queue.wake.set()
        deadline = time.monotonic() + timeout
        finisher = threading.Thread(target=self.flush, args=(deadline,), daemon=True)
        try:
            finisher.start()
            finisher.join(timeout)
        except RuntimeError:  # no new thread at exit (CPython 3.12.0, 3.12.1): flush keeps the deadline
            self.flush(deadline)
        return not finisher.is_alive() and not len(self._queue) and not len(self._updates)


class MetricSink(Protocol):
    """Where metric exports go: `export` returns True once the points are delivered."""

    def export(
        self, metrics: Sequence[MetricPoints], time_unix_nano: int, deadline: float | None
    ) -> bool: ...

    def shutdown(self) -> None: ...


class OtlpMetricSink:
    """Points -> one OTLP ExportMetricsServiceRequest, written straight from the tables' points
    (`MetricsEncoder`). One attempt per export, since the next one carries the current values."""

    def __init__(self, sender: OtlpSender, encoder: MetricsEncoder) -> None:
        self.sender = sender
        self._encoder = encoder

    def export(self, metrics: Sequence[MetricPoints], time_unix_nano: int, deadline: float | None) -> bool:
        if deadline is None:  # the export thread's own pace: the export timeout
            deadline = time.monotonic() + self.sender.endpoint.timeout
        return self.sender.send(self._encoder.encode(metrics, time_unix_nano), deadline).ok

    def shutdown(self) -> None:
        self.sender.close()


class ConsoleMetricSink:
    """OTEL_METRICS_EXPORTER=console: the SDK's console exporter (a JSON document per export)."""

    def __init__(
        self, resource: SdkResource, scope: SdkScope, *, identity: Mapping[str, str] | None = None
    ) -> None:
        self._resource = resource
        self._scope = scope
        self._identity = dict(identity or {})
        # The standard output of now (the exporter's default is the one of import time).
        self._exporter = ConsoleMetricExporter(out=sys.stdout)

    def export(self, metrics: Sequence[MetricPoints], time_unix_nano: int, deadline: float | None) -> bool:
        data = metrics_data(metrics, time_unix_nano, self._resource, self._scope, self._identity)
        return self._exporter.export(data) is MetricExportResult.SUCCESS

    def shutdown(self) -> None:
        self._exporter.shutdown()


def metrics_data(
    metrics: Sequence[MetricPoints],
    time_unix_nano: int,
    resource: SdkResource,
    scope: SdkScope,
    identity: Mapping[str, str] | None = None,
) -> MetricsData:
    """The SDK's form of an export: what its observable instruments would collect from the tables
    (`identity` on every point, as register_instruments puts it)."""
    extra = identity or {}

    def point(key: Key, value: float, start: int | None) -> NumberDataPoint:
        # The SDK's gauge points carry no start time (None), its sums the series' start.
        return NumberDataPoint({**dict(key), **extra}, start, time_unix_nano, value)  # type: ignore[arg-type]

    converted = []
    for metric in metrics:
        data: Gauge | Sum
        if metric.starts is None:
            data = Gauge([point(key, value, None) for key, value in metric.points])
        else:
            starts = metric.starts
            points = [point(key, value, starts[key]) for key, value in metric.points]
            data = Sum(points, AggregationTemporality.CUMULATIVE, is_monotonic=True)
        converted.append(Metric(metric.name, metric.description, "", data))
    scope_metrics = ScopeMetrics(scope, converted, scope.schema_url or "")
    return MetricsData([ResourceMetrics(resource, [scope_metrics], resource.schema_url)])


class MetricExport:
    """The library's own metric export, where an SDK MeterProvider would stand (`force_flush`,
    `shutdown`): every OTEL_METRIC_EXPORT_INTERVAL, at a flush and at the exit, the tables' current
    values go to every sink, gauges as gauges and the counters cumulative. The points of a failed
    export are counted (`points/export_failed`); `last_ok` says whether the latest was delivered.

    A copy inherited over fork exports nothing: the child's tables are not its process's.
    """

    def __init__(self, tables: Tables, sinks: Sequence[MetricSink], *, interval: float) -> None:
        self._tables = tables
        self._sinks = tuple(sinks)
        self._interval = interval
        self._starts: dict[str, dict[Key, int]] = {}  # counter -> series -> when it was first exported
        self._order: dict[str, None] = {}  # metric names in the order they first had points
        self._slots: dict[str, dict[Key, None]] = {}  # gauge -> its series in the order first exported
        self._lock = threading.Lock()  # one export at a time
        self._stopped = threading.Event()
        self._owner = os.getpid()
        self.last_ok = True
        self._thread = threading.Thread(target=self._run, name="otel-liveview-metrics", daemon=True)

    def start(self) -> None:
        if self._sinks:
            self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.export(None)

    def collect(self) -> tuple[list[MetricPoints], int]:
        """The tables' points and the time they were read, as the SDK's observable instruments
        would collect them: NaN and ±Inf left out, metrics without points left out, the others in
        the order they first had points, a counter series starting when it was first collected."""
        now = time.time_ns()
        found: dict[str, MetricPoints] = {}
        for name, table in self._tables.gauges().items():
            if points := self._in_sdk_order(name, [(k, v) for k, v in table.items() if isfinite(v)]):
                found[name] = MetricPoints(name, self._tables.description(name), points)
        for name, (description, counts) in self._tables.counters().items():
            if points := list(counts.items()):
                starts = self._starts.setdefault(name, {})
                for key, _ in points:
                    starts.setdefault(key, now)
                found[name] = MetricPoints(name, description, points, starts)
        for name in found:
            self._order.setdefault(name)
        return [found[name] for name in self._order if name in found], now

    def _in_sdk_order(self, name: str, points: list[tuple[Key, float]]) -> list[tuple[Key, float]]:
        """A gauge's points in the order the SDK keeps its series: that of each series' first
        export, for good. The table's own order (of first publish) differs only once a series was
        first published non-finite, or left the table and came back (an experiment run again)."""
        slots = self._slots.setdefault(name, {})
        if len(slots) == len(points) and all(map(operator.is_, slots, (key for key, _ in points))):
            return points  # the same series as last time, in the same order: nothing to sort
        for key, _ in points:
            slots.setdefault(key)
        current = dict(points)
        return [(key, current[key]) for key in slots if key in current]

    def export(self, deadline: float | None) -> bool:
        """Export the current values once; False if the lock or the deadline (time.monotonic();
        None: each sink's own timeout) did not allow it. Delivery is `last_ok`."""
        if os.getpid() != self._owner:
            return True
        if not self._acquire(deadline):
            return False
        try:
            sinks = self._sinks
            metrics, now = self.collect() if sinks else ([], 0)
            if not metrics:
                return True
            delivered = True
            for sink in sinks:
                if not self._export(sink, metrics, now, deadline):
                    delivered = False
                    self._tables.count_dropped("points", "export_failed", sum(len(m.points) for m in metrics))
            self.last_ok = delivered
            return True
        finally:
            self._lock.release()

    def _acquire(self, deadline: float | None) -> bool:
        if deadline is None:
            return self._lock.acquire()
        wait = deadline - time.monotonic()
        return wait > 0 and self._lock.acquire(timeout=wait)

    @staticmethod
    def _export(sink: MetricSink, metrics: list[MetricPoints], now: int, deadline: float | None) -> bool:
        try:
            return sink.export(metrics, now, deadline)
        except Exception:
            _log.exception("exporting metrics failed")
            return False

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.export(time.monotonic() + timeout_millis / 1000)

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Export the last values (within `timeout_millis`) and close the sinks."""
        self._stopped.set()
        self.force_flush(timeout_millis)
        sinks, self._sinks = self._sinks, ()  # an export that comes late finds none
        for sink in sinks:
            sink.shutdown()
