"""The runtime never lets the pipeline's start-up break the experiment."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from otel_liveview import ExperimentBroadcaster
from otel_liveview import broadcaster as broadcaster_module
from otel_liveview._internal import runtime
from otel_liveview._internal.pipeline import Pipeline


@pytest.fixture
def fresh() -> Iterator[runtime.Runtime]:
    """A runtime of its own, so the process's pipeline is left as it is."""
    own = runtime.Runtime()
    yield own
    own.shutdown(timeout=1)


def test_a_pipeline_that_cannot_start_leaves_publishing_working(
    fresh: runtime.Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> Pipeline:
        raise RuntimeError("the transport library cannot start")

    monkeypatch.setattr(Pipeline, "build", broken)
    with caplog.at_level(logging.WARNING, logger="otel_liveview"):
        pipeline = fresh.ensure("unit:broken")
    assert pipeline.settings.disabled and pipeline.worker is None
    assert fresh.flush(1.0) is True and fresh.current is pipeline
    assert [r.getMessage() for r in caplog.records] == [
        "otel-liveview: cannot start exporting (RuntimeError('the transport library cannot start')); "
        "nothing is exported"
    ]


def test_a_broadcaster_of_a_runtime_that_failed_to_start_ignores_publishes(
    fresh: runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> Pipeline:
        raise OSError("no sockets")

    monkeypatch.setattr(Pipeline, "build", broken)
    monkeypatch.setattr(broadcaster_module, "RUNTIME", fresh)
    broadcaster = ExperimentBroadcaster("unit:broken")
    broadcaster.publish_metric_sync("loss", "not a number")  # type: ignore[arg-type]  # ignored, not checked
    broadcaster.publish_log_sync("info", "still running")
    assert fresh.current is not None and fresh.current.worker is None
