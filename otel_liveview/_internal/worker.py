"""The export thread: it drains the queues, builds records, and ships them in batches.

Callers put small tuples on bounded `RecordQueue`s; one `ExportWorker` thread per process takes
them off, `LogShipper` turns them into OTLP records in place (or, when the application installed
its own LoggerProvider, hands them to its logger) and ships each batch to the sinks. The thread waits
for the network, so back-pressure lands on the queue (where drops are counted), never on the caller.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from otel_liveview._internal import events
from otel_liveview._internal.bounded import acquire, within
from otel_liveview._internal.encoding import LogBatch
from otel_liveview._internal.queue import RecordQueue
from otel_liveview._internal.records import Item, Kind, MetricUpdate, QueuedItem, Record
from otel_liveview._internal.sinks import LogSink
from otel_liveview._internal.tables import Tables

_log = logging.getLogger("otel_liveview")


class LogShipper:
    """Turns queued items into records in `LogBatch`es of at most `batch_size` records (`emit`), and
    ships them to every sink (`ship`). Used only from the export worker, under its lock."""

    def __init__(
        self,
        *,
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

    def emit(self, items: Sequence[Item]) -> None:
        self._observed = time.time_ns()
        events.emit_all(items, self._tables, self._add)

    def _add(self, kind: Kind, calls: int, record: Record) -> None:
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
        *,
        queue: RecordQueue[QueuedItem],
        updates: RecordQueue[MetricUpdate],
        emit: Callable[[Sequence[Item]], None],
        after_batch: Callable[[float | None], bool] | None,
        tables: Tables,
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
            if not acquire(self._drain_lock, deadline):  # stuck behind a slow export
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
        if not acquire(self._drain_lock, deadline):
            return False
        try:
            return self._ship(self._updates.take(len(self._updates)), deadline)
        finally:
            self._drain_lock.release()

    def _ship(self, items: Sequence[Item], deadline: float | None) -> bool:
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
        finished = within(time.monotonic() + timeout, self.flush)
        return finished and not len(self._queue) and not len(self._updates)
