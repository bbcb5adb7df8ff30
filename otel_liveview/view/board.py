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

import bisect
import math
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from otel_liveview import names
from otel_liveview._internal.config import Settings

__all__ = [
    "Board",
    "ExperimentRow",
    "Limits",
    "LogLine",
    "MetricRow",
    "PublisherRow",
    "Snapshot",
    "StreamRow",
    "severity_name",
]

Labels = tuple[tuple[str, str], ...]

ERROR_SEVERITY = 17  # OTLP SeverityNumber ERROR; FATAL is 21-24

MAX_TEXT = 300  # characters of a log body or a data value kept for display


@dataclass(frozen=True)
class Limits:
    metric_rows: int = 500
    history: int = 40
    streams: int = 64
    stream_keys: int = Settings.max_stream_keys  # the first keys of a stream, as the library keeps
    experiments: int = 64
    publishers: int = 256
    logs: int = 20
    alive_seconds: float = 5.0  # a publisher is alive if it exported this recently


@dataclass(frozen=True)
class MetricRow:
    name: str
    labels: Labels  # without metric and topic
    topic: str
    instance: str
    pid: int | None
    kind: str  # "liveview", "gauge", "sum", "histogram" (mean), "summary" (mean)
    value: float | None  # latest finite value
    nonfinite: str | None  # "nan", "inf", "-inf" while the latest value is not finite
    step: float | None
    epoch: float | None
    history: tuple[float, ...]  # oldest first; NaN marks a non-finite sample
    age: float  # seconds since the value last changed


@dataclass(frozen=True)
class StreamRow:
    topic: str
    stream: str
    values: tuple[tuple[str, Any], ...]  # key -> latest value, keys sorted
    events: int  # liveview.data events received
    age: float


@dataclass(frozen=True)
class ExperimentRow:
    topic: str
    experiment: str
    status: str
    error: str | None
    pid: int | None
    age: float  # seconds since the status was last confirmed
    elapsed: float | None = None  # seconds since the start, or the run's duration once it ended
    info: tuple[tuple[str, str], ...] = ()  # the run's configuration, as liveview.experiment.info has it
    progress: tuple[tuple[str, str, float | None, float], ...] = ()  # (phase, unit, done, total)
    ranks: tuple[RankRow, ...] = ()  # the processes of its launch, when a launcher started it
    world_size: int | None = None


@dataclass(frozen=True)
class RankRow:
    """One process of a launched run: its place, its experiment status (None if it reports none,
    as when only rank 0 runs the experiment), its furthest step on the experiment's topic."""

    rank: str
    node: str
    status: str | None
    step: float | None
    alive: bool


@dataclass(frozen=True)
class PublisherRow:
    instance: str
    service: str
    pid: int | None
    host: str
    topic: str
    sdk: str
    alive: bool
    age: float  # seconds since its last export
    published: tuple[tuple[str, float], ...]  # kind -> total
    dropped: tuple[tuple[str, str, float], ...]  # (kind, reason) -> total
    rank: str = ""  # "rank 3 on gpu-07" for a launched process, else ""


@dataclass(frozen=True)
class LogLine:
    time_unix_nano: int
    severity_number: int
    severity: str
    body: str
    service: str
    pid: int | None
    attributes: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Snapshot:
    experiments: tuple[ExperimentRow, ...]
    metrics: tuple[MetricRow, ...]
    streams: tuple[StreamRow, ...]
    logs: tuple[LogLine, ...]  # oldest first
    publishers: tuple[PublisherRow, ...]
    errors: tuple[LogLine, ...]  # the latest ERROR and FATAL logs, oldest first
    totals: dict[str, int]  # requests, points, records, rejected, ...
    cut: dict[str, int]  # rows dropped to stay within Limits, by table
    rejections: tuple[str, ...]  # the latest reasons a request was refused


# -- mutable rows (behind the board's lock) -------------------------------------------------------------


@dataclass
class _Metric:
    name: str
    labels: Labels
    topic: str
    instance: str
    pid: int | None
    kind: str
    history: deque[float]
    value: float | None = None
    nonfinite: str | None = None
    step: float | None = None
    epoch: float | None = None
    time_ns: int = 0
    changed: float = 0.0
    last_sample: tuple[Any, ...] | None = None


