"""An experiment's lifecycle (otel_liveview/experiment.py) in-process: the statuses and information it
publishes through its broadcaster, the times it records, and the flush at its end (the pipeline's
exit allowance), with a broadcaster that records what it is asked to publish."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from otel_liveview import experiment as experiment_module
from otel_liveview.experiment import ExperimentState, LiveViewExperiment, StateManager


class Recording:
    """The broadcaster's publishing methods an experiment calls, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def publish_status(self, experiment: str, status: str, error: str | None = None) -> None:
        self.calls.append(("status", experiment, status, error))

    def publish_info_sync(self, experiment: str, info: dict[str, Any]) -> None:
        self.calls.append(("info", experiment, dict(info)))

    def publish_total_sync(self, experiment: str, phase: str, steps: Any = None, epochs: Any = None) -> None:
        self.calls.append(("total", experiment, phase, steps, epochs))


class Pipeline:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def renew_exit_time(self) -> None:
        self.calls.append(("renew",))

    def flush_at_end(self, timeout: float | None = None) -> bool:
        self.calls.append(("flush", timeout))
        return True


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    fake = Pipeline()
    monkeypatch.setattr(experiment_module, "RUNTIME", fake)
    return fake


def test_the_state_starts_initializing_with_nothing_recorded() -> None:
    state = ExperimentState("e")
    assert (state.name, state.status, state.started_at, state.finished_at, state.error, state.info) == (
        "e",
        "initializing",
        None,
        None,
        None,
        {},
    )
    assert ExperimentState("a").info is not ExperimentState("b").info


def test_the_state_manager_publishes_every_status_and_records_the_times() -> None:
    broadcaster = Recording()
    manager = StateManager("e", broadcaster)  # type: ignore[arg-type]
    assert broadcaster.calls == [("status", "e", "initializing", None)]
    before = time.time()
    manager.set_status("running")
    state = manager.experiment_state
    assert state.status == "running" and state.error is None
    assert state.started_at is not None and before <= state.started_at <= time.time()
    assert state.finished_at is None
    for final in ("completed", "failed", "aborted"):
        manager.set_status(final, f"why {final}")
        assert state.finished_at is not None and state.started_at <= state.finished_at <= time.time()
        assert (state.status, state.error) == (final, f"why {final}")
    started = state.started_at
    manager.set_status("paused")
    assert state.started_at == started and state.status == "paused"
    assert broadcaster.calls[1:] == [
        ("status", "e", "running", None),
        ("status", "e", "completed", "why completed"),
        ("status", "e", "failed", "why failed"),
        ("status", "e", "aborted", "why aborted"),
        ("status", "e", "paused", None),
    ]


def test_a_finished_status_does_not_set_the_start() -> None:
    manager = StateManager("e", Recording())  # type: ignore[arg-type]
    manager.set_status("completed")
    assert manager.experiment_state.started_at is None and manager.experiment_state.finished_at is not None


def test_a_run_publishes_its_info_and_totals_then_running_then_completed(pipeline: Pipeline) -> None:
    broadcaster = Recording()
    run = LiveViewExperiment(
        "mnist",
        broadcaster=broadcaster,  # type: ignore[arg-type]
        flush_timeout=3.0,
        totals={"train": {"steps": 100, "epochs": 2}, "eval": {"steps": 5}},
        lr=0.1,
        seed=7,
    )
    assert run.name == "mnist" and run.broadcaster is broadcaster and run.flush_timeout == 3.0
    assert run.state_manager.experiment_state.info == {"lr": 0.1, "seed": 7}
    assert broadcaster.calls == [
        ("status", "mnist", "initializing", None),
        ("info", "mnist", {"lr": 0.1, "seed": 7}),
        ("total", "mnist", "train", 100, 2),
        ("total", "mnist", "eval", 5, None),
    ]
    with run as entered:
        assert entered is run
        assert pipeline.calls == [("renew",)]
        assert run.state_manager.experiment_state.status == "running"
        run.publish_total_sync("test", epochs=1)
    assert broadcaster.calls[4:] == [
        ("status", "mnist", "running", None),
        ("total", "mnist", "test", None, 1),
        ("status", "mnist", "completed", None),
    ]
    assert pipeline.calls == [("renew",), ("flush", 3.0)]


def test_an_exception_fails_the_run_and_an_interrupt_aborts_it(pipeline: Pipeline) -> None:
    broadcaster = Recording()
    with pytest.raises(ValueError), LiveViewExperiment("e", broadcaster=broadcaster):  # type: ignore[arg-type]
        raise ValueError("diverged")
    assert broadcaster.calls[-1] == ("status", "e", "failed", "ValueError: diverged")
    for interrupt in (KeyboardInterrupt(), SystemExit(3)):
        run = LiveViewExperiment("e", broadcaster=broadcaster)  # type: ignore[arg-type]
        with pytest.raises(type(interrupt)), run:
            raise interrupt
        assert broadcaster.calls[-1] == ("status", "e", "aborted", type(interrupt).__name__)
        assert run.state_manager.experiment_state.error == type(interrupt).__name__
    assert pipeline.calls.count(("flush", None)) == 3


def test_the_async_form_does_the_same(pipeline: Pipeline) -> None:
    broadcaster = Recording()

    async def main() -> None:
        async with LiveViewExperiment("a", broadcaster=broadcaster) as run:  # type: ignore[arg-type]
            await run.publish_total("train", steps=10)
            await run.publish_total("eval", 3, 4)
        with pytest.raises(RuntimeError):
            async with LiveViewExperiment("b", broadcaster=broadcaster):  # type: ignore[arg-type]
                raise RuntimeError("boom")

    asyncio.run(main())
    assert [c for c in broadcaster.calls if c[0] != "info"] == [
        ("status", "a", "initializing", None),
        ("status", "a", "running", None),
        ("total", "a", "train", 10, None),
        ("total", "a", "eval", 3, 4),
        ("status", "a", "completed", None),
        ("status", "b", "initializing", None),
        ("status", "b", "running", None),
        ("status", "b", "failed", "RuntimeError: boom"),
    ]
    assert pipeline.calls == [("renew",), ("flush", None), ("renew",), ("flush", None)]


def test_the_defaults_make_a_broadcaster_on_the_root_topic(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []

    def broadcaster(base_topic: str) -> Recording:
        made.append(base_topic)
        return Recording()

    monkeypatch.setattr(experiment_module, "ExperimentBroadcaster", broadcaster)
    run = LiveViewExperiment()
    assert run.name == "experiment" and made == ["experiment:updates:root"] and run.flush_timeout is None
    LiveViewExperiment("x", base_topic="mine")
    assert made[-1] == "mine"
    assert run.broadcaster.calls[1] == ("info", "experiment", {})  # type: ignore[attr-defined]
