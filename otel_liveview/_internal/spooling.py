"""The spool in the export path: what the collector cannot take goes to disk, and back out once it
answers again, oldest first, a few requests at a time between the live batches.

`Spooler.deliver` is what an OTLP sink calls instead of sending: one attempt (none while the
endpoint is known to be down), and on failure the request is written to the spool instead of being
counted as lost. `Spooler.drain_some` is called by the export thread between batches and sends
spooled requests until a small time slice is used, so the live view is never starved; while the
endpoint is down it tries the oldest spooled request again after a growing pause (1 s to 10 s).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from otel_liveview._internal.otlp import OtlpSender, Outcome
from otel_liveview._internal.spool import SIGNALS, Spool, record_counts

SLICE = 0.05  # seconds of spooled sending per call between live batches
SLICE_REQUESTS = 16
SCAN_EVERY = 5.0  # seconds between looks for segments that dead processes left
_BACKOFF = (1.0, 10.0)
PROBE_TIMEOUT = 2.0  # seconds a spooled request may take while the endpoint is down


def rejected(outcome: Outcome) -> bool:
    """The collector says the request itself is bad: sending it again cannot help."""
    return outcome.reason.startswith(("HTTP 400", "INVALID_ARGUMENT"))


class Spooler:
    """The spool of one pipeline: `deliver` for the sinks, `drain_some` for the export thread.

    `senders` (by signal) send the spooled requests: connections of their own, sharing the live
    senders' outage state, so a spooled request getting through ends the outage for the live ones.
    `offline`: nothing is sent, everything is spooled.
    """

    def __init__(self, spool: Spool, senders: Mapping[str, OtlpSender], *, offline: bool) -> None:
        self.spool = spool
        self.offline = offline
        self._senders = dict(senders)
        self._retry_at = 0.0
        self._backoff = _BACKOFF[0]
        self._scan_at = 0.0
        self._lost = False  # a request neither sent nor spooled since the last `took_all()`

    def deliver(
        self, sender: OtlpSender, kind: int, payload: bytes, counts: Mapping[str, int], deadline: float | None
    ) -> bool:
        """Send `payload` once, else spool it. False only when the collector rejected it as bad
        (the caller counts it, as without a spool); `counts` (kind -> publish calls or points) is
        what the spool counts as dropped when it cannot take it (then `took_all()` says so)."""
        if not self.offline and not sender.down:
            if deadline is None:
                deadline = time.monotonic() + sender.endpoint.timeout
            outcome = sender.send(payload, deadline)
            if outcome.ok:
                return True
            if rejected(outcome):
                return False
        if self.spool.append(kind, payload, counts):
            return True
        self._lost = True  # counted by the spool (spool_full, disk_full, spool_error)
        return True

    def took_all(self) -> bool:
        """Whether everything since the last call was sent or spooled (for flush()'s answer)."""
        lost, self._lost = self._lost, False
        return not lost

    def drain_some(self, deadline: float | None = None) -> bool:
        """Send spooled requests for a short slice; True if more are ready to go at once."""
        if self.offline:
            return False
        now = time.monotonic()
        if now >= self._scan_at:
            self._scan_at = now + SCAN_EVERY
            self.spool.scan()
        if now < self._retry_at:
            return False
        stop = now + SLICE
        if deadline is not None:
            stop = min(stop, deadline)
        for _ in range(SLICE_REQUESTS):
            if time.monotonic() >= stop:
                return True
            record = self.spool.oldest()
            if record is None:
                return False
            sender = self._senders[SIGNALS[record.kind]]
            timeout = sender.endpoint.timeout
            if sender.down:  # a probe: the export thread must not hang on a black hole for long
                timeout = min(timeout, PROBE_TIMEOUT)
            outcome = sender.send(record.payload, time.monotonic() + timeout)
            if outcome.ok:
                self._backoff = _BACKOFF[0]
                self.spool.ack(record)
            elif rejected(outcome):  # never to be accepted: counted, and out of the way
                self._count_rejected(record.kind, record.payload)
                self.spool.ack(record)
            else:
                self._retry_at = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, _BACKOFF[1])
                return False
        return True

    def _count_rejected(self, kind: int, payload: bytes) -> None:
        try:
            counts = record_counts(kind, payload)
        except Exception:  # not a request at all (written by something else)
            counts = {"segment": 1}
        for name, amount in counts.items():
            self.spool.count(name, "spool_rejected", amount)

    def close(self) -> None:
        self.spool.close()