@dataclass
class _Stream:
    topic: str
    stream: str
    # key -> (time, value, from an event)
    values: dict[str, tuple[int, Any, bool]] = field(default_factory=dict)
    gauge_seen: dict[tuple[str, str], float] = field(default_factory=dict)  # (instance, key) -> value
    events: int = 0
    changed: float = 0.0


@dataclass
class _Experiment:
    topic: str
    experiment: str
    status: str
    error: str | None
    pid: int | None
    time_ns: int
    seen: float
    info: dict[str, str] = field(default_factory=dict)
    started: float | None = None  # seconds since the epoch
    ended: float | None = None
    totals: dict[tuple[str, str], float] = field(default_factory=dict)  # (phase, unit) -> total
    statuses: dict[str, _Status] = field(default_factory=dict)  # by publisher instance

    def current(self) -> tuple[str, str | None, str | None]:
        """(status, error, run id) across its processes. A launch's processes make one run: failed
        if any failed, else aborted if any was, running while any runs, completed when all did.
        Without a launcher the latest report holds (a name run again is a new run)."""
        latest = max(self.statuses.values(), key=lambda s: s.time_ns)
        if latest.run is None:
            return latest.status, latest.error, None
        same_run = [s for s in self.statuses.values() if s.run == latest.run]
        worst = min(same_run, key=lambda s: (_PRECEDENCE.get(s.status, len(_PRECEDENCE)), -s.time_ns))
        return worst.status, worst.error, latest.run


@dataclass
class _Status:
    status: str
    error: str | None
    time_ns: int
    run: str | None


_PRECEDENCE = {"failed": 0, "aborted": 1, "running": 2, "initializing": 3, "completed": 4}


@dataclass
class _Publisher:
    instance: str
    service: str
    pid: int | None
    host: str
    topic: str
    sdk: str
    seen: float
    published: dict[str, float] = field(default_factory=dict)
    dropped: dict[tuple[str, str], float] = field(default_factory=dict)
    run: str | None = None  # its launch (otel_liveview._internal.launch), when a launcher started it
    rank: str | None = None
    node: str = ""
    world_size: int | None = None


@dataclass
class _Points:
    """The points of one resource's export, by series, so step and value are folded together."""

    value: dict[tuple[Any, ...], tuple[int, float, str]] = field(default_factory=dict)
    step: dict[tuple[Any, ...], float] = field(default_factory=dict)
    epoch: dict[tuple[Any, ...], float] = field(default_factory=dict)
    nonfinite: dict[tuple[Any, ...], tuple[int, str | None]] = field(default_factory=dict)


@dataclass
class _Point:
    """One gauge or sum data point, for the handler of its instrument."""

    publisher: _Publisher
    attributes: dict[str, Any]  # the handler's own copy: it may pop labels
    value: float
    time_ns: int
    points: _Points
    now: float


# -- decoding ---------------------------------------------------------------------------------------------


