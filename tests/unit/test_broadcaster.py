"""The public API against the SDK's in-memory reader and exporter.

The application installs global SDK providers here, so these tests also cover the rule that the
library reuses them instead of building its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import decimal
import logging
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import _logs, metrics
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import otel_liveview
from otel_liveview import ExperimentBroadcaster, LiveViewExperiment, LiveViewHandler
from otel_liveview._internal import runtime
from otel_liveview._internal.tables import TABLES
from tests.support.receiver import metric_updates

_READER = InMemoryMetricReader()
_EXPORTER = InMemoryLogRecordExporter()


@pytest.fixture(scope="module", autouse=True)
def sdk() -> Iterator[None]:
    runtime.shutdown(timeout=1)
    _EXPORTER.clear()  # what an earlier run of these tests in the same process left behind
    TABLES.clear()
    if not isinstance(metrics.get_meter_provider(), MeterProvider):
        metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
        provider = LoggerProvider()
        provider.add_log_record_processor(SimpleLogRecordProcessor(_EXPORTER))
        _logs.set_logger_provider(provider)
    otel_liveview.configure(schedule_delay=0.01)
    yield
    runtime.shutdown(timeout=1)


def points(name: str, topic: str) -> dict[frozenset[tuple[str, Any]], float]:
    found = {}
    data = _READER.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else []:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        if point.attributes.get("topic") == topic:  # every series carries its topic
                            found[frozenset(point.attributes.items())] = point.value
    return found


def records(topic: str) -> list[Any]:
    otel_liveview.flush(5)
    return [
        r.log_record for r in _EXPORTER.get_finished_logs() if r.log_record.attributes.get("topic") == topic
    ]


def updates(topic: str) -> list[dict[str, Any]]:
    return metric_updates(
        (r.body, dict(r.attributes)) for r in records(topic) if r.event_name == "liveview.metric"
    )


def test_reuses_the_installed_sdk_providers() -> None:
    active = runtime.RUNTIME.current
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

    (event,) = [r for r in records("unit:metric") if r.event_name == "liveview.metric"]  # one per series
    assert dict(event.attributes) == {
        "metric": "loss",
        "topic": "unit:metric",
        "phase": "train",
        "best": "true",
        "event_name": "liveview.metric",
    }
    times = event.body["time"]
    assert event.body == {
        "metric": "loss",
        "time": times,
        "value": (0.9, 0.5),
        "step": (10.0, 20.0),
        "epoch": (1.0, 2.0),
        "attributes": {"lr": [0.1, 0.01]},
    }
    assert time.time() - 60 < times[0] <= times[1] <= time.time()
    assert event.timestamp == int(times[0] * 1e9)


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
    assert [update["value"] for update in updates("unit:nan")] == [1.0, "nan", "-inf", 0.5]


def test_bad_metric_values_raise_and_the_next_publish_works() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:bad")
    with pytest.raises(TypeError, match="metric 'loss'"):
        broadcaster.publish_metric_sync("loss", "0.5")
    with pytest.raises(TypeError, match=r"^metric 'loss': step must be a real number, not str \('ten'\)"):
        broadcaster.publish_metric_sync("loss", 0.5, step="ten")
    with pytest.raises(ValueError, match=r"^metric 'loss': value 1000.* is too large for a float"):
        broadcaster.publish_metric_sync("loss", 10**400)
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
    assert {k for k, _ in points("liveview.experiment.status", topic).items()} == {
        frozenset({("experiment", "mnist"), ("status", s), ("topic", topic)})
        for s in ("initializing", "running", "completed", "failed", "aborted")
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
    finally:
        logger.removeHandler(handler)
    found = records("unit:bridge")
    assert [(r.severity_text, r.body) for r in found] == [("WARN", "disk 91% full"), ("ERROR", "step failed")]
    assert found[0].attributes["logger.name"] == "experiment.bridge"
    assert found[1].attributes["exception.type"] == "ValueError"
    assert "bad batch" in found[1].attributes["exception.stacktrace"]


@pytest.mark.parametrize(
    "name", ["opentelemetry.exporter", "otel_liveview", "urllib3.connectionpool", "h2.connection", "hpack.hpack",
             "hyperframe.frame", "grpc._server"],
)  # fmt: skip
def test_logging_bridge_skips_the_exporters_own_loggers(name: str) -> None:
    """A root handler at DEBUG sees the export path's own records (hpack logs every header it
    encodes): sent down the same path, each export would make more."""
    broadcaster = ExperimentBroadcaster(base_topic=f"unit:own:{name}")
    handler = LiveViewHandler(broadcaster)
    handler.handle(logging.LogRecord(name, logging.DEBUG, __file__, 1, "must not loop back", None, None))
    another = name.partition(".")[0] + "_plugin"  # a package whose name only begins like it (h2_plugin)
    handler.handle(logging.LogRecord(another, logging.DEBUG, __file__, 1, "another library's", None, None))
    assert [r.body for r in records(f"unit:own:{name}")] == ["another library's"]


def test_metric_series_cap_counts_cardinality_drops() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:cap")
    table = TABLES.metric
    before = otel_liveview.stats()["dropped"].get("metric/cardinality", 0)
    free = table.limit - len(table.values)
    for i in range(free + 10):
        broadcaster.publish_metric_sync(f"m{i}", i)
    assert len(table.values) == table.limit
    assert otel_liveview.stats()["dropped"]["metric/cardinality"] - before == 10
    table.clear()


# -- the rules one by one -------------------------------------------------------------------------


def dropped() -> dict[str, int]:
    return otel_liveview.stats()["dropped"]


def published() -> dict[str, int]:
    return otel_liveview.stats()["published"]


def test_the_same_metric_with_other_labels_is_another_series() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:labels")
    broadcaster.publish_metric_sync("loss", 0.5, phase="train")
    broadcaster.publish_metric_sync("loss", 0.7, phase="val")
    broadcaster.publish_metric_sync("loss", 0.9)
    broadcaster.publish_metric_sync("loss", 0.1, phase="val", lr=0.1)  # not a label: the same series
    broadcaster.publish_metric_sync("acc", 0.3, phase="train")
    base = {("topic", "unit:labels")}
    assert points("liveview.metric", "unit:labels") == {
        frozenset(base | {("metric", "loss"), ("phase", "train")}): 0.5,
        frozenset(base | {("metric", "loss"), ("phase", "val")}): 0.1,
        frozenset(base | {("metric", "loss")}): 0.9,
        frozenset(base | {("metric", "acc"), ("phase", "train")}): 0.3,
    }


def test_labels_are_sanitized_and_unhashable_keywords_still_publish() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:odd")
    broadcaster.publish_metric_sync("m" * 300, 1.0, **{" mode ": "x" * 300}, shape=[1, 2])
    broadcaster.publish_metric_sync("m" * 300, 2.0, **{" mode ": "x" * 300}, shape=[1, 2])
    assert points("liveview.metric", "unit:odd") == {
        frozenset({("metric", "m" * 256), ("mode", "x" * 256), ("topic", "unit:odd")}): 2.0
    }
    assert [update["shape"] for update in updates("unit:odd")] == [[1, 2], [1, 2]]


def test_a_publish_that_fits_the_queue_counts_no_drop() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:fits")
    before_dropped, before_published = dropped(), published()
    broadcaster.publish_metric_sync("loss", 0.5, step=1)
    broadcaster.publish_data_sync("s", {"v": 1})
    broadcaster.publish_log_sync("info", "hello")
    broadcaster.emit_log_record(1, logging.INFO, "bridged", {})
    broadcaster.publish_status("run", "running")
    assert dropped() == before_dropped
    after = published()
    assert {
        kind: after[kind] - before_published.get(kind, 0) for kind in ("metric", "data", "log", "status")
    } == {
        "metric": 1,
        "data": 1,
        "log": 2,
        "status": 1,
    }


def test_a_full_queue_drops_and_counts_each_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    from otel_liveview import broadcaster as module
    from otel_liveview._internal.queue import RecordQueue

    broadcaster = ExperimentBroadcaster(base_topic="unit:full")
    monkeypatch.setattr(module, "_queue", RecordQueue(capacity=0, wake_at=1))
    monkeypatch.setattr(module, "_put_update", RecordQueue(capacity=0, wake_at=1).put)
    before_dropped, before_published = dropped(), published()
    broadcaster.publish_metric_sync("loss", 0.5)
    broadcaster.publish_data_sync("s", {"v": 1})
    broadcaster.publish_log_sync("info", "hello")
    broadcaster.emit_log_record(1, logging.INFO, "bridged", {})
    broadcaster.publish_status("run", "running")
    after_dropped, after_published = dropped(), published()
    grown = {key: after_dropped[key] - before_dropped.get(key, 0) for key in after_dropped}
    assert {key: amount for key, amount in grown.items() if amount} == {
        "metric/queue_full": 1,
        "data/queue_full": 1,
        "log/queue_full": 2,
        "status/queue_full": 1,
    }
    # The metric's gauge and the status gauge are written whatever the queue says; the others are lost.
    assert {kind: after_published[kind] - before_published.get(kind, 0) for kind in after_published} == {
        "metric": 1,
        "data": 0,
        "log": 0,
        "status": 1,
        "info": 0,
    }
    assert list(points("liveview.metric", "unit:full").values()) == [0.5]


def test_metric_events_can_be_turned_off_without_counting_drops() -> None:
    otel_liveview.configure(schedule_delay=0.01, metric_events=False)
    try:
        broadcaster = ExperimentBroadcaster(base_topic="unit:quiet")
        before_dropped, before_published = dropped(), published()
        broadcaster.publish_metric_sync("loss", 0.5)
        assert records("unit:quiet") == []
        assert dropped() == before_dropped
        assert published()["metric"] - before_published.get("metric", 0) == 1
        assert list(points("liveview.metric", "unit:quiet").values()) == [0.5]
    finally:
        otel_liveview.configure(schedule_delay=0.01)


def test_bad_names_topics_and_counters_are_rejected_clearly() -> None:
    for topic in ("", None, 3):
        with pytest.raises(ValueError, match=r"^base_topic must be a non-empty string$"):
            ExperimentBroadcaster(base_topic=topic)  # type: ignore[arg-type]
    broadcaster = ExperimentBroadcaster(base_topic="unit:names")
    with pytest.raises(ValueError, match=r"^stream name must not be empty$"):
        broadcaster.publish_data_sync("", {"v": 1})
    with pytest.raises(TypeError, match=r"^stream name must be a string, not int$"):
        broadcaster.publish_data_sync(3, {"v": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^metric name must be a string, not NoneType$"):
        broadcaster.publish_metric_sync(None, 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^metric 'loss': epoch must be a real number, not str"):
        broadcaster.publish_metric_sync("loss", 1.0, epoch="one")
    with pytest.raises(
        ValueError, match=r"^unknown experiment status 'paused'; use one of initializing, running"
    ):
        broadcaster.publish_status("run", "paused")
    with pytest.raises(TypeError, match=r"^data for stream 'sensors' must be a dict, not NoneType$"):
        broadcaster.publish_data_sync("sensors", None)  # type: ignore[arg-type]
    assert records("unit:names") == []  # nothing of it was queued
    assert points("liveview.metric", "unit:names") == {}


def test_long_topics_and_stream_names_are_cut_to_label_length() -> None:
    topic = "unit:long:" + "t" * 300
    broadcaster = ExperimentBroadcaster(base_topic=topic)
    assert broadcaster.base_topic == topic[:256]
    broadcaster.publish_data_sync("s" * 300, {"v": 1})
    (event,) = records(topic[:256])
    assert dict(event.attributes) == {
        "stream": "s" * 256,
        "topic": topic[:256],
        "event_name": "liveview.data",
    }


def test_step_and_epoch_are_numbers_on_their_own_gauges() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:step")
    broadcaster.publish_metric_sync("loss", 0.5, step=True, epoch=decimal.Decimal("2"))
    labels = frozenset({("metric", "loss"), ("topic", "unit:step")})
    assert points("liveview.metric.step", "unit:step") == {labels: 1.0}
    assert points("liveview.metric.epoch", "unit:step") == {labels: 2.0}
    broadcaster.publish_metric_sync("loss", 0.25)  # no step, no epoch: the last ones stay
    assert points("liveview.metric.step", "unit:step") == {labels: 1.0}
    assert points("liveview.metric.epoch", "unit:step") == {labels: 2.0}


def test_a_series_beyond_the_cap_counts_once_and_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:capped")
    table = TABLES.metric
    monkeypatch.setattr(table, "limit", len(table.values))  # full
    before_dropped, before_published = dropped(), published()
    broadcaster.publish_metric_sync("loss", 0.5)
    assert dropped()["metric/cardinality"] - before_dropped.get("metric/cardinality", 0) == 1
    assert published()["metric"] == before_published["metric"]
    assert records("unit:capped") == []  # no event either
    assert points("liveview.metric", "unit:capped") == {}


def test_a_log_record_from_the_bridge_keeps_its_time_level_and_attributes() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:emit")
    broadcaster.emit_log_record(1_234_567, logging.ERROR, "disk full", {"disk": "/data"})
    (record,) = records("unit:emit")
    assert (record.timestamp, record.severity_number.value, record.severity_text, record.body) == (
        1_234_567,
        17,
        "ERROR",
        "disk full",
    )
    assert dict(record.attributes) == {"disk": "/data", "topic": "unit:emit"}


def test_log_levels_by_name_in_any_case_and_by_number() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:levels")
    for level in ("TRACE", "Notice", "information", "fatal", logging.ERROR, 35):
        broadcaster.publish_log_sync(level, str(level))
    found = [(r.body, r.severity_number.value, r.severity_text) for r in records("unit:levels")]
    assert found == [
        ("TRACE", 1, "TRACE"),
        ("Notice", 10, "INFO2"),
        ("information", 9, "INFO"),
        ("fatal", 21, "FATAL"),
        ("40", 17, "ERROR"),
        ("35", 13, "WARN"),
    ]


def test_a_publish_after_shutdown_starts_a_new_pipeline_for_its_topic() -> None:
    calls = [
        lambda b: b.publish_metric_sync("m", 1.0),
        lambda b: b.publish_data_sync("s", {"v": 1}),
        lambda b: b.publish_log_sync("info", "x"),
        lambda b: b.emit_log_record(1, logging.INFO, "x", {}),
        lambda b: b.publish_status("run", "running"),
    ]
    for number, call in enumerate(calls):
        topic = f"unit:restart:{number}"
        broadcaster = ExperimentBroadcaster(base_topic=topic)
        assert broadcaster.shutdown(timeout=1) is True
        assert runtime.RUNTIME.current is None
        call(broadcaster)
        active = runtime.RUNTIME.current
        assert active is not None and active.resource.attributes["liveview.topic"] == topic
        assert broadcaster.flush(5) is True


def test_flush_and_shutdown_take_the_timeout_given(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, float | None]] = []
    monkeypatch.setattr(runtime.RUNTIME, "flush", lambda timeout: seen.append(("flush", timeout)) or False)
    monkeypatch.setattr(
        runtime.RUNTIME, "shutdown", lambda timeout: seen.append(("shutdown", timeout)) or False
    )
    broadcaster = ExperimentBroadcaster(base_topic="unit:timeouts")
    assert broadcaster.flush(0.25) is False and broadcaster.shutdown(0.5) is False
    assert broadcaster.flush() is False and broadcaster.shutdown() is False
    assert seen == [("flush", 0.25), ("shutdown", 0.5), ("flush", 10.0), ("shutdown", None)]


def test_declared_totals_are_series_of_their_own_per_phase_and_unit() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:totals")
    broadcaster.publish_total_sync("mnist", "train", steps=1, epochs=decimal.Decimal("2.5"))
    asyncio.run(broadcaster.publish_total("mnist", "eval", steps=40))
    assert points("liveview.experiment.planned", "unit:totals") == {
        frozenset(
            {("experiment", "mnist"), ("phase", "train"), ("unit", "steps"), ("topic", "unit:totals")}
        ): 1,
        frozenset(
            {("experiment", "mnist"), ("phase", "train"), ("unit", "epochs"), ("topic", "unit:totals")}
        ): 2.5,
        frozenset(
            {("experiment", "mnist"), ("phase", "eval"), ("unit", "steps"), ("topic", "unit:totals")}
        ): 40,
    }
    with pytest.raises(ValueError) as raised:
        broadcaster.publish_total_sync("mnist", "", steps=1)
    assert str(raised.value) == "phase must be a non-empty string, e.g. 'train' or 'eval'"
    with pytest.raises(TypeError, match=r"^metric 'total epochs': value must be a real number, not str"):
        broadcaster.publish_total_sync("mnist", "train", epochs="ten")
    with pytest.raises(ValueError, match=r"^total steps for phase 'train' must be positive, not -1$"):
        broadcaster.publish_total_sync("mnist", "train", steps=-1)


def test_info_in_the_async_form() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="unit:info")
    asyncio.run(broadcaster.publish_info("mnist", {"seed": 7}))
    ((labels, value),) = points("liveview.experiment.info", "unit:info").items()
    assert value == 1 and ("seed", "7") in labels and ("experiment", "mnist") in labels
    (event,) = records("unit:info")
    assert event.event_name == "liveview.info" and event.body == {"experiment": "mnist", "info": {"seed": 7}}


def test_totals_and_info_after_shutdown_start_a_new_pipeline_for_their_topic() -> None:
    calls = [
        lambda b: b.publish_total_sync("run", "train", steps=10),
        lambda b: b.publish_info_sync("run", {"seed": 1}),
    ]
    for number, call in enumerate(calls):
        topic = f"unit:restart:more:{number}"
        broadcaster = ExperimentBroadcaster(base_topic=topic)
        assert broadcaster.shutdown(timeout=1) is True
        call(broadcaster)
        active = runtime.RUNTIME.current
        assert active is not None and active.resource.attributes["liveview.topic"] == topic
