"""The spool in the export path: with a spool, everything goes through it.

The export threads write each batch of events and logs, and each metric export, to the spool
(`Spooler.deliver`: a `write()` into the page cache, no network); a sending thread of its own sends
the spool oldest first, consecutive records merged into one request, and acknowledges what the
collector took. So a process killed at any moment loses only what it had not yet written, whatever
the network does, and a slow or absent collector never holds the export thread. While the endpoint
is down the sending thread tries the oldest record again after a growing pause (1 s to 10 s).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from otel_liveview._internal.bounded import acquire
from otel_liveview._internal.otlp import OtlpSender, Outcome
from otel_liveview._internal.spool import SIGNALS, Record, Spool, merged, record_counts

_log = logging.getLogger("otel_liveview")

WRITE_DELAY = 0.02  # seconds: what is queued reaches the spool this often (the SIGKILL bound)
SCAN_EVERY = 5.0  # seconds between looks for segments that dead processes left
_BACKOFF = (1.0, 10.0)
PROBE_TIMEOUT = 2.0  # seconds a spooled request may take while the endpoint is down


def rejected(outcome: Outcome) -> bool:
    """The collector says the request itself is bad: sending it again cannot help."""
    return outcome.reason.startswith(("HTTP 400", "INVALID_ARGUMENT"))


def send_run(
    run: list[Record],
    send: Callable[[bytes], Outcome],
    *,
    taken: Callable[[Record], None],
    refused: Callable[[Record], None],
) -> bool:
    """Send `run` (consecutive records of one kind) as one request; if the collector rejects it as
    bad, each record alone, so that only the bad ones are lost (`refused`). `taken` is called for
    the last record the collector has taken, or refused, so far. False if it was not taken (the
    endpoint is down, or out of time): what is left goes again later."""
    outcome = send(merged(run))
    if outcome.ok:
        taken(run[-1])
        return True
    if not rejected(outcome):
        return False
    for record in run:
        if len(run) > 1:  # which of them is bad
            outcome = send(record.payload)
            if not outcome.ok and not rejected(outcome):
                return False
        if not outcome.ok:
            refused(record)
        taken(record)
    return True


class Spooler:
    """The spool of one pipeline: `deliver` for the sinks, a thread that sends it.

    `senders` (by signal) send the spooled requests. The thread sends once `batch_size` records are
    written or `delay` (OTEL_BLRP_SCHEDULE_DELAY) has passed since its last request, so requests stay
    as full as without a spool. `offline`: nothing is sent, everything is kept.
    """

    def __init__(
        self,
        spool: Spool,
        senders: Mapping[str, OtlpSender],
        *,
        offline: bool,
        batch_size: int,
        delay: float,
    ) -> None:
        self.spool = spool
        self.offline = offline
        self._senders = dict(senders)
        self._batch_size = batch_size
        self._delay = delay
        self._written = 0  # records written and not yet sent (as their publish calls count them)
        self._counting = threading.Lock()  # the export threads add to it, the sending thread takes off
        self._sent_at = 0.0
        self._retry_at = 0.0
        self._backoff = _BACKOFF[0]
        self._lost = False  # a request neither sent nor spooled since the last `took_all()`
        self._wake = threading.Event()
        self._stopping = False
        self._sending = threading.Lock()  # one request at a time; held across a fork
        self._thread = threading.Thread(target=self._run, name="otel-liveview-spool", daemon=True)

    def start(self) -> None:
        if not self.offline:
            self._sent_at = time.monotonic()  # a first partial batch waits for the delay too
            self._thread.start()

    def deliver(self, kind: int, payload: bytes, counts: Mapping[str, int]) -> bool:
        """Write `payload` to the spool for the thread to send; `counts` (kind -> publish calls or
        points) is what is counted as dropped when the spool cannot take it (then `took_all()` says
        so). Always True: the record is the spool's now, sent or counted."""
        with self._counting:  # written and counted at once: the thread sees both or neither
            if not self.spool.append(kind, payload, counts):
                self._lost = True  # counted by the spool (spool_full, disk_full, spool_error)
                return True
            idle = not self._written
            self._written += sum(counts.values())
            wake = idle or self._written >= self._batch_size
        if wake:  # the thread sees when the next request is due
            self._wake.set()
        return True

    def took_all(self) -> bool:
        """Whether everything since the last call was spooled (for flush()'s answer)."""
        lost, self._lost = self._lost, False
        return not lost

    # -- the sending thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        scan_at = 0.0
        while not self._stopping:
            now = time.monotonic()
            if now >= scan_at:
                scan_at = now + SCAN_EVERY
                self.scan()
            due = self._due(now)
            if due > now:
                self._wake.wait(min(due, scan_at) - now)
                self._wake.clear()
                continue
            with self._sending:
                try:
                    if not self._stopping:
                        self.send_one(None)
                except Exception:  # the thread must go on: what is spooled stays, tried again later
                    _log.exception("otel-liveview: sending spooled telemetry failed")
                    self._failed()

    def scan(self) -> None:
        """Recount the folder, and take what dead processes left. Their segments may hold either
        signal: taken only if this process sends both (else replay, or another process, sends them)."""
        self.spool.scan(claim_orphans=set(self._senders) == set(SIGNALS.values()))

    def _due(self, now: float) -> float:
        """When the next request should go: at once for a full batch (or a backlog: what an outage
        left counts as written), after the schedule delay since the last request for a partial one,
        after the backoff while the endpoint is down."""
        if now < self._retry_at:
            return self._retry_at
        with self._counting:
            written = self._written
            backlog = not written and self.spool.pending  # left by a dead process or an earlier run
        if written >= self._batch_size or backlog:
            return now
        if written:
            return self._sent_at + self._delay
        return now + SCAN_EVERY

    def send_one(self, deadline: float | None) -> bool | None:
        """Send the oldest run of spooled records as one request: True if taken, False if not (the
        endpoint is down: try again after the backoff), None if there was nothing to send."""
        run = self.spool.oldest(max_records=self._batch_size)
        if run is None:
            self._caught_up(0)
            return None
        self._sent_at = time.monotonic()
        sender = self._senders[SIGNALS[run[0].kind]]
        sent = send_run(
            run,
            lambda payload: self._send(sender, payload, deadline),
            taken=self._taken,
            refused=self._count_rejected,
        )
        return True if sent else self._failed()

    def _send(self, sender: OtlpSender, payload: bytes, deadline: float | None) -> Outcome:
        timeout = sender.endpoint.timeout
        if sender.down:  # a probe: the thread must not hang on a black hole for long
            timeout = min(timeout, PROBE_TIMEOUT)
        end = time.monotonic() + timeout
        return sender.send(payload, end if deadline is None else min(end, deadline))

    def _taken(self, record: Record) -> None:
        self._backoff = _BACKOFF[0]
        self._retry_at = 0.0
        segment = record.segment
        sent = 0
        for end, count in segment.records.items():  # in the order written
            if end > record.end:
                break
            sent += count
        self.spool.ack(record)
        self._caught_up(sent)

    def _caught_up(self, sent: int) -> None:
        """`sent` records went out: what is left waits for a batch's worth or the delay; with
        nothing left, nothing is owed (the check under the lock deliver counts under, so that a
        record written meanwhile is counted, never forgotten)."""
        with self._counting:
            self._written = max(0, self._written - sent) if self.spool.pending else 0

    def _failed(self) -> bool:
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, _BACKOFF[1])
        return False

    def _count_rejected(self, record: Record) -> None:
        try:
            counts = record_counts(record.kind, record.payload)
        except Exception:  # not a request at all (written by something else)
            counts = {"segment": 1}
        for name, amount in counts.items():
            self.spool.count(name, "spool_rejected", amount)

    # -- flush, fork, the end --------------------------------------------------------------------------

    def flush(self, deadline: float) -> bool:
        """Send what was written before now, in this thread, until `deadline` (time.monotonic());
        True once it is all sent. An endpoint known to be down is not waited for: the spool keeps it."""
        if self.offline:
            return False
        mark = self.spool.mark()
        while not self.spool.sent_up_to(mark):
            if time.monotonic() < self._retry_at or not acquire(self._sending, deadline):
                return False
            try:
                if self.send_one(deadline) is False:
                    return False
            finally:
                self._sending.release()
        return True

    def pause(self, timeout: float) -> bool:
        """Wait (up to `timeout`) for the request in flight and hold further ones until `resume()`."""
        return self._sending.acquire(timeout=timeout)

    def resume(self) -> None:
        self._sending.release()

    def close(self, deadline: float) -> bool:
        """Send what is left until `deadline`, stop the thread, and seal the spool: the next process,
        or replay, sends what is still in it. True if everything was spooled."""
        self._stopping = True
        self._wake.set()
        self.flush(deadline)
        if self._thread.is_alive():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        self.spool.close()
        return self.took_all()