def decode_any(value: AnyValue, depth: int = 0) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if depth > 32:
        return "<too deep>"
    if kind == "kvlist_value":
        return {kv.key: decode_any(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if kind == "array_value":
        return [decode_any(v, depth + 1) for v in value.array_value.values]
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def decode_attributes(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: decode_any(kv.value) for kv in attributes}


def label_text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return value if isinstance(value, str) else str(value)


def _short(value: Any) -> str:
    text = label_text(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _rank_order(name: str) -> tuple[int, str]:
    """ "rank 10 on n" after "rank 9 on n"; unlaunched processes first."""
    words = name.split()
    return (int(words[1]), name) if len(words) > 1 and words[1].isdigit() else (-1, name)


def severity_name(number: int, text: str = "") -> str:
    """The severity text if the record has one, else the name the OTLP number range stands for."""
    if text:
        return text.upper()
    if number <= 0:
        return "UNSET"
    return ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")[min(5, (number - 1) // 4)]


def _point_value(point: Any) -> float:
    return float(point.as_double if point.WhichOneof("value") == "as_double" else point.as_int)


def _nonfinite_label(value: float) -> str:
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _flatten(value: Any, prefix: str = "", depth: int = 0) -> Iterable[tuple[str, Any]]:
    """Dotted keys for nested maps, as the library names the liveview.data gauge's keys."""
    if isinstance(value, dict) and depth < 32:
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}{key}.", depth + 1)
    else:
        yield prefix[:-1] if prefix else "value", value


# -- the board ----------------------------------------------------------------------------------------------


class Board:
    """Folds OTLP requests into panel rows. Thread-safe: receivers call it from their threads."""

    def __init__(
        self,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.limits = limits or Limits()
        self._clock = clock
        self._wall_ns = wall_ns
        self._lock = threading.Lock()
        self._metrics: OrderedDict[tuple[Any, ...], _Metric] = OrderedDict()
        self._streams: OrderedDict[tuple[str, str], _Stream] = OrderedDict()
        self._experiments: OrderedDict[tuple[str, str], _Experiment] = OrderedDict()
        self._publishers: OrderedDict[str, _Publisher] = OrderedDict()
        self._logs: list[tuple[int, int, LogLine]] = []  # (time, arrival, line), sorted
        self._arrivals = 0
        self._totals: Counter[str] = Counter()
        self._cut: Counter[str] = Counter()
        self._rejections: deque[str] = deque(maxlen=3)
        self._errors: deque[LogLine] = deque(maxlen=10)

    # -- input ------------------------------------------------------------------------------------------

    def add_metrics(self, request: ExportMetricsServiceRequest) -> None:
        now = self._clock()
        with self._lock:
            self._totals["metric requests"] += 1
            for resource_metrics in request.resource_metrics:
                publisher = self._publisher(decode_attributes(resource_metrics.resource.attributes), now)
                points = _Points()
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        self._fold_metric(publisher, metric, points, now)
                self._fold_points(publisher, points, now)

    def add_logs(self, request: ExportLogsServiceRequest) -> None:
        now = self._clock()
        with self._lock:
            self._totals["log requests"] += 1
            for resource_logs in request.resource_logs:
                publisher = self._publisher(decode_attributes(resource_logs.resource.attributes), now)
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
            metrics = sorted(
                (
                    MetricRow(
                        m.name,
                        m.labels,
                        m.topic,
                        m.instance,
                        m.pid,
                        m.kind,
                        m.value,
                        m.nonfinite,
                        m.step,
                        m.epoch,
                        tuple(m.history),
                        now - m.changed,
                    )
                    for m in self._metrics.values()
                ),
                key=lambda r: (r.topic, r.name, r.labels, r.pid or 0, r.instance),
            )
            streams = sorted(
                (
                    StreamRow(
                        s.topic,
                        s.stream,
                        tuple(sorted((k, v) for k, (_, v, _) in s.values.items())),
                        s.events,
                        now - s.changed,
                    )
                    for s in self._streams.values()
                ),
                key=lambda r: (r.topic, r.stream),
            )
            wall = self._wall_ns() / 1e9
            experiments = sorted(
                (
                    ExperimentRow(
                        e.topic,
                        e.experiment,
                        e.status,
                        e.error,
                        e.pid,
                        now - e.seen,
                        None if e.started is None else (e.ended or wall) - e.started,
                        tuple(sorted(e.info.items())),
                        tuple(
                            (phase, unit, self._done(e.topic, phase, unit), total)
                            for (phase, unit), total in sorted(e.totals.items())
                        ),
                        *self._ranks(e, now - alive),
                    )
                    for e in self._experiments.values()
                ),
                key=lambda r: (r.topic, r.experiment),
            )
            publishers = sorted(
                (
                    PublisherRow(
                        p.instance,
                        p.service,
                        p.pid,
                        p.host,
                        p.topic,
                        p.sdk,
                        now - p.seen <= alive,
                        now - p.seen,
                        tuple(sorted(p.published.items())),
                        tuple(sorted((k, r, v) for (k, r), v in p.dropped.items())),
                        f"rank {p.rank} on {p.node}" if p.rank is not None else "",
                    )
                    for p in self._publishers.values()
                ),
                key=lambda r: (r.service, _rank_order(r.rank), r.pid or 0, r.instance),
            )
            return Snapshot(
                tuple(experiments),
                tuple(metrics),
                tuple(streams),
                tuple(line for _, _, line in self._logs),
                tuple(publishers),
                tuple(self._errors),
                dict(self._totals),
                dict(self._cut),
                tuple(self._rejections),
            )

    def _ranks(self, experiment: _Experiment, alive_since: float) -> tuple[tuple[RankRow, ...], int | None]:
        """The processes of the experiment's current run, by rank, and the run's world size."""
        _, _, run = experiment.current()
        if run is None:
            return (), None
        members = [p for p in self._publishers.values() if p.run == run]
        steps: dict[str, float] = {}
        for m in self._metrics.values():
            if m.topic == experiment.topic and m.step is not None:
                steps[m.instance] = max(m.step, steps.get(m.instance, m.step))
        rows = [
            RankRow(
                p.rank or "?",
                p.node,
                experiment.statuses[p.instance].status if p.instance in experiment.statuses else None,
                steps.get(p.instance),
                p.seen >= alive_since,
            )
            for p in members
        ]
        rows.sort(key=lambda r: (_as_int(r.rank) is None, _as_int(r.rank) or 0, r.rank))
        world = max((p.world_size for p in members if p.world_size is not None), default=None)
        return tuple(rows), world

    def _done(self, topic: str, phase: str, unit: str) -> float | None:
        """How far `phase` got: the highest step (or epoch) of the topic's metrics in that phase."""
        reached = [
            m.step if unit == "steps" else m.epoch
            for m in self._metrics.values()
            if m.topic == topic and ("phase", phase) in m.labels
        ]
        known = [value for value in reached if value is not None]
        return max(known) if known else None

    # -- publishers -------------------------------------------------------------------------------------

    def _publisher(self, resource: dict[str, Any], now: float) -> _Publisher:
        service = label_text(resource.get("service.name", "unknown_service"))
        pid = _as_int(resource.get("process.pid"))
        host = label_text(resource.get("host.name", ""))
        # Other SDKs may not set service.instance.id: service, host and pid tell processes apart.
        instance = label_text(resource.get("service.instance.id") or f"{service}@{host}:{pid}")
        publisher = self._publishers.get(instance)
        if publisher is None:
            publisher = _Publisher(
                instance,
                service,
                pid,
                host,
                label_text(resource.get(names.TOPIC, "")),
                label_text(resource.get("telemetry.sdk.language", "")),
                now,
            )
            if resource.get(names.RUN_ID) is not None:
                publisher.run = label_text(resource[names.RUN_ID])
                publisher.rank = label_text(resource.get(names.RANK, "")) or None
                publisher.node = label_text(resource.get(names.NODE, host))
                publisher.world_size = _as_int(resource.get(names.WORLD_SIZE))
            self._insert(self._publishers, instance, publisher, self.limits.publishers, "publishers")
        else:
            publisher.seen = now
            self._publishers.move_to_end(instance)
        return publisher

    def _insert(self, table: OrderedDict[Any, Any], key: Any, row: Any, cap: int, name: str) -> None:
        """Add `row`, evicting the least recently updated rows beyond `cap` (counted in `cut`)."""
        table[key] = row
        while len(table) > cap:
            table.popitem(last=False)
            self._cut[name] += 1

    # -- metrics ----------------------------------------------------------------------------------------

    def _fold_metric(self, publisher: _Publisher, metric: Metric, points: _Points, now: float) -> None:
        kind = metric.WhichOneof("data")
        if kind is None:
            return
        data = getattr(metric, kind)
        self._totals["points"] += len(data.data_points)
        name = metric.name
        if kind in ("gauge", "sum"):
            handler = _LIBRARY_METRICS.get(name)
            for point in data.data_points:
                attributes = decode_attributes(point.attributes)
                for identity in names.POINT_ATTRIBUTES:  # the resource says which process: not a label
                    attributes.pop(identity, None)
                value = _point_value(point)
                if handler is not None and handler(
                    self, _Point(publisher, dict(attributes), value, point.time_unix_nano, points, now)
                ):
                    continue
                self._generic_point(publisher, name, kind, attributes, value, point.time_unix_nano, points)
        elif kind in ("histogram", "exponential_histogram", "summary"):
            label = "summary" if kind == "summary" else "histogram"
            for point in data.data_points:
                attributes = decode_attributes(point.attributes)
                # A histogram's row is its mean; min/max/buckets do not fit one cell.
                mean = point.sum / point.count if point.count else math.nan
                self._generic_point(publisher, name, label, attributes, mean, point.time_unix_nano, points)

    def _generic_point(
        self,
        publisher: _Publisher,
        name: str,
        kind: str,
        attributes: dict[str, Any],
        value: float,
        time_ns: int,
        points: _Points,
    ) -> None:
        labels = tuple(sorted((k, label_text(v)) for k, v in attributes.items()))
        key = (publisher.instance, name, publisher.topic, labels, kind)
        points.value[key] = (time_ns, value, kind)

    def _series_key(self, publisher: _Publisher, attributes: dict[str, Any]) -> tuple[Any, ...] | None:
        name = attributes.pop("metric", None)
        if name is None:
            return None
        topic = label_text(attributes.pop("topic", publisher.topic))
        labels = tuple(sorted((k, label_text(v)) for k, v in attributes.items()))
        return (publisher.instance, label_text(name), topic, labels, "liveview")

    def _on_metric(self, point: _Point) -> bool:
        key = self._series_key(point.publisher, point.attributes)
        if key is not None:
            point.points.value[key] = (point.time_ns, point.value, "liveview")
        return key is not None

    def _on_step(self, point: _Point) -> bool:
        key = self._series_key(point.publisher, point.attributes)
        if key is not None:
            point.points.step[key] = point.value
        return key is not None

    def _on_epoch(self, point: _Point) -> bool:
        key = self._series_key(point.publisher, point.attributes)
        if key is not None:
            point.points.epoch[key] = point.value
        return key is not None

    def _on_nonfinite(self, point: _Point) -> bool:
        kind = point.attributes.pop("value", None)
        key = self._series_key(point.publisher, point.attributes)
        if key is None or kind is None:
            return False
        # One point per kind (nan, inf, -inf), 1 for the current one: 0s only clear their own kind.
        _, current = point.points.nonfinite.get(key, (point.time_ns, None))
        if point.value == 1:
            current = label_text(kind)
        point.points.nonfinite[key] = (point.time_ns, current)
        return True

    def _fold_points(self, publisher: _Publisher, points: _Points, now: float) -> None:
        for key in {*points.value, *points.step, *points.epoch, *points.nonfinite}:
            instance, name, topic, labels, kind = key
            if key in points.value:
                kind = points.value[key][2]
            row = self._metrics.get(key)
            if row is None:
                row = _Metric(
                    name, labels, topic, instance, publisher.pid, kind, deque(maxlen=self.limits.history)
                )
                row.changed = now
                self._insert(self._metrics, key, row, self.limits.metric_rows, "metric rows")
            else:
                self._metrics.move_to_end(key)
            time_ns, value, _ = points.value.get(key, (0, None, kind))
            if time_ns and time_ns < row.time_ns:
                continue  # an export older than what is shown (retried or out of order)
            row.time_ns = max(row.time_ns, time_ns)
            nonfinite = row.nonfinite
            if key in points.nonfinite:
                nonfinite = points.nonfinite[key][1]
            if value is not None and not math.isfinite(value):  # another SDK's NaN gauge
                nonfinite, value = _nonfinite_label(value), None
            elif value is not None and key not in points.nonfinite:
                nonfinite = None
            row.nonfinite = nonfinite
            if value is not None:
                row.value = value
            if key in points.step:
                row.step = points.step[key]
            if key in points.epoch:
                row.epoch = points.epoch[key]
            sample = (row.nonfinite or row.value, row.step)
            if sample != row.last_sample and (row.value is not None or row.nonfinite):
                row.last_sample = sample
                row.history.append(math.nan if row.nonfinite else float(row.value or 0.0))
                row.changed = now

    # -- data streams, experiment status, self-telemetry -------------------------------------------------

    def _stream(self, topic: str, stream: str, now: float) -> _Stream:
        key = (topic, stream)
        row = self._streams.get(key)
        if row is None:
            row = _Stream(topic, stream)
            self._insert(self._streams, key, row, self.limits.streams, "streams")
        else:
            self._streams.move_to_end(key)
        row.changed = now
        return row

    def _stream_value(self, row: _Stream, key: str, time_ns: int, value: Any, from_event: bool) -> None:
        previous = row.values.get(key)
        # Events carry publish times, the gauge its export time: only compare times of one source,
        # and let an event replace what the gauge said.
        if previous is not None and previous[2] == from_event and time_ns < previous[0]:
            return
        if previous is None and len(row.values) >= self.limits.stream_keys:
            self._cut["stream keys"] += 1  # the library's gauge has only a stream's first keys too
            return
        row.values[key] = (time_ns, value, from_event)

    def _on_data(self, point: _Point) -> bool:
        attrs, value = point.attributes, point.value
        stream, key = attrs.get("stream"), attrs.get("key")
        if stream is None or key is None:
            return False
        topic = label_text(attrs.get("topic", point.publisher.topic))
        stream, key = label_text(stream), label_text(key)
        seen_key = (point.publisher.instance, key)
        existing = self._streams.get((topic, stream))
        if existing is not None and existing.events:
            return True  # its events say the same with every key and the publish time
        # Every export repeats every value: only a change is news (else an idle process's old value
        # would keep overwriting a busier one's).
        if existing is not None and existing.gauge_seen.get(seen_key) == value:
            return True
        row = self._stream(topic, stream, point.now)
        if len(row.gauge_seen) >= 16 * self.limits.stream_keys:
            row.gauge_seen.clear()
        row.gauge_seen[seen_key] = value
        self._stream_value(row, key, point.time_ns, value, False)
        return True

    def _on_status(self, point: _Point) -> bool:
        attrs, publisher = point.attributes, point.publisher
        experiment, status = attrs.get("experiment"), attrs.get("status")
        if experiment is None or status is None:
            return False
        if point.value == 1:  # the other states are reported as 0
            topic = label_text(attrs.get("topic", publisher.topic))
            self._set_status(
                publisher,
                topic,
                label_text(experiment),
                label_text(status),
                None,
                point.time_ns,
                point.now,
                False,
            )
        return True

    def _set_status(
        self,
        publisher: _Publisher,
        topic: str,
        experiment: str,
        status: str,
        error: str | None,
        time_ns: int,
        now: float,
        from_event: bool,
    ) -> None:
        key = (topic, experiment)
        row = self._experiments.get(key)
        if row is None:
            row = _Experiment(topic, experiment, status, error, publisher.pid, time_ns, now)
            self._insert(self._experiments, key, row, self.limits.experiments, "experiments")
        else:
            self._experiments.move_to_end(key)
        # Each process's own report: the run's status is folded from them (_Experiment.current).
        mine = row.statuses.get(publisher.instance)
        if mine is None:
            row.statuses[publisher.instance] = _Status(status, error, time_ns, publisher.run)
        elif time_ns < mine.time_ns:
            if from_event and status == mine.status:
                mine.error = error  # the gauge got here first, but only the event has the error text
        else:
            if from_event or status != mine.status:
                mine.error = error  # the gauge carries no error text: keep the event's while it holds
            mine.status, mine.time_ns = status, time_ns
        if time_ns >= row.time_ns:
            row.pid, row.time_ns, row.seen = publisher.pid, time_ns, now
        row.status, row.error, _ = row.current()

    def _experiment(self, point: _Point) -> _Experiment | None:
        """The row of the experiment a liveview.experiment.* point names (made if it is new)."""
        attrs, publisher = point.attributes, point.publisher
        experiment = attrs.get("experiment")
        if experiment is None:
            return None
        topic, name = label_text(attrs.get("topic", publisher.topic)), label_text(experiment)
        if (topic, name) not in self._experiments:
            self._set_status(publisher, topic, name, "unknown", None, 0, point.now, False)
        return self._experiments.get((topic, name))

    def _on_info(self, point: _Point) -> bool:
        row = self._experiment(point)
        if row is None:
            return False
        skip = ("experiment", "topic")
        row.info = {key: label_text(value) for key, value in point.attributes.items() if key not in skip}
        return True

    def _on_start_time(self, point: _Point) -> bool:
        row = self._experiment(point)
        if row is not None and point.value > 0:
            row.started = point.value
        return row is not None

    def _on_end_time(self, point: _Point) -> bool:
        row = self._experiment(point)
        if row is not None and point.value > 0:
            row.ended = point.value
        return row is not None

    def _on_planned(self, point: _Point) -> bool:
        row = self._experiment(point)
        phase, unit = point.attributes.get("phase"), point.attributes.get("unit")
        if row is None or phase is None or unit is None:
            return False
        row.totals[(label_text(phase), label_text(unit))] = point.value
        return True

    def _on_published(self, point: _Point) -> bool:
        kind = point.attributes.get("kind")
        if kind is None:
            return False
        point.publisher.published[label_text(kind)] = point.value
        return True

    def _on_dropped(self, point: _Point) -> bool:
        kind, reason = point.attributes.get("kind"), point.attributes.get("reason")
        if kind is None or reason is None:
            return False
        point.publisher.dropped[(label_text(kind), label_text(reason))] = point.value
        return True

    # -- log records ------------------------------------------------------------------------------------

    def _fold_record(self, publisher: _Publisher, record: LogRecord, now: float) -> None:
        attributes = decode_attributes(record.attributes)
        name = record.event_name or label_text(
            attributes.get("event_name") or attributes.get("event.name") or ""
        )
        time_ns = record.time_unix_nano or record.observed_time_unix_nano or self._wall_ns()
        if name == names.DATA_EVENT:
            self._totals["data events"] += 1
            body = decode_any(record.body)
            stream = attributes.get("stream")
            if stream is None:
                return
            row = self._stream(label_text(attributes.get("topic", publisher.topic)), label_text(stream), now)
            row.events += 1
            for key, value in _flatten(body if isinstance(body, dict) else {"value": body}):
                shown = value if isinstance(value, (int, float)) else _short(value)
                self._stream_value(row, key, time_ns, shown, True)
            return
        if name == names.STATUS_EVENT:
            self._totals["status events"] += 1
            body = decode_any(record.body)
            fields = body if isinstance(body, dict) else attributes
            experiment, status = fields.get("experiment"), fields.get("status")
            if experiment is not None and status is not None:
                error = fields.get("error")
                topic = label_text(attributes.get("topic", publisher.topic))
                self._set_status(
                    publisher,
                    topic,
                    label_text(experiment),
                    label_text(status),
                    None if error is None else _short(error),
                    time_ns,
                    now,
                    True,
                )
            return
        if name in (names.METRIC_EVENT, names.INFO_EVENT):
            # The gauges carry the same values; counted so the header shows they arrived.
            self._totals["metric events" if name == names.METRIC_EVENT else "info events"] += 1
            return
        self._totals["log records" if not name else "other events"] += 1
        body = decode_any(record.body)
        text = body if isinstance(body, str) else ("" if body is None else _short(body))
        if name:  # an event of another SDK: a log line that says what it is
            text = f"[{name}] {text}"
        extra = tuple(
            (k, _short(v)) for k, v in attributes.items() if k not in ("event_name", "event.name", "topic")
        )
        line = LogLine(
            time_ns,
            record.severity_number,
            severity_name(record.severity_number, record.severity_text),
            _short(text),
            publisher.service,
            publisher.pid,
            extra[:8],
        )
        self._arrivals += 1
        bisect.insort(self._logs, (time_ns, self._arrivals, line), key=lambda entry: entry[:2])
        if len(self._logs) > self.limits.logs:
            del self._logs[: len(self._logs) - self.limits.logs]
        if record.severity_number >= ERROR_SEVERITY:  # kept longer than the last 20 lines
            self._errors.append(line)


_Handler = Callable[[Board, _Point], bool]

# A handler returns False when the point lacks the labels the library gives it: then it is someone
# else's instrument of the same name, shown as a plain row.
_LIBRARY_METRICS: dict[str, _Handler] = {
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
    # The launch's numbers: the resource of the same export says them too.
    names.LAUNCH_WORLD_SIZE: lambda board, point: True,
    names.LAUNCH_RESTARTS: lambda board, point: True,
    names.LAUNCH_RESTARTS_UP_TO_0_1: lambda board, point: True,  # its name up to release 0.1.0
    names.LAUNCH_STEP: lambda board, point: True,  # the ranks' steps come from their metrics
    names.PUBLISHED: Board._on_published,
    names.DROPPED: Board._on_dropped,
}
