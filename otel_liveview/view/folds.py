"""The state behind each panel of the terminal view, folded from what arrives, one class per panel.

Each keeps its rows in a `Capped` table (the least recently updated row goes first, and what was cut
is counted) and gives the board immutable rows (`otel_liveview.view.rows`). Nothing here locks: the
board calls them under its lock.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from otel_liveview import names
from otel_liveview._internal.mapping import nonfinite_label
from otel_liveview.view.decoding import as_int, label_text
from otel_liveview.view.rows import (
    ExperimentRow,
    Labels,
    Limits,
    LogLine,
    MetricRow,
    PublisherRow,
    RankRow,
    StreamRow,
)

ERROR_SEVERITY = 17  # OTLP SeverityNumber ERROR; FATAL is 21-24
# A run's status folded from its processes': the first of these any of them has.
_PRECEDENCE = {"failed": 0, "aborted": 1, "running": 2, "initializing": 3, "completed": 4}

K = TypeVar("K")
R = TypeVar("R")


class Capped(Generic[K, R]):
    """Rows by key, at most `cap`: adding one beyond evicts the least recently updated (`cut[name]`)."""

    def __init__(self, cap: int, name: str, cut: Counter[str]) -> None:
        self.rows: OrderedDict[K, R] = OrderedDict()
        self._cap, self._name, self._cut = cap, name, cut

    def get(self, key: K) -> R | None:
        return self.rows.get(key)

    def add(self, key: K, row: R) -> R:
        self.rows[key] = row
        while len(self.rows) > self._cap:
            self.rows.popitem(last=False)
            self._cut[self._name] += 1
        return row

    def touch(self, key: K) -> None:
        """`key` was just updated: the last to go."""
        self.rows.move_to_end(key)

    def __contains__(self, key: object) -> bool:
        return key in self.rows

    def values(self) -> list[R]:
        return list(self.rows.values())


# -- publishers -------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Publisher:
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


class Publishers:
    """The processes that exported, from their resources, with their own counts of what they published."""

    def __init__(self, limits: Limits, cut: Counter[str]) -> None:
        self.table: Capped[str, Publisher] = Capped(limits.publishers, "publishers", cut)

    def seen(self, resource: dict[str, Any], now: float) -> Publisher:
        service = label_text(resource.get("service.name", "unknown_service"))
        pid = as_int(resource.get("process.pid"))
        host = label_text(resource.get("host.name", ""))
        # Other SDKs may not set service.instance.id: service, host and pid tell processes apart.
        instance = label_text(resource.get("service.instance.id") or f"{service}@{host}:{pid}")
        publisher = self.table.get(instance)
        if publisher is not None:
            publisher.seen = now
            self.table.touch(instance)
            return publisher
        publisher = Publisher(
            instance=instance,
            service=service,
            pid=pid,
            host=host,
            topic=label_text(resource.get(names.TOPIC, "")),
            sdk=label_text(resource.get("telemetry.sdk.language", "")),
            seen=now,
        )
        if resource.get(names.RUN_ID) is not None:
            publisher.run = label_text(resource[names.RUN_ID])
            publisher.rank = label_text(resource.get(names.RANK, "")) or None
            publisher.node = label_text(resource.get(names.NODE, host))
            publisher.world_size = as_int(resource.get(names.WORLD_SIZE))
        return self.table.add(instance, publisher)

    @staticmethod
    def on_published(publisher: Publisher, attributes: dict[str, Any], value: float) -> bool:
        kind = attributes.get("kind")
        if kind is None:
            return False
        publisher.published[label_text(kind)] = value
        return True

    @staticmethod
    def on_dropped(publisher: Publisher, attributes: dict[str, Any], value: float) -> bool:
        kind, reason = attributes.get("kind"), attributes.get("reason")
        if kind is None or reason is None:
            return False
        publisher.dropped[(label_text(kind), label_text(reason))] = value
        return True

    def rows(self, now: float, alive_seconds: float) -> list[PublisherRow]:
        rows = [
            PublisherRow(
                instance=p.instance,
                service=p.service,
                pid=p.pid,
                host=p.host,
                topic=p.topic,
                sdk=p.sdk,
                alive=now - p.seen <= alive_seconds,
                age=now - p.seen,
                published=tuple(sorted(p.published.items())),
                dropped=tuple(sorted((k, r, v) for (k, r), v in p.dropped.items())),
                rank=f"rank {p.rank} on {p.node}" if p.rank is not None else "",
            )
            for p in self.table.values()
        ]
        return sorted(rows, key=lambda r: (r.service, _rank_order(r.rank), r.pid or 0, r.instance))


def _rank_order(name: str) -> tuple[int, str]:
    """ "rank 10 on n" after "rank 9 on n"; unlaunched processes first."""
    words = name.split()
    return (int(words[1]), name) if len(words) > 1 and words[1].isdigit() else (-1, name)


# -- metrics ----------------------------------------------------------------------------------------------

# A series: (publisher instance, metric name, topic, labels, kind)
SeriesKey = tuple[str, str, str, Labels, str]


@dataclass
class Points:
    """The points of one resource's export, by series, so that value, step and epoch fold together."""

    value: dict[SeriesKey, tuple[int, float, str]] = field(default_factory=dict)
    step: dict[SeriesKey, float] = field(default_factory=dict)
    epoch: dict[SeriesKey, float] = field(default_factory=dict)
    nonfinite: dict[SeriesKey, tuple[int, str | None]] = field(default_factory=dict)


