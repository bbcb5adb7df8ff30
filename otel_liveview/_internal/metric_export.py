"""The library's own metric export: the tables' current values to every metric sink, every interval."""

from __future__ import annotations

import logging
import operator
import os
import threading
import time
from collections.abc import Sequence
from math import isfinite

from otel_liveview._internal.bounded import acquire
from otel_liveview._internal.encoding import MetricPoints
from otel_liveview._internal.sinks import MetricSink
from otel_liveview._internal.tables import Key, Tables

_log = logging.getLogger("otel_liveview")


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
        if not acquire(self._lock, deadline):
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
