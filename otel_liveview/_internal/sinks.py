"""Where records go: batches of events and logs (`LogSink`) and metric exports (`MetricSink`), over OTLP or to the console."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from google.protobuf import json_format
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

from otel_liveview._internal.encoding import LogBatch, MetricPoints, MetricsEncoder
from otel_liveview._internal.otlp import OtlpSender
from otel_liveview._internal.spool import LOGS, METRICS
from otel_liveview._internal.spooling import Spooler
from otel_liveview._internal.tables import Key


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


class SpoolLogSink:
    """With a spool: a batch -> one ExportLogsServiceRequest written to the spool, which sends it."""

    def __init__(self, spooler: Spooler) -> None:
        self._spooler = spooler

    def export(self, batch: LogBatch, deadline: float | None) -> bool:
        return self._spooler.deliver(LOGS, batch.request.SerializeToString(), batch.kinds)

    def shutdown(self) -> None:
        pass


class ConsoleLogSink:
    """OTEL_LOGS_EXPORTER=console: each record as one line of OTLP/JSON on standard output."""

    def export(self, batch: LogBatch, deadline: float | None) -> bool:
        lines = [json_format.MessageToJson(record, indent=None) for record in batch.records()]
        print("\n".join(lines), flush=True)
        return True

    def shutdown(self) -> None:
        pass


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


class SpoolMetricSink:
    """With a spool: points -> one ExportMetricsServiceRequest written to the spool, which sends it."""

    def __init__(self, spooler: Spooler, encoder: MetricsEncoder) -> None:
        self._spooler = spooler
        self._encoder = encoder

    def export(self, metrics: Sequence[MetricPoints], time_unix_nano: int, deadline: float | None) -> bool:
        points = {"points": sum(len(metric.points) for metric in metrics)}
        return self._spooler.deliver(METRICS, self._encoder.encode(metrics, time_unix_nano), points)

    def shutdown(self) -> None:
        pass


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