@dataclass(kw_only=True)
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


class Metrics:
    """One row per series: the library's liveview.metric* instruments folded into one row with its
    step and epoch, any other gauge or sum under its own name, a histogram as its mean."""

    def __init__(self, limits: Limits, cut: Counter[str]) -> None:
        self.table: Capped[SeriesKey, _Metric] = Capped(limits.metric_rows, "metric rows", cut)
        self._history = limits.history

    @staticmethod
    def series(publisher: Publisher, attributes: dict[str, Any]) -> SeriesKey | None:
        """The series of a library point (its `metric` and `topic` labels taken out), or None."""
        name = attributes.pop("metric", None)
        if name is None:
            return None
        topic = label_text(attributes.pop("topic", publisher.topic))
        labels = tuple(sorted((k, label_text(v)) for k, v in attributes.items()))
        return (publisher.instance, label_text(name), topic, labels, "liveview")

    @staticmethod
    def other(publisher: Publisher, name: str, kind: str, attributes: dict[str, Any]) -> SeriesKey:
        """The series of another instrument's point."""
        labels = tuple(sorted((k, label_text(v)) for k, v in attributes.items()))
        return (publisher.instance, name, publisher.topic, labels, kind)

    def fold(self, publisher: Publisher, points: Points, now: float) -> None:
        """One export's points of a publisher, series by series."""
        for key in {*points.value, *points.step, *points.epoch, *points.nonfinite}:
            instance, name, topic, labels, kind = key
            if key in points.value:
                kind = points.value[key][2]
            row = self.table.get(key)
            if row is None:
                row = _Metric(
                    name=name,
                    labels=labels,
                    topic=topic,
                    instance=instance,
                    pid=publisher.pid,
                    kind=kind,
                    history=deque(maxlen=self._history),
                )
                row.changed = now
                self.table.add(key, row)
            else:
                self.table.touch(key)
            time_ns, value, _ = points.value.get(key, (0, None, kind))
            if time_ns and time_ns < row.time_ns:
                continue  # an export older than what is shown (retried or out of order)
            row.time_ns = max(row.time_ns, time_ns)
            self._fold_value(row, key, points, value)
            if key in points.step:
                row.step = points.step[key]
            if key in points.epoch:
                row.epoch = points.epoch[key]
            sample = (row.nonfinite or row.value, row.step)
            if sample != row.last_sample and (row.value is not None or row.nonfinite):
                row.last_sample = sample
                row.history.append(math.nan if row.nonfinite else float(row.value or 0.0))
                row.changed = now

    @staticmethod
    def _fold_value(row: _Metric, key: SeriesKey, points: Points, value: float | None) -> None:
        nonfinite = points.nonfinite[key][1] if key in points.nonfinite else row.nonfinite
        if value is not None and not math.isfinite(value):  # another SDK's NaN gauge
            nonfinite, value = nonfinite_label(value), None
        elif value is not None and key not in points.nonfinite:
            nonfinite = None
        row.nonfinite = nonfinite
        if value is not None:
            row.value = value

    def furthest_steps(self, topic: str) -> dict[str, float]:
        """Each publisher's furthest step on `topic`, by instance."""
        steps: dict[str, float] = {}
        for m in self.table.values():
            if m.topic == topic and m.step is not None:
                steps[m.instance] = max(m.step, steps.get(m.instance, m.step))
        return steps

    def reached(self, topic: str, phase: str, unit: str) -> float | None:
        """How far `phase` got: the highest step (or epoch) of the topic's metrics in that phase."""
        reached = [
            m.step if unit == "steps" else m.epoch
            for m in self.table.values()
            if m.topic == topic and ("phase", phase) in m.labels
        ]
        known = [value for value in reached if value is not None]
        return max(known) if known else None

    def rows(self, now: float) -> list[MetricRow]:
        rows = [
            MetricRow(
                name=m.name,
                labels=m.labels,
                topic=m.topic,
                instance=m.instance,
                pid=m.pid,
                kind=m.kind,
                value=m.value,
                nonfinite=m.nonfinite,
                step=m.step,
                epoch=m.epoch,
                history=tuple(m.history),
                age=now - m.changed,
            )
            for m in self.table.values()
        ]
        return sorted(rows, key=lambda r: (r.topic, r.name, r.labels, r.pid or 0, r.instance))


