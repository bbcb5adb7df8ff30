"""The public API against the SDK's in-memory reader and exporter.

The application installs global SDK providers here, so these tests also cover the rule that the
library reuses them instead of building its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import _logs, metrics
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import otel_liveview
from otel_liveview import ExperimentBroadcaster, LiveViewExperiment, LiveViewHandler, pipeline

_READER = InMemoryMetricReader()
_EXPORTER = InMemoryLogRecordExporter()


@pytest.fixture(scope="module", autouse=True)
def sdk() -> Iterator[None]:
    pipeline.shutdown(timeout=1)
    if not isinstance(metrics.get_meter_provider(), MeterProvider):
        metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
        provider = LoggerProvider()
        provider.add_log_record_processor(SimpleLogRecordProcessor(_EXPORTER))
        _logs.set_logger_provider(provider)
    otel_liveview.configure(schedule_delay=0.01)
    yield
    pipeline.shutdown(timeout=1)


def points(name: str, topic: str) -> dict[frozenset[tuple[str, Any]], float]:
    found = {}
    data = _READER.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else []:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        if point.attributes.get("topic", topic) == topic:
                            found[frozenset(point.attributes.items())] = point.value
    return found


def records(topic: str) -> list[Any]:
    otel_liveview.flush(5)
    return [
        r.log_record for r in _EXPORTER.get_finished_logs() if r.log_record.attributes.get("topic") == topic
    ]


def test_reuses_the_installed_sdk_providers() -> None:
    active = pipeline.active()
    assert active is not None
    assert not active.owns_meter_provider and active.logger_provider is not None and active.shipper is None
    assert active.meter_provider is metrics.get_meter_provider()


def test_metric_gauges_step_epoch_and_labels() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:metric")
    broadcaster.publish_metric_sync("loss", 0.9, epoch=1, step=10, phase="train", lr=0.1, best=True)
    broadcaster.publish_metric_sync("loss", 0.5, epoch=2, step=20, phase="train", lr=0.01, best=True)
    labels = frozenset({("metric", "loss"), ("topic", "unit:metric"), ("phase", "train"), ("best", "true")})
    assert points("liveview.metric", "unit:metric") == {labels: 0.5}
    assert points("liveview.metric.step", "unit:metric") == {labels: 20}
    assert points("liveview.metric.epoch", "unit:metric") == {labels: 2}

    event = [r for r in records("unit:metric") if r.event_name == "liveview.metric"][-1]
    assert event.body == {
        "metric": "loss",
        "value": 0.5,
        "step": 20,
        "epoch": 2,
        "phase": "train",
        "lr": 0.01,
        "best": True,
    }
    assert dict(event.attributes) == {
        "metric": "loss",
        "topic": "unit:metric",
        "phase": "train",
        "lr": 0.01,
        "best": True,
        "step": 20,
        "epoch": 2,
        "event_name": "liveview.metric",
    }
    assert event.timestamp is not None and event.timestamp > 0


def test_non_finite_values_become_the_nonfinite_gauge() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:nan")
    broadcaster.publish_metric_sync("loss", 1.0)
    broadcaster.publish_metric_sync("loss", math.nan)
    flags = {dict(k)["value"]: v for k, v in points("liveview.metric.nonfinite", "unit:nan").items()}
    assert flags == {"nan": 1, "inf": 0, "-inf": 0}
    assert list(points("liveview.metric", "unit:nan").values()) == [1.0]  # the last finite value stays
    broadcaster.publish_metric_sync("loss", -math.inf)
    flags = {dict(k)["value"]: v for k, v in points("liveview.metric.nonfinite", "unit:nan").items()}
    assert flags == {"nan": 0, "inf": 0, "-inf": 1}
    broadcaster.publish_metric_sync("loss", 0.5)
    flags = {dict(k)["value"]: v for k, v in points("liveview.metric.nonfinite", "unit:nan").items()}
    assert flags == {"nan": 0, "inf": 0, "-inf": 0}
    assert [r.body["value"] for r in records("unit:nan") if r.event_name == "liveview.metric"] == [
        1.0,
        "nan",
        "-inf",
        0.5,
    ]


def test_bad_metric_values_raise_and_the_next_publish_works() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:bad")
    with pytest.raises(TypeError, match="metric 'loss'"):
        broadcaster.publish_metric_sync("loss", "0.5")
    with pytest.raises(TypeError, match="metric 'step'"):
        broadcaster.publish_metric_sync("loss", 0.5, step="ten")
    with pytest.raises(ValueError, match="empty"):
        broadcaster.publish_metric_sync("", 0.5)
    broadcaster.publish_metric_sync("loss", 0.25)
    assert list(points("liveview.metric", "unit:bad").values()) == [0.25]


def test_data_stream_event_and_numeric_leaves_with_key_cap() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:data")
    broadcaster.publish_data_sync("sensors", {"sensor_1": 0.8, "arm": {"x": 1, "y": 2}, "label": "ok"})
    event = [r for r in records("unit:data") if r.event_name == "liveview.data"][-1]
    assert event.body == {"sensor_1": 0.8, "arm": {"x": 1, "y": 2}, "label": "ok"}
    assert dict(event.attributes) == {
        "stream": "sensors",
        "topic": "unit:data",
        "event_name": "liveview.data",
    }
    values = {dict(k)["key"]: v for k, v in points("liveview.data", "unit:data").items()}
    assert values == {"sensor_1": 0.8, "arm.x": 1, "arm.y": 2}

    before = otel_liveview.stats()["dropped"].get("data/cardinality", 0)
    broadcaster.publish_data_sync("wide", {f"k{i}": i for i in range(100)})
    records("unit:data")
    keys = {dict(k)["key"] for k in points("liveview.data", "unit:data") if dict(k)["stream"] == "wide"}
    assert len(keys) == 64
    assert otel_liveview.stats()["dropped"]["data/cardinality"] - before == 36
    with pytest.raises(TypeError, match="must be a dict"):
        broadcaster.publish_data_sync("sensors", [1, 2])  # type: ignore[arg-type]


def test_logs_severity_body_and_attributes() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:log")
    broadcaster.publish_log_sync("warning", "High memory usage", memory_mb=8192)
    with pytest.raises(ValueError, match="unknown log level"):
        broadcaster.publish_log_sync("loud", "nope")
    (record,) = records("unit:log")
    assert (record.severity_number.value, record.severity_text, record.body) == (
        13,
        "WARN",
        "High memory usage",
    )
    assert dict(record.attributes) == {"memory_mb": 8192, "topic": "unit:log"}
    assert record.event_name is None


def test_async_forms_publish_the_same() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:async")

    async def main() -> None:
        await broadcaster.publish_metric("acc", 0.9, step=1)
        await broadcaster.publish_data("s", {"v": 1})
        await broadcaster.publish_log("info", "hello")

    asyncio.run(main())
    kinds = sorted(r.event_name or "log" for r in records("unit:async"))
    assert kinds == ["liveview.data", "liveview.metric", "log"]
    assert list(points("liveview.metric", "unit:async").values()) == [0.9]


@pytest.mark.parametrize(
    ("raised", "status"),
    [(None, "completed"), (RuntimeError("boom"), "failed"), (KeyboardInterrupt(), "aborted")],
)
def test_experiment_status_transitions(raised: BaseException | None, status: str) -> None:
    topic = f"unit:status:{status}"
    experiment = LiveViewExperiment(name="mnist", base_topic=topic)
    with pytest.raises(type(raised)) if raised else contextlib.nullcontext(), experiment:
        assert experiment.state_manager.experiment_state.status == "running"
        running = {dict(k)["status"]: v for k, v in points("liveview.experiment.status", topic).items()}
        assert running["running"] == 1
        if raised:
            raise raised
    assert experiment.state_manager.experiment_state.status == status
    states = {dict(k)["status"]: v for k, v in points("liveview.experiment.status", topic).items()}
    assert states == {
        s: (1 if s == status else 0) for s in ("initializing", "running", "completed", "failed", "aborted")
    }
    events = [r for r in records(topic) if r.event_name == "liveview.status"]
    assert [e.body["status"] for e in events] == ["initializing", "running", status]
    assert {e.attributes["event_name"] for e in events} == {"liveview.status"}
    if status == "failed":
        assert events[-1].body["error"] == "RuntimeError: boom"


def test_logging_bridge_keeps_time_level_and_exception() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:bridge")
    logger = logging.getLogger("experiment.bridge")
    handler = LiveViewHandler(broadcaster)
    logger.addHandler(handler)
    try:
        logger.warning("disk %s%% full", 91)
        try:
            raise ValueError("bad batch")
        except ValueError:
            logger.exception("step failed")
        logging.getLogger("opentelemetry.exporter").warning("must not loop back")
    finally:
        logger.removeHandler(handler)
    found = records("unit:bridge")
    assert [(r.severity_text, r.body) for r in found] == [("WARN", "disk 91% full"), ("ERROR", "step failed")]
    assert found[0].attributes["logger.name"] == "experiment.bridge"
    assert found[1].attributes["exception.type"] == "ValueError"
    assert "bad batch" in found[1].attributes["exception.stacktrace"]


def test_metric_series_cap_counts_cardinality_drops() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:cap")
    table = pipeline.TABLES.metric
    before = otel_liveview.stats()["dropped"].get("metric/cardinality", 0)
    free = table.limit - len(table.values)
    for i in range(free + 10):
        broadcaster.publish_metric_sync(f"m{i}", i)
    assert len(table.values) == table.limit
    assert otel_liveview.stats()["dropped"]["metric/cardinality"] - before == 10
    table.clear()
