"""Ray Tune trials as LiveView experiments: `tune.RunConfig(callbacks=[LiveViewCallback()])`.

Tune reports every trial's results to the driver; this callback publishes them from there: each trial
is an experiment named as Tune names it (status running -> completed / failed, its config as the run's
info), each numeric result a metric with `trial` as a label and `training_iteration` as its step.
Importing this module imports Ray Tune.
"""

from __future__ import annotations

import numbers
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.logger import LoggerCallback

from otel_liveview.broadcaster import ExperimentBroadcaster
from otel_liveview.experiment import StateManager

__all__ = ["LiveViewCallback"]

# Tune's bookkeeping in every result: what the trial is and where, not what it measures.
_NOT_METRICS = frozenset(
    {
        "training_iteration",
        "iterations_since_restore",
        "timestamp",
        "pid",
        "done",
        "trial_id",
        "experiment_tag",
        "should_checkpoint",
    }
)


class LiveViewCallback(LoggerCallback):
    def __init__(self, base_topic: str = "experiment:updates:tune") -> None:
        self.broadcaster = ExperimentBroadcaster(base_topic=base_topic)
        self._trials: dict[str, StateManager] = {}

    def log_trial_start(self, trial: Trial) -> None:
        name = str(trial)
        if name not in self._trials:
            self._trials[name] = StateManager(name, self.broadcaster)
            self.broadcaster.publish_info_sync(name, dict(trial.config))
        self._trials[name].set_status("running")

    def log_trial_result(self, iteration: int, trial: Trial, result: dict[str, Any]) -> None:
        step = result.get("training_iteration", iteration)
        for key, value in result.items():
            if key in _NOT_METRICS or isinstance(value, bool) or not isinstance(value, numbers.Real):
                continue
            self.broadcaster.publish_metric_sync(key, value, step=step, trial=trial.trial_id)

    def log_trial_end(self, trial: Trial, failed: bool = False) -> None:
        state = self._trials.get(str(trial)) or StateManager(str(trial), self.broadcaster)
        if failed:
            state.set_status("failed", _error_text(trial))
        else:
            state.set_status("completed")

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self.broadcaster.flush()


def _error_text(trial: Trial) -> str:
    """`FloatingPointError: loss diverged`: the last line of the error Tune wrote for the trial (Ray's
    wrapper around what the trainable raised ends with it)."""
    try:
        with open(trial.error_file, encoding="utf-8", errors="replace") as file:
            lines = [line.strip() for line in file if line.strip()]
    except (OSError, TypeError):  # no error file: Tune had nothing to say
        lines = []
    return lines[-1] if lines else "the trial failed"
