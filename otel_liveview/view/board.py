"""What the LiveView panels show, folded from OTLP requests: pure state, no I/O and no rendering.

`Board.add_metrics` / `Board.add_logs` take decoded OTLP export requests (from any OpenTelemetry SDK)
and `Board.snapshot()` returns immutable rows for the renderer. The library's own instruments map onto
the panels as the Grafana dashboard has them (see docs/view.md); anything else is shown as far as it
maps: a gauge or sum is a metric row under its own name, a histogram a row of its mean, a log record a
log line.

Memory is bounded: every table has a cap, the least recently updated row goes first when it is
reached (a stream keeps its first keys instead, as the library does), and what was cut is counted
(`Snapshot.cut`). Cumulative exporters repeat every value at
each export, so a metric's history grows only when its value or step changes.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from otel_liveview import names
from otel_liveview._internal.mapping import leaves
from otel_liveview.view.decoding import (
    decode_any,
    decode_attributes,
    label_text,
    point_value,
    severity_name,
    short_text,
)
from otel_liveview.view.folds import Experiments, Logs, Metrics, Points, Publisher, Publishers, Streams
from otel_liveview.view.rows import (
    ExperimentRow,
    Limits,
    LogLine,
    MetricRow,
    PublisherRow,
    RankRow,
    Snapshot,
    StreamRow,
)


@dataclass
class _Point:
    """One gauge or sum data point, for the handler of its instrument."""

    publisher: Publisher
    attributes: dict[str, Any]  # the handler's own copy: it may pop labels
    value: float
    time_ns: int
    points: Points
    now: float


@dataclass
class _Record:
    """One log record, for the handler of its event name."""

    publisher: Publisher
    record: LogRecord
    name: str  # its event name ("" for a plain log record)
    attributes: dict[str, Any]
    time_ns: int
    now: float


class Board:
    """Folds OTLP requests into panel rows. Thread-safe: receivers call it from their threads."""

    def __init__(
        self,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.limits = limits = limits or Limits()
        self._clock = clock
        self._wall_ns = wall_ns
        self._lock = threading.Lock()
        self._totals: Counter[str] = Counter()
        self._cut: Counter[str] = Counter()
        self._rejections: deque[str] = deque(maxlen=3)
        self.publishers = Publishers(limits, self._cut)
        self.metrics = Metrics(limits, self._cut)
        self.streams = Streams(limits, self._cut)
        self.experiments = Experiments(limits, self._cut)
        self.logs = Logs(limits)

    # -- input ------------------------------------------------------------------------------------------

    def add_metrics(self, request: ExportMetricsServiceRequest) -> None:
        now = self._clock()
        with self._lock:
            self._totals["metric requests"] += 1
            for resource_metrics in request.resource_metrics:
                publisher = self.publishers.seen(decode_attributes(resource_metrics.resource.attributes), now)
                points = Points()
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        self._fold_metric(publisher, metric, points, now)
                self.metrics.fold(publisher, points, now)

    def add_logs(self, request: ExportLogsServiceRequest) -> None:
        now = self._clock()
        with self._lock:
            self._totals["log requests"] += 1
            for resource_logs in request.resource_logs:
                publisher = self.publishers.seen(decode_attributes(resource_logs.resource.attributes), now)
                for scope_logs in resource_logs.scope_logs:
                    for record in scope_logs.log_records:
                        self._fold_record(publisher, record, now)

    def rejected(self, transport: str, reason: str) -> None:
        with self._lock:
            self._totals["rejected"] += 1
            self._rejections.append(f"{transport}: {reason[:200]}")

    # -- output -----------------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        now = self._clock()
        with self._lock:
            alive = self.limits.alive_seconds
            experiments = self.experiments.rows(
                now, self._wall_ns() / 1e9, self.metrics, self.publishers, alive_since=now - alive
            )
            return Snapshot(
                tuple(experiments),
                tuple(self.metrics.rows(now)),
                tuple(self.streams.rows(now)),
                self.logs.rows(),
                tuple(self.publishers.rows(now, alive)),
                tuple(self.logs.errors),
                dict(self._totals),
                dict(self._cut),
                tuple(self._rejections),
            )

    # -- metrics ----------------------------------------------------------------------------------------

    def _fold_metric(self, publisher: Publisher, metric: Metric, points: Points, now: float) -> None:
        kind = metric.WhichOneof("data")
        if kind is None:
            return
        data = getattr(metric, kind)
        self._totals["points"] += len(data.data_points)
        name = metric.name
        if kind in ("gauge", "sum"):
            handler = _POINT_HANDLERS.get(name)
            for point in data.data_points:
                attributes = decode_attributes(point.attributes)
                for identity in names.POINT_ATTRIBUTES:  # the resource says which process: not a label
                    attributes.pop(identity, None)
                value = point_value(point)
                if handler is not None and handler(
                    self, _Point(publisher, dict(attributes), value, point.time_unix_nano, points, now)
                ):
                    continue
                points.value[Metrics.other(publisher, name, kind, attributes)] = (
                    point.time_unix_nano,
                    value,
                    kind,
                )
        elif kind in ("histogram", "exponential_histogram", "summary"):
            label = "summary" if kind == "summary" else "histogram"
            for point in data.data_points:
                attributes = decode_attributes(point.attributes)
                # A histogram's row is its mean; min/max/buckets do not fit one cell.
                mean = point.sum / point.count if point.count else math.nan
                points.value[Metrics.other(publisher, name, label, attributes)] = (
                    point.time_unix_nano,
                    mean,
                    label,
                )

    def _on_metric(self, point: _Point) -> bool:
        key = Metrics.series(point.publisher, point.attributes)
        if key is not None:
            point.points.value[key] = (point.time_ns, point.value, "liveview")
        return key is not None

    def _on_step(self, point: _Point) -> bool:
        key = Metrics.series(point.publisher, point.attributes)
        if key is not None:
            point.points.step[key] = point.value
        return key is not None

    def _on_epoch(self, point: _Point) -> bool:
        key = Metrics.series(point.publisher, point.attributes)
        if key is not None:
            point.points.epoch[key] = point.value
        return key is not None

    def _on_nonfinite(self, point: _Point) -> bool:
        kind = point.attributes.pop("value", None)
        key = Metrics.series(point.publisher, point.attributes)
        if key is None or kind is None:
            return False
        # One point per kind (nan, inf, -inf), 1 for the current one: 0s only clear their own kind.
        _, current = point.points.nonfinite.get(key, (point.time_ns, None))
        if point.value == 1:
            current = label_text(kind)
        point.points.nonfinite[key] = (point.time_ns, current)
        return True

    def _on_data(self, point: _Point) -> bool:
        return self.streams.on_gauge(point.publisher, point.attributes, point.value, point.time_ns, point.now)

    def _on_status(self, point: _Point) -> bool:
        return self.experiments.on_status(
            point.publisher, point.attributes, point.value, point.time_ns, point.now
        )

    def _on_info(self, point: _Point) -> bool:
        row = self.experiments.named(point.publisher, point.attributes, point.now)
        if row is None:
            return False
        skip = ("experiment", "topic")
        row.info = {key: label_text(value) for key, value in point.attributes.items() if key not in skip}
        return True

    def _on_start_time(self, point: _Point) -> bool:
        row = self.experiments.named(point.publisher, point.attributes, point.now)
        if row is not None and point.value > 0:
            row.started = point.value
        return row is not None

    def _on_end_time(self, point: _Point) -> bool:
        row = self.experiments.named(point.publisher, point.attributes, point.now)
        if row is not None and point.value > 0:
            row.ended = point.value
        return row is not None

    def _on_planned(self, point: _Point) -> bool:
        row = self.experiments.named(point.publisher, point.attributes, point.now)
        phase, unit = point.attributes.get("phase"), point.attributes.get("unit")
        if row is None or phase is None or unit is None:
            return False
        row.totals[(label_text(phase), label_text(unit))] = point.value
        return True

    def _on_published(self, point: _Point) -> bool:
        return Publishers.on_published(point.publisher, point.attributes, point.value)

    def _on_dropped(self, point: _Point) -> bool:
        return Publishers.on_dropped(point.publisher, point.attributes, point.value)

    # -- log records ------------------------------------------------------------------------------------

    def _fold_record(self, publisher: Publisher, record: LogRecord, now: float) -> None:
        attributes = decode_attributes(record.attributes)
        name = record.event_name or label_text(
            attributes.get("event_name") or attributes.get("event.name") or ""
        )
        time_ns = record.time_unix_nano or record.observed_time_unix_nano or self._wall_ns()
        handler = _EVENT_HANDLERS.get(name, Board._on_log_line)
        handler(self, _Record(publisher, record, name, attributes, time_ns, now))

    def _on_data_event(self, event: _Record) -> None:
        self._totals["data events"] += 1
        stream = event.attributes.get("stream")
        if stream is None:
            return
        body = decode_any(event.record.body)
        values = [
            (key, value if isinstance(value, (int, float)) else short_text(value))
            for key, value in leaves(body if isinstance(body, dict) else {"value": body})
        ]
        topic = label_text(event.attributes.get("topic", event.publisher.topic))
        self.streams.on_event(topic, label_text(stream), values, event.time_ns, event.now)

    def _on_status_event(self, event: _Record) -> None:
        self._totals["status events"] += 1
        body = decode_any(event.record.body)
        fields = body if isinstance(body, dict) else event.attributes
        experiment, status = fields.get("experiment"), fields.get("status")
        if experiment is None or status is None:
            return
        error = fields.get("error")
        self.experiments.set_status(
            event.publisher,
            label_text(event.attributes.get("topic", event.publisher.topic)),
            label_text(experiment),
            label_text(status),
            error=None if error is None else short_text(error),
            time_ns=event.time_ns,
            now=event.now,
            from_event=True,
        )

    def _on_counted_event(self, event: _Record) -> None:
        # The gauges carry the same values; counted so the header shows they arrived.
        self._totals["metric events" if event.name == names.METRIC_EVENT else "info events"] += 1

    def _on_log_line(self, event: _Record) -> None:
        record, name = event.record, event.name
        self._totals["log records" if not name else "other events"] += 1
        body = decode_any(record.body)
        text = body if isinstance(body, str) else ("" if body is None else short_text(body))
        if name:  # an event of another SDK: a log line that says what it is
            text = f"[{name}] {text}"
        extra = tuple(
            (k, short_text(v))
            for k, v in event.attributes.items()
            if k not in ("event_name", "event.name", "topic")
        )
        self.logs.add(
            LogLine(
                event.time_ns,
                record.severity_number,
                severity_name(record.severity_number, record.severity_text),
                short_text(text),
                event.publisher.service,
                event.publisher.pid,
                extra[:8],
            )
        )


def _known(board: Board, point: _Point) -> bool:
    return True


# The library's instruments. A handler returns False when the point lacks the labels the library
# gives it: then it is someone else's instrument of the same name, shown as a plain row.
_POINT_HANDLERS: dict[str, Callable[[Board, _Point], bool]] = {
    names.METRIC: Board._on_metric,
    names.METRIC_STEP: Board._on_step,
    names.METRIC_EPOCH: Board._on_epoch,
    names.METRIC_NONFINITE: Board._on_nonfinite,
    names.DATA: Board._on_data,
    names.EXPERIMENT_STATUS: Board._on_status,
    names.EXPERIMENT_INFO: Board._on_info,
    names.EXPERIMENT_START_TIME: Board._on_start_time,
    names.EXPERIMENT_END_TIME: Board._on_end_time,
    names.EXPERIMENT_PLANNED: Board._on_planned,
    names.EXPERIMENT_PLANNED_UP_TO_0_1: Board._on_planned,  # a publisher of an older release still shows progress
    # The launch's numbers: the resource of the same export says them too; the ranks' steps come
    # from their metrics.
    names.LAUNCH_WORLD_SIZE: _known,
    names.LAUNCH_RESTARTS: _known,
    names.LAUNCH_RESTARTS_UP_TO_0_1: _known,
    names.LAUNCH_STEP: _known,
    names.PUBLISHED: Board._on_published,
    names.DROPPED: Board._on_dropped,
}

# The library's events; any other record is a log line.
_EVENT_HANDLERS: dict[str, Callable[[Board, _Record], None]] = {
    names.DATA_EVENT: Board._on_data_event,
    names.STATUS_EVENT: Board._on_status_event,
    names.METRIC_EVENT: Board._on_counted_event,
    names.INFO_EVENT: Board._on_counted_event,
}

__all__ = [
    "Board",
    "ExperimentRow",
    "Limits",
    "LogLine",
    "MetricRow",
    "PublisherRow",
    "RankRow",
    "Snapshot",
    "StreamRow",
    "severity_name",
]
