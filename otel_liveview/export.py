"""Shipping events and logs off the caller's thread, and counting what cannot be shipped.

Callers put small tuples on a bounded `RecordQueue` (never blocks: a full queue drops and counts).
One `ExportWorker` thread per process turns them into OpenTelemetry log records and hands them to
OTLP records in place (`LogShipper`) and ships each batch (or, when the application installed its own
LoggerProvider, hands them to its logger). The export thread waits for the network, so back-pressure
lands on the queue (where drops are counted) and never on the caller.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics import _Gauge as SyncGauge
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)

from otel_liveview import events
from otel_liveview.encoding import LogBatch
from otel_liveview.otlp import OtlpSender
from otel_liveview.tables import Tables

_log = logging.getLogger("otel_liveview")

CUMULATIVE: dict[type, AggregationTemporality] = dict.fromkeys(
    (
        Counter,
        UpDownCounter,
        Histogram,
        SyncGauge,
        ObservableCounter,
        ObservableUpDownCounter,
        ObservableGauge,
    ),
    AggregationTemporality.CUMULATIVE,
)


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
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="otel-liveview-export", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        """Export full batches as soon as they are queued, and what is left once the schedule delay
        has passed since the last export (OTEL_BLRP_SCHEDULE_DELAY): steady traffic goes out in
        full requests, not in whatever trickled in during the previous export. Metric updates go
        when their interval has passed or their queue is half full."""
        wake = self._queue.wake  # the updates queue sets the same event
        started = time.monotonic()
        due, updates_due = started + self._delay, started + self._updates_interval
        while not self._stopping:
            wake.wait(max(0.0, min(due, updates_due) - time.monotonic()))
            wake.clear()
            now = time.monotonic()
            if now >= updates_due or len(self._updates) >= self._updates.wake_at:
                self.drain_updates()
                updates_due = time.monotonic() + self._updates_interval
            if now >= due:
                self.drain()
                due = time.monotonic() + self._delay
            else:
                self.drain(full_only=True)

    def flush(self, deadline: float) -> bool:
        """Ship everything queued by `deadline` (time.monotonic()); False if something was not
        delivered or the deadline passed first."""
        updates_delivered = self.drain_updates(deadline)
        return self.drain(deadline) and updates_delivered

    def drain(self, deadline: float | None = None, full_only: bool = False) -> bool:
        """Ship the queued events and logs (with `full_only`, only full batches); False if a batch
        was not delivered or the deadline passed first.

        The lock is taken per batch, so a flush or a fork can get in between batches.
        """
        delivered = True
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return delivered and not len(self._queue)
            if full_only and len(self._queue) < self._queue.wake_at:  # a full batch, or queue pressure
                return delivered
            if not self._acquire(deadline):  # stuck behind a slow export
                return False
            try:
                batch = self._queue.take(self._batch_size)
                if not batch:
                    return delivered
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


class OtlpMetricExporter(MetricExporter):
    """Metrics -> one OTLP ExportMetricsServiceRequest per collection. Always cumulative, as
    Prometheus needs; one attempt per collection, since the next one carries the current values."""

    def __init__(self, sender: OtlpSender) -> None:
        super().__init__(preferred_temporality=CUMULATIVE)
        self.sender = sender

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        deadline = time.monotonic() + timeout_millis / 1000
        if self.sender.send(encode_metrics(metrics_data), deadline).ok:
            return MetricExportResult.SUCCESS
        return MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.sender.close()


class CountingMetricExporter(MetricExporter):
    """Wraps a metric exporter and counts the data points of failed exports as dropped."""

    def __init__(self, inner: MetricExporter, tables: Tables) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner = inner
        self._tables = tables
        self.last_ok = True  # whether the latest export was delivered (flush() reports it)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception:
            _log.exception("exporting metrics failed")
            result = MetricExportResult.FAILURE
        self.last_ok = result is MetricExportResult.SUCCESS
        self._count_overflow(metrics_data)
        if not self.last_ok:
            points = sum(
                len(metric.data.data_points)
                for resource_metrics in metrics_data.resource_metrics
                for scope_metrics in resource_metrics.scope_metrics
                for metric in scope_metrics.metrics
            )
            self._tables.count_dropped("points", "export_failed", points)
        return result

    def _count_overflow(self, metrics_data: MetricsData) -> None:
        """Series the SDK folded into its `otel.metric.overflow` point (a cardinality limit below the
        tables', e.g. a View of the application's) are lost: count them, and warn once."""
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.data.data_points:
                        if point.attributes and point.attributes.get("otel.metric.overflow"):
                            self._tables.count_dropped("points", "cardinality")

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
