"""This process's one pipeline: built at the first publish or by `configure()`, stopped at exit,
started over in a forked child (a fresh `service.instance.id`, empty tables and queues).

The queues live as long as the process: a fork empties them (`RecordQueue.reset`), never replaces
them, so the broadcaster may hold their `put`.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from dataclasses import replace
from typing import Any

from opentelemetry.sdk.resources import Resource

from otel_liveview._internal import config
from otel_liveview._internal.config import Settings
from otel_liveview._internal.otlp import Outage
from otel_liveview._internal.pipeline import Pipeline
from otel_liveview._internal.queue import RecordQueue
from otel_liveview._internal.records import MetricUpdate, QueuedItem
from otel_liveview._internal.tables import TABLES

# Callers put events and logs on QUEUE, metric updates (for their events) on UPDATES; the export
# worker drains both and sleeps on one event.
QUEUE: RecordQueue[QueuedItem] = RecordQueue(capacity=32_768, wake_at=512)
UPDATES: RecordQueue[MetricUpdate] = RecordQueue(capacity=32_768, wake_at=16_384, wake=QUEUE.wake)
_log = logging.getLogger("otel_liveview")
FORK_WAIT = 2.0  # seconds a fork() waits for the export in flight


class Runtime:
    """The process's pipeline (`current`), and when it is built, flushed and stopped.

    OTEL_LIVEVIEW_EXIT_TIMEOUT is one allowance for the way out, from the end of the experiment to
    the interpreter's exit: the flush at the end of an experiment spends from it (`flush_at_end`),
    the exit hook gets what is left.
    """

    def __init__(self) -> None:
        self.current: Pipeline | None = None
        self._lock = threading.RLock()
        self._settings: Settings | None = None  # from configure(), kept for lazy start and forked children
        self._inherited: list[Pipeline] = []  # the parent's, carried over by fork; stopped at the next start
        self._paused: Pipeline | None = None  # the pipeline held across a fork
        self._exit_hooks_pid: int | None = None
        self._exit_spent = (0, 0.0)  # (pid, seconds): a child process starts with the whole allowance
        self.outage = (
            Outage()
        )  # one warning per signal and outage for the process tree, whatever the pipeline

    def configure(self, **settings: Any) -> Pipeline:
        """Set up (or set up again) this process's pipeline with explicit settings."""
        new_settings = config.load(**settings)
        with self._lock:
            if self.current is not None:
                self.shutdown(timeout=new_settings.exit_timeout)
            self._settings = new_settings
            return self._start(new_settings, topic=None)

    def ensure(self, topic: str | None = None) -> Pipeline:
        """The running pipeline, started from the environment on first use."""
        pipeline = self.current
        if pipeline is not None:
            return pipeline
        with self._lock:
            if self.current is not None:
                return self.current
            return self._start(self._settings or config.load(), topic)

    def _start(self, settings: Settings, topic: str | None) -> Pipeline:
        for inherited in self._inherited:  # the parent's export threads, carried over by fork
            threading.Thread(target=inherited.stop_inherited, daemon=True).start()
        self._inherited.clear()
        try:
            self.current = Pipeline.build(
                settings, topic, tables=TABLES, queue=QUEUE, updates=UPDATES, outage=self.outage
            )
        except Exception as error:  # never into the experiment: it runs on, nothing is exported
            _log.warning(
                "otel-liveview: cannot start exporting (%r); nothing is exported", error, exc_info=True
            )
            self.current = Pipeline(settings=replace(settings, disabled=True), resource=Resource({}))
            return self.current
        if not settings.disabled:
            self._install_exit_hooks()
        return self.current

    def flush(self, timeout: float = 10.0) -> bool:
        """Export everything published so far; False if `timeout` seconds were not enough."""
        pipeline = self.current
        return True if pipeline is None else pipeline.flush(timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Export what is left (within `timeout` seconds; None: the exit timeout) and stop the pipeline."""
        with self._lock:
            pipeline, self.current = self.current, None
        if pipeline is None:
            return True
        return pipeline.shutdown(pipeline.settings.exit_timeout if timeout is None else timeout)

    # -- the exit allowance --------------------------------------------------------------------------

    def flush_at_end(self, timeout: float | None = None) -> bool:
        """The flush when an experiment ends: within `timeout` seconds (None: no limit of its own) and
        within what is left of the exit allowance, which it spends, so that the exit waits only for the rest."""
        pipeline = self.current
        if pipeline is None:
            return True
        left = self.exit_time_left(pipeline.settings)
        started = time.monotonic()
        try:
            return pipeline.flush(left if timeout is None else min(timeout, left))
        finally:
            self._spend_exit_time(time.monotonic() - started)

    def renew_exit_time(self) -> None:
        """An experiment starts: its end will be the end of the experiment the allowance counts from."""
        self._exit_spent = (os.getpid(), 0.0)

    def exit_time_left(self, settings: Settings) -> float:
        pid, spent = self._exit_spent
        return max(0.0, settings.exit_timeout - spent) if pid == os.getpid() else settings.exit_timeout

    def _spend_exit_time(self, seconds: float) -> None:
        with self._lock:  # experiments ending at once in several threads
            pid, spent = self._exit_spent
            self._exit_spent = (os.getpid(), (spent if pid == os.getpid() else 0.0) + seconds)

    # -- exit and fork -------------------------------------------------------------------------------

    def _install_exit_hooks(self) -> None:
        """Export at interpreter exit, and at the end of multiprocessing children (which skip atexit)."""
        if self._exit_hooks_pid == os.getpid():
            return
        self._exit_hooks_pid = os.getpid()
        atexit.register(self.at_exit)
        try:
            from multiprocessing import util

            util.Finalize(None, self.at_exit, exitpriority=-100)
        except Exception:  # multiprocessing unavailable: atexit alone
            pass

    def at_exit(self) -> None:
        pipeline = self.current
        if pipeline is not None:
            self.shutdown(timeout=self.exit_time_left(pipeline.settings))

    def before_fork(self) -> None:
        """Wait (a little) for the export in flight: one cut in two by a fork is retried by the
        parent although the receiver got it, and that duplicates data."""
        pipeline = self.current
        if pipeline is not None and pipeline.pause(FORK_WAIT):
            self._paused = pipeline

    def after_fork_in_parent(self) -> None:
        if self._paused is not None:
            self._paused.resume()
            self._paused = None

    def after_fork_in_child(self) -> None:
        self._paused = None
        self._lock = threading.RLock()  # the parent may have held it while forking
        if self.current is not None:
            self.current.release_after_fork()
            if self.current.pull is not None:
                self.current.pull.release_after_fork()
            self._inherited.append(self.current)
        self.current = None
        self._exit_hooks_pid = None
        TABLES.clear()
        QUEUE.reset()
        UPDATES.reset(wake=QUEUE.wake)


RUNTIME = Runtime()


def _remove_outage_markers_at_exit() -> None:
    """At the very end of the exit (multiprocessing's last finalizers run after it joined its
    children, whatever imported what first), the tree's first process removes its outage markers."""
    try:
        from multiprocessing import util

        util.Finalize(None, RUNTIME.outage.forget, exitpriority=-100)
    except Exception:  # multiprocessing unavailable: at interpreter exit
        atexit.register(RUNTIME.outage.forget)


_remove_outage_markers_at_exit()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=RUNTIME.before_fork,
        after_in_parent=RUNTIME.after_fork_in_parent,
        after_in_child=RUNTIME.after_fork_in_child,
    )

# The public API's module-level functions (otel_liveview.configure, flush, shutdown).
configure = RUNTIME.configure
flush = RUNTIME.flush
shutdown = RUNTIME.shutdown

__all__ = ["QUEUE", "RUNTIME", "UPDATES", "Runtime", "configure", "flush", "shutdown"]
