"""Shipping events and logs off the caller's thread, and counting what cannot be shipped.

Callers put small tuples on a bounded `RecordQueue` (never blocks: a full queue drops and counts).
One `ExportWorker` thread per process turns them into OpenTelemetry log records and hands them to
a logger. With the library's own pipeline that logger's only processor is `LogRecordBatcher`, which
the worker flushes after each batch, so the exporter's back-pressure lands on the queue (where
drops are counted) and never on the caller.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk._logs import LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter, LogRecordExportResult
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

from otel_liveview.otlp import OtlpSender
from otel_liveview.series import Tables

_log = logging.getLogger("otel_liveview")

CUMULATIVE = dict.fromkeys(
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

EVENT_KINDS = {"liveview.metric": "metric", "liveview.data": "data", "liveview.status": "status"}


def record_kind(record: ReadableLogRecord) -> str:
    return EVENT_KINDS.get(record.log_record.event_name or "", "log")


class RecordQueue:
    """A bounded hand-off from any thread to the export worker."""

    __slots__ = ("_items", "capacity", "wake", "wake_at")

    def __init__(self, capacity: int, wake_at: int) -> None:
        self._items: deque[tuple[Any, ...]] = deque()
        self.capacity = capacity
        self.wake_at = wake_at
        self.wake = threading.Event()

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

    def reset(self) -> None:
        """Forget everything (a forked child must not ship its parent's records)."""
        self._items = deque()
        self.wake = threading.Event()


class LogSink(Protocol):
    """Where batches of log records go: `export` returns True once the batch is delivered."""

    def export(self, batch: Sequence[ReadableLogRecord], deadline: float | None) -> bool: ...

    def shutdown(self) -> None: ...


class OtlpLogSink:
    """Log records -> one OTLP ExportLogsServiceRequest per batch.

    The export thread retries a batch the collector could not take (OTLP backoff, within
    OTEL_EXPORTER_OTLP_TIMEOUT) while the queue holds what arrives meanwhile; a flush or the exit
    makes one attempt, so a collector that is down costs them nothing.
    """

    def __init__(self, sender: OtlpSender) -> None:
        self.sender = sender

    def export(self, batch: Sequence[ReadableLogRecord], deadline: float | None) -> bool:
        request = encode_logs(batch)
        if deadline is None:  # the export thread's own pace: retry within the export timeout
            return self.sender.send(request, time.monotonic() + self.sender.endpoint.timeout, retry=True).ok
        return self.sender.send(request, deadline).ok  # a flush or the exit: one attempt, never a wait

    def shutdown(self) -> None:
        self.sender.close()


class ConsoleLogSink:
    """OTEL_LOGS_EXPORTER=console: each record as JSON on standard output (the SDK's format)."""

    def __init__(self) -> None:
        self._exporter = ConsoleLogRecordExporter()

    def export(self, batch: Sequence[ReadableLogRecord], deadline: float | None) -> bool:
        return self._exporter.export(batch) is LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        self._exporter.shutdown()


class LogRecordBatcher(LogRecordProcessor):
    """Collects the records the worker emits; exports them to every sink when the worker says so."""

    def __init__(self, sinks: Sequence[LogSink], tables: Tables) -> None:
        self._sinks = tuple(sinks)
        self._tables = tables
        self._pending: list[ReadableLogRecord] = []
        self._lock = threading.Lock()

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        readable = ReadableLogRecord(
            log_record=log_record.log_record,
            resource=log_record.resource,
            instrumentation_scope=log_record.instrumentation_scope,
            limits=log_record.limits,
        )
        with self._lock:
            self._pending.append(readable)

    def export_pending(self, deadline: float | None = None) -> bool:
        """Export what was emitted since the last call; True if every sink took it.

        `deadline` (time.monotonic()) bounds the retries; None: each sink's own export timeout.
        """
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return True
        delivered = True
        for sink in self._sinks:
            try:
                delivered = sink.export(batch, deadline) and delivered
            except Exception:
                _log.exception("exporting %d records failed", len(batch))
                delivered = False
        if not delivered:
            self._count_failed(batch)
        return delivered

    def _count_failed(self, batch: Sequence[ReadableLogRecord]) -> None:
        counts: dict[str, int] = {}
        for record in batch:
            kind = record_kind(record)
            counts[kind] = counts.get(kind, 0) + 1
        for kind, amount in counts.items():
            self._tables.count_dropped(kind, "export_failed", amount)

    def shutdown(self) -> None:
        for sink in self._sinks:
            sink.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self.export_pending(time.monotonic() + timeout_millis / 1000)
        return True


class ExportWorker:
    """The thread that drains the queue: build records, emit them, export each batch."""

    def __init__(
        self,
        queue: RecordQueue,
        emit: Callable[[tuple[Any, ...]], None],
        batch_size: int,
        delay: float,
        after_batch: Callable[[float | None], bool] | None,
        tables: Tables,
    ) -> None:
        self._queue = queue
        self._emit = emit
        self._batch_size = batch_size
        self._delay = delay
        self._after_batch = after_batch
        self._tables = tables
        self._drain_lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="otel-liveview-export", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        wake = self._queue.wake
        while not self._stopping:
            wake.wait(self._delay)
            wake.clear()
            self.drain()

    def drain(self, deadline: float | None = None) -> bool:
        """Ship what is queued; False if a batch was not delivered or the deadline passed first.

        The lock is taken per batch, so a flush or a fork can get in between batches.
        """
        delivered = True
        while True:
            wait = -1 if deadline is None else deadline - time.monotonic()
            if deadline is not None and wait <= 0:
                return delivered and not len(self._queue)
            if not self._drain_lock.acquire(timeout=wait):  # stuck behind a slow export
                return False
            try:
                batch = self._queue.take(self._batch_size)
                if not batch:
                    return delivered
                for item in batch:
                    try:
                        self._emit(item)
                    except Exception:  # a record that cannot be built must not stop the others
                        _log.exception("building a %s record failed", item[0])
                        self._tables.count_dropped(item[0], "invalid")
                if self._after_batch is not None and not self._after_batch(deadline):
                    delivered = False
                    if self._stopping:  # exiting and the collector is away: count the rest, don't wait
                        self._discard()
                        return False
            finally:
                self._drain_lock.release()

    def _discard(self) -> None:
        while batch := self._queue.take(self._batch_size):
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
        finisher = threading.Thread(target=self.drain, args=(deadline,), daemon=True)
        finisher.start()
        finisher.join(timeout)
        return not finisher.is_alive() and not len(self._queue)


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
        if not self.last_ok:
            points = sum(
                len(metric.data.data_points)
                for resource_metrics in metrics_data.resource_metrics
                for scope_metrics in resource_metrics.scope_metrics
                for metric in scope_metrics.metrics
            )
            self._tables.count_dropped("points", "export_failed", points)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
