"""An experiment's lifecycle: initializing -> running -> completed / failed / aborted.

Each change is published as gauge `liveview.experiment.status` and event `liveview.status`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from otel_liveview._internal.runtime import RUNTIME
from otel_liveview.broadcaster import ExperimentBroadcaster


@dataclass
class ExperimentState:
    name: str
    status: str = "initializing"
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


class StateManager:
    """Holds the experiment's state and publishes every change of status."""

    def __init__(self, name: str, broadcaster: ExperimentBroadcaster) -> None:
        self.experiment_state = ExperimentState(name=name)
        self._broadcaster = broadcaster
        broadcaster.publish_status(name, "initializing")

    def set_status(self, status: str, error: str | None = None) -> None:
        state = self.experiment_state
        self._broadcaster.publish_status(state.name, status, error)
        state.status = status
        state.error = error
        if status == "running":
            state.started_at = time.time()
        elif status in ("completed", "failed", "aborted"):
            state.finished_at = time.time()


class LiveViewExperiment:
    """A context manager around one experiment run (sync or async ``with``).

    Leaving normally marks it completed, an exception marks it failed (KeyboardInterrupt: aborted);
    either way what was published is flushed, within `flush_timeout` seconds if given and always within
    OTEL_LIVEVIEW_EXIT_TIMEOUT: that flush and the interpreter's exit after it share that one allowance
    (the exit waits only for what the flush left). The `info` keywords (the
    run's configuration) are published as liveview.experiment.info; `totals` declares how far each
    phase goes, e.g. ``totals={"train": {"steps": 5000, "epochs": 10}, "eval": {"steps": 200}}``.
    """

    def __init__(
        self,
        name: str = "experiment",
        base_topic: str = "experiment:updates:root",
        broadcaster: ExperimentBroadcaster | None = None,
        flush_timeout: float | None = None,
        totals: Mapping[str, Mapping[str, Any]] | None = None,
        **info: Any,
    ) -> None:
        self.name = name
        self.broadcaster = broadcaster or ExperimentBroadcaster(base_topic=base_topic)
        self.state_manager = StateManager(name, self.broadcaster)
        self.state_manager.experiment_state.info.update(info)
        self.flush_timeout = flush_timeout
        self.broadcaster.publish_info_sync(name, info)
        for phase, total in (totals or {}).items():
            self.publish_total_sync(phase, **total)

    def publish_total_sync(self, phase: str, steps: Any = None, epochs: Any = None) -> None:
        """Declare (or change) how many steps and/or epochs `phase` runs, for the progress panel."""
        self.broadcaster.publish_total_sync(self.name, phase, steps, epochs)

    async def publish_total(self, phase: str, steps: Any = None, epochs: Any = None) -> None:
        self.publish_total_sync(phase, steps, epochs)

    def __enter__(self) -> LiveViewExperiment:
        RUNTIME.renew_exit_time()
        self.state_manager.set_status("running")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if error is None:
            self.state_manager.set_status("completed")
        elif isinstance(error, (KeyboardInterrupt, SystemExit)):
            self.state_manager.set_status("aborted", f"{type(error).__name__}")
        else:
            self.state_manager.set_status("failed", f"{type(error).__name__}: {error}")
        RUNTIME.flush_at_end(self.flush_timeout)

    async def __aenter__(self) -> LiveViewExperiment:
        return self.__enter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.__exit__(kind, error, traceback)


__all__ = [
    "ExperimentState",
    "LiveViewExperiment",
    "StateManager",
]
