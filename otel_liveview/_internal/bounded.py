"""Work that may wait on the network, run so that the caller waits no longer than a deadline."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

_log = logging.getLogger("otel_liveview")


def within(deadline: float, work: Callable[[float], object]) -> bool:
    """Run `work(deadline)` on a daemon thread and wait for it until `deadline` (time.monotonic()):
    a dead collector can't hold the caller. True if it finished in time without an error."""
    outcome: list[bool] = []
    thread = threading.Thread(target=lambda: outcome.append(quietly(work, deadline)), daemon=True)
    try:
        thread.start()
    except RuntimeError:  # no new thread at exit (CPython 3.12.0, 3.12.1): the work keeps its own deadline
        return quietly(work, deadline)
    thread.join(max(0.0, deadline - time.monotonic()))
    return bool(outcome and outcome[0])


def acquire(lock: threading.Lock, deadline: float | None) -> bool:
    """Take `lock`, waiting until `deadline` (time.monotonic()) at the latest; None: as long as it takes."""
    if deadline is None:
        return lock.acquire()
    wait = deadline - time.monotonic()
    return wait > 0 and lock.acquire(timeout=wait)


def quietly(work: Callable[[float], object], deadline: float) -> bool:
    """`work(deadline)`; False (logged at debug level) if it raised."""
    try:
        work(deadline)
        return True
    except Exception:
        _log.debug("flushing or shutting down the pipeline failed", exc_info=True)
        return False


__all__ = ["acquire", "quietly", "within"]
