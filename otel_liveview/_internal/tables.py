"""Process-wide last-value tables and self-telemetry counters.

A gauge keeps only the last value per attribute set per export interval, so publishing a metric is a
dict write here; observable-gauge callbacks report the tables when the SDK collects. Keys are tuples
of sorted (attribute, value) pairs, so a key is also its attribute set.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Iterable, Iterator

from otel_liveview import names

Key = tuple[tuple[str, str], ...]

_log = logging.getLogger("otel_liveview")


class GaugeTable:
    """Last value per attribute set, capped at `limit` distinct sets."""

    __slots__ = ("limit", "values")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.values: dict[Key, float] = {}

    def set(self, key: Key, value: float) -> bool:
        """Store `value`; False when `key` is new and the table is full."""
        values = self.values
        if key in values or len(values) < self.limit:
            values[key] = value
            return True
        return False

    def set_many(self, items: Iterable[tuple[Key, float]]) -> int:
        """`set` each (key, value); how many were refused because the table was full."""
        values, limit, refused = self.values, self.limit, 0
        for key, value in items:
            if key in values or len(values) < limit:
                values[key] = value
            else:
                refused += 1
        return refused

    def items(self) -> list[tuple[Key, float]]:
        return list(self.values.copy().items())  # copy() is atomic; writers may run meanwhile

    def clear(self) -> None:
        self.values.clear()


class Tally:
    """A monotonic count that callers on any thread bump without a lock.

    `next()` on an itertools.count is atomic, so single increments need no lock; bulk additions
    (from the export thread, rarely) take one.
    """

    __slots__ = ("_bulk", "_lock", "_ones")

    def __init__(self) -> None:
        self._ones = itertools.count()
        self._bulk = 0
        self._lock = threading.Lock()

    def add(self, amount: int = 1) -> None:
        if amount == 1:
            next(self._ones)
        else:
            with self._lock:
                self._bulk += amount

    def reset(self) -> None:
        self._ones = itertools.count()
        self._bulk = 0
        self._lock = threading.Lock()

    @property
    def value(self) -> int:
        # count's repr is "count(N)", N being the next number it would hand out.
        return int(repr(self._ones)[6:-1]) + self._bulk


class TallyFamily:
    """Tallies by attribute key, created on first use (under a lock; the dict read is lock-free)."""

    __slots__ = ("_counters", "_lock")

    def __init__(self) -> None:
        self._counters: dict[Key, Tally] = {}
        self._lock = threading.Lock()

    def get(self, key: Key) -> Tally:
        counter = self._counters.get(key)
        if counter is None:
            with self._lock:
                counter = self._counters.setdefault(key, Tally())
        return counter

    def items(self) -> Iterator[tuple[Key, int]]:
        for key, counter in list(self._counters.items()):
            yield key, counter.value

    def reset(self) -> None:
        """Zero every counter in place: callers may hold references to them."""
        self._lock = threading.Lock()
        for counter in self._counters.values():
            counter.reset()


class FurthestStep:
    """Gauge liveview.launch.step, computed when read: per topic, the furthest step of this process's
    metrics. It is a rank's step whatever metric carries it, one series per rank: the rank-aware
    queries read a run's ranks from it instead of every metric of every rank. Only for a launched
    process (`enabled`)."""

    __slots__ = ("_steps", "enabled")

    def __init__(self, steps: GaugeTable) -> None:
        self._steps = steps
        self.enabled = False

    def items(self) -> list[tuple[Key, float]]:
        if not self.enabled:
            return []
        furthest: dict[str, float] = {}
        for key, step in self._steps.items():
            topic = next((value for name, value in key if name == "topic"), "")
            if step > furthest.get(topic, -math.inf):  # never NaN: a comparison with NaN is False
                furthest[topic] = step
        return [((("topic", topic),), step) for topic, step in furthest.items()]

    def clear(self) -> None:
        self.enabled = False


GAUGE_DESCRIPTIONS = {
    names.METRIC: "Latest value of each published metric",
    names.METRIC_STEP: "Step of each metric's latest value",
    names.METRIC_EPOCH: "Epoch of each metric's latest value",
    names.METRIC_NONFINITE: "1 while a metric's latest value is NaN or infinite (by value), else 0",
    names.DATA: "Latest value of each numeric key of a data stream",
    names.EXPERIMENT_STATUS: "1 for an experiment's current status, 0 for the others",
    names.EXPERIMENT_INFO: "Always 1; an experiment's information in its labels",
    names.EXPERIMENT_START_TIME: "When an experiment started running, in seconds since the epoch",
    names.EXPERIMENT_END_TIME: "When an experiment ended, in seconds since the epoch",
    names.EXPERIMENT_PLANNED: "Planned number of steps or epochs (by unit) of an experiment's phase",
    names.LAUNCH_WORLD_SIZE: "Number of processes in this process's launch",
    names.LAUNCH_RESTARTS: "Times this process's launch was restarted",
    names.LAUNCH_STEP: "Furthest step of any metric of this process on a topic",
}


class Tables:
    """Every table and counter of this process; emptied in a forked child."""

    def __init__(self, max_series: int = 2_000, max_stream_keys: int = 64) -> None:
        self.max_stream_keys = max_stream_keys
        self.stream_keys: dict[tuple[str, str], dict[str, Key]] = {}  # (topic, stream) -> key -> series
        self.metric = GaugeTable(max_series)
        self.step = GaugeTable(max_series)
        self.epoch = GaugeTable(max_series)
        self.nonfinite = GaugeTable(max_series)
        self.data = GaugeTable(max_series)
        self.status = GaugeTable(max_series)
        self.info = GaugeTable(max_series)
        self.start_time = GaugeTable(max_series)
        self.end_time = GaugeTable(max_series)
        self.planned = GaugeTable(max_series)
        # This process's launch (otel_liveview._internal.launch), when known: one point each, never more.
        self.world_size = GaugeTable(1)
        self.restart_count = GaugeTable(1)
        self.launch_step = FurthestStep(self.step)
        self.nonfinite_seen: set[Key] = set()  # metric keys that were ever non-finite
        self.published = TallyFamily()
        self.dropped = TallyFamily()
        self._warned: set[Key] = set()

    def gauges(self) -> dict[str, GaugeTable | FurthestStep]:
        """OpenTelemetry instrument name -> table (anything with `items()` and `clear()`)."""
        return {
            **self.series_gauges(),
            names.LAUNCH_WORLD_SIZE: self.world_size,
            names.LAUNCH_RESTARTS: self.restart_count,
            names.LAUNCH_STEP: self.launch_step,
        }

    def series_gauges(self) -> dict[str, GaugeTable]:
        """The gauges of what is published, each capped at OTEL_LIVEVIEW_MAX_SERIES."""
        return {
            names.METRIC: self.metric,
            names.METRIC_STEP: self.step,
            names.METRIC_EPOCH: self.epoch,
            names.METRIC_NONFINITE: self.nonfinite,
            names.DATA: self.data,
            names.EXPERIMENT_STATUS: self.status,
            names.EXPERIMENT_INFO: self.info,
            names.EXPERIMENT_START_TIME: self.start_time,
            names.EXPERIMENT_END_TIME: self.end_time,
            names.EXPERIMENT_PLANNED: self.planned,
        }

    @staticmethod
    def description(name: str) -> str:
        """The one-line description of a gauge (OTLP's `description`, Prometheus' HELP)."""
        return GAUGE_DESCRIPTIONS[name]

    def counters(self) -> dict[str, tuple[str, TallyFamily]]:
        """OpenTelemetry instrument name -> (description, counts): monotonic, cumulative."""
        return {
            names.PUBLISHED: ("Telemetry items accepted for export, by kind", self.published),
            names.DROPPED: ("Telemetry items dropped before export, by kind and reason", self.dropped),
        }

    def resize(self, max_series: int, max_stream_keys: int) -> None:
        for table in self.series_gauges().values():
            table.limit = max_series
        self.max_stream_keys = max_stream_keys

    def stream_series(self, topic: str, stream: str, key: str) -> Key | None:
        """The liveview.data series of a stream's numeric `key`, or None beyond the stream's first
        max_stream_keys keys."""
        keys = self.stream_keys.get((topic, stream))
        if keys is None:
            keys = self.stream_keys.setdefault((topic, stream), {})
        series = keys.get(key)
        if series is None and len(keys) < self.max_stream_keys:
            series = keys[key] = (("key", key), ("stream", stream), ("topic", topic))
        return series

    def published_counter(self, kind: str) -> Tally:
        return self.published.get((("kind", kind),))

    def count_dropped(self, kind: str, reason: str, amount: int = 1) -> None:
        key = (("kind", kind), ("reason", reason))
        self.dropped.get(key).add(amount)
        # Say it once per kind and reason (an export failure has its own outage line); the counter
        # tells the rest.
        if key not in self._warned and reason != "export_failed":
            self._warned.add(key)
            _log.warning("otel-liveview dropped %s telemetry (%s); see liveview_dropped_total", kind, reason)

    def clear(self) -> None:
        for table in self.gauges().values():
            table.clear()
        self.published.reset()
        self.dropped.reset()
        self.nonfinite_seen.clear()
        self.stream_keys.clear()
        self._warned.clear()


TABLES = Tables()