# -- data streams -----------------------------------------------------------------------------------------


@dataclass
class _Stream:
    topic: str
    stream: str
    # key -> (time, value, from an event)
    values: dict[str, tuple[int, Any, bool]] = field(default_factory=dict)
    gauge_seen: dict[tuple[str, str], float] = field(default_factory=dict)  # (instance, key) -> value
    events: int = 0
    changed: float = 0.0


class Streams:
    """One row per data stream: its keys' latest values, from liveview.data events (every key, the
    publish time) or, for a publisher without events, the liveview.data gauge."""

    def __init__(self, limits: Limits, cut: Counter[str]) -> None:
        self.table: Capped[tuple[str, str], _Stream] = Capped(limits.streams, "streams", cut)
        self._keys = limits.stream_keys
        self._cut = cut

    def _row(self, topic: str, stream: str, now: float) -> _Stream:
        key = (topic, stream)
        row = self.table.get(key)
        if row is None:
            row = self.table.add(key, _Stream(topic, stream))
        else:
            self.table.touch(key)
        row.changed = now
        return row

    def _set(self, row: _Stream, key: str, time_ns: int, value: Any, *, from_event: bool) -> None:
        previous = row.values.get(key)
        # Events carry publish times, the gauge its export time: only compare times of one source,
        # and let an event replace what the gauge said.
        if previous is not None and previous[2] == from_event and time_ns < previous[0]:
            return
        if previous is None and len(row.values) >= self._keys:
            self._cut["stream keys"] += 1  # the library's gauge has only a stream's first keys too
            return
        row.values[key] = (time_ns, value, from_event)

    def on_event(
        self, topic: str, stream: str, values: list[tuple[str, Any]], time_ns: int, now: float
    ) -> None:
        row = self._row(topic, stream, now)
        row.events += 1
        for key, value in values:
            self._set(row, key, time_ns, value, from_event=True)

    def on_gauge(
        self, publisher: Publisher, attributes: dict[str, Any], value: float, time_ns: int, now: float
    ) -> bool:
        stream, key = attributes.get("stream"), attributes.get("key")
        if stream is None or key is None:
            return False
        topic = label_text(attributes.get("topic", publisher.topic))
        stream, key = label_text(stream), label_text(key)
        seen_key = (publisher.instance, key)
        existing = self.table.get((topic, stream))
        if existing is not None and existing.events:
            return True  # its events say the same with every key and the publish time
        # Every export repeats every value: only a change is news (else an idle process's old value
        # would keep overwriting a busier one's).
        if existing is not None and existing.gauge_seen.get(seen_key) == value:
            return True
        row = self._row(topic, stream, now)
        if len(row.gauge_seen) >= 16 * self._keys:
            row.gauge_seen.clear()
        row.gauge_seen[seen_key] = value
        self._set(row, key, time_ns, value, from_event=False)
        return True

    def rows(self, now: float) -> list[StreamRow]:
        rows = [
            StreamRow(
                s.topic,
                s.stream,
                tuple(sorted((k, v) for k, (_, v, _) in s.values.items())),
                s.events,
                now - s.changed,
            )
            for s in self.table.values()
        ]
        return sorted(rows, key=lambda r: (r.topic, r.stream))


# -- experiments ------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class _Status:
    status: str
    error: str | None
    time_ns: int
    run: str | None


@dataclass(kw_only=True)
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


class Experiments:
    """One row per experiment (topic and name): its status folded across its processes, its
    configuration, start and end, planned steps, and the ranks of its run."""

    def __init__(self, limits: Limits, cut: Counter[str]) -> None:
        self.table: Capped[tuple[str, str], _Experiment] = Capped(limits.experiments, "experiments", cut)

    def set_status(
        self,
        publisher: Publisher,
        topic: str,
        experiment: str,
        status: str,
        *,
        error: str | None,
        time_ns: int,
        now: float,
        from_event: bool,
    ) -> None:
        key = (topic, experiment)
        row = self.table.get(key)
        if row is None:
            row = self.table.add(
                key,
                _Experiment(
                    topic=topic,
                    experiment=experiment,
                    status=status,
                    error=error,
                    pid=publisher.pid,
                    time_ns=time_ns,
                    seen=now,
                ),
            )
        else:
            self.table.touch(key)
        # Each process's own report: the run's status is folded from them (_Experiment.current).
        mine = row.statuses.get(publisher.instance)
        if mine is None:
            row.statuses[publisher.instance] = _Status(
                status=status, error=error, time_ns=time_ns, run=publisher.run
            )
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

    def on_status(
        self, publisher: Publisher, attributes: dict[str, Any], value: float, time_ns: int, now: float
    ) -> bool:
        experiment, status = attributes.get("experiment"), attributes.get("status")
        if experiment is None or status is None:
            return False
        if value == 1:  # the other states are reported as 0
            topic = label_text(attributes.get("topic", publisher.topic))
            self.set_status(
                publisher,
                topic,
                label_text(experiment),
                label_text(status),
                error=None,
                time_ns=time_ns,
                now=now,
                from_event=False,
            )
        return True

    def named(self, publisher: Publisher, attributes: dict[str, Any], now: float) -> _Experiment | None:
        """The row of the experiment a liveview.experiment.* point names (made if it is new)."""
        experiment = attributes.get("experiment")
        if experiment is None:
            return None
        topic, name = label_text(attributes.get("topic", publisher.topic)), label_text(experiment)
        if (topic, name) not in self.table:
            self.set_status(
                publisher, topic, name, "unknown", error=None, time_ns=0, now=now, from_event=False
            )
        return self.table.get((topic, name))

    def rows(
        self, now: float, wall: float, metrics: Metrics, publishers: Publishers, alive_since: float
    ) -> list[ExperimentRow]:
        rows = [self._row(e, now, wall, metrics, publishers, alive_since) for e in self.table.values()]
        return sorted(rows, key=lambda r: (r.topic, r.experiment))

    def _row(
        self,
        e: _Experiment,
        now: float,
        wall: float,
        metrics: Metrics,
        publishers: Publishers,
        alive_since: float,
    ) -> ExperimentRow:
        ranks, world_size = self._ranks(e, metrics, publishers, alive_since)
        return ExperimentRow(
            topic=e.topic,
            experiment=e.experiment,
            status=e.status,
            error=e.error,
            pid=e.pid,
            age=now - e.seen,
            elapsed=None if e.started is None else (e.ended or wall) - e.started,
            info=tuple(sorted(e.info.items())),
            progress=tuple(
                (phase, unit, metrics.reached(e.topic, phase, unit), total)
                for (phase, unit), total in sorted(e.totals.items())
            ),
            ranks=ranks,
            world_size=world_size,
        )

    @staticmethod
    def _ranks(
        experiment: _Experiment, metrics: Metrics, publishers: Publishers, alive_since: float
    ) -> tuple[tuple[RankRow, ...], int | None]:
        """The processes of the experiment's current run, by rank, and the run's world size."""
        _, _, run = experiment.current()
        if run is None:
            return (), None
        members = [p for p in publishers.table.values() if p.run == run]
        steps = metrics.furthest_steps(experiment.topic)
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
        rows.sort(key=lambda r: (as_int(r.rank) is None, as_int(r.rank) or 0, r.rank))
        world = max((p.world_size for p in members if p.world_size is not None), default=None)
        return tuple(rows), world


# -- logs -------------------------------------------------------------------------------------------------


class Logs:
    """The latest log lines in time order (an export may arrive late), and the latest errors."""

    def __init__(self, limits: Limits) -> None:
        self._lines: list[tuple[int, int, LogLine]] = []  # (time, arrival, line), sorted
        self._arrivals = 0
        self._limit = limits.logs
        self.errors: deque[LogLine] = deque(maxlen=10)

    def add(self, line: LogLine) -> None:
        self._arrivals += 1
        bisect.insort(self._lines, (line.time_unix_nano, self._arrivals, line), key=lambda entry: entry[:2])
        if len(self._lines) > self._limit:
            del self._lines[: len(self._lines) - self._limit]
        if line.severity_number >= ERROR_SEVERITY:  # kept longer than the last lines
            self.errors.append(line)

    def rows(self) -> tuple[LogLine, ...]:
        return tuple(line for _, _, line in self._lines)


__all__ = [
    "Capped",
    "Experiments",
    "Logs",
    "Metrics",
    "Points",
    "Publisher",
    "Publishers",
    "SeriesKey",
    "Streams",
]
