"""The process's pipeline in-process: a `Runtime` (otel_liveview/_internal/runtime.py) starts one
(`pipeline.Pipeline.build`) by configure() or on first use, exporting to in-suite OTLP receivers on
free ports (with its own exporters, or through the application's SDK providers), flushes it, shuts
it down and hands it over a fork; the resource it names the process with and the exit allowance it
spends.

Each test runs a `Runtime` of its own (the broadcasters publish through it), so the process's RUNTIME
is left alone. The SDK's global providers are replaced for each test (pipeline's `metrics` and
`_logs` are patched), so a test sees the same path whatever other tests installed globally."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource

from otel_liveview import broadcaster as broadcaster_module
from otel_liveview._internal import config, pipeline, runtime
from otel_liveview._internal.otlp import OtlpSender, Outage
from otel_liveview._internal.runtime import QUEUE, UPDATES, Runtime
from otel_liveview._internal.sinks import (
    ConsoleLogSink,
    ConsoleMetricSink,
    OtlpLogSink,
    OtlpMetricSink,
    SpoolLogSink,
    SpoolMetricSink,
)
from otel_liveview._internal.tables import TABLES, Tables
from otel_liveview.broadcaster import ExperimentBroadcaster
from otel_liveview.names import RANK, RESTART_COUNT, RUN_ID, WORLD_SIZE
from tests.support import free_port
from tests.support.receiver import Receiver

QUICK = {"metric_export_interval": 0.05, "schedule_delay": 0.01, "exit_timeout": 2.0}


def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.01)
    return result


class Providers:
    """What pipeline sees as the SDK's global providers."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.meter: Any = NoOpMeterProvider()
        self.logger: Any = None
        monkeypatch.setattr(pipeline, "metrics", SimpleNamespace(get_meter_provider=lambda: self.meter))
        monkeypatch.setattr(pipeline, "_logs", SimpleNamespace(get_logger_provider=lambda: self.logger))


@pytest.fixture
def providers(monkeypatch: pytest.MonkeyPatch) -> Providers:
    for var in list(os.environ):
        if var.startswith("OTEL_") and var != "OTEL_LIVEVIEW_PROCESS_TREE":
            monkeypatch.delenv(var)
    return Providers(monkeypatch)


@pytest.fixture
def rt(providers: Providers, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """A runtime of its own, which the broadcasters publish through; the process's is stopped first,
    so that its export thread does not take from the queues they share."""
    runtime.RUNTIME.shutdown(timeout=1)
    saved = (QUEUE.capacity, QUEUE.wake_at, UPDATES.wake_at)
    TABLES.clear()
    own = Runtime()
    monkeypatch.setattr(own, "_install_exit_hooks", lambda: None)  # nothing left for the real exit
    monkeypatch.setattr(broadcaster_module, "RUNTIME", own)
    yield own
    own.shutdown(timeout=1)
    QUEUE.capacity, QUEUE.wake_at, UPDATES.wake_at = saved
    UPDATES.capacity = QUEUE.capacity
    TABLES.resize(config.Settings.max_series, config.Settings.max_stream_keys)
    TABLES.clear()


def names(receiver: Receiver) -> set[str]:
    return {
        metric.name
        for request in list(receiver.metrics)
        for resource_metrics in request.resource_metrics
        for scope in resource_metrics.scope_metrics
        for metric in scope.metrics
    }


def resource_of(receiver: Receiver) -> dict[str, Any]:
    request = receiver.metrics[0]
    return {kv.key: kv.value for kv in request.resource_metrics[0].resource.attributes}


class FakePipeline:
    """What the runtime asks of a pipeline when it flushes it and shuts it down."""

    def __init__(self, exit_timeout: float = 3.0, answer: bool = True) -> None:
        self.settings = config.load(exit_timeout=exit_timeout)
        self.answer = answer
        self.flushes: list[float] = []
        self.shutdowns: list[float] = []

    def flush(self, timeout: float) -> bool:
        self.flushes.append(timeout)
        return self.answer

    def shutdown(self, timeout: float) -> bool:
        self.shutdowns.append(timeout)
        return self.answer


# -- its own exporters --------------------------------------------------------------------------------------


def test_configure_exports_metrics_and_events_to_the_endpoint_and_shutdown_stops(
    rt: Runtime, http_receiver: Receiver
) -> None:
    started = rt.configure(
        endpoint=http_receiver.endpoint,
        protocol="http/protobuf",
        service_name="lifecycle",
        max_queue_size=100,
        max_export_batch_size=30,
        max_series=50,
        max_stream_keys=5,
        **QUICK,
    )
    assert rt.current is started and rt.ensure("ignored") is started
    assert started.owns_meter_provider and started.shipper is not None and started.logger_provider is None
    assert [sender.endpoint.signal for sender in started.senders] == ["metrics", "logs"]
    assert [sender.endpoint.url for sender in started.senders] == [
        http_receiver.endpoint + "/v1/metrics",
        http_receiver.endpoint + "/v1/logs",
    ]
    assert all(sender.outage is rt.outage for sender in started.senders)
    assert len(started.metric_exports) == 1 and started.meter_provider is started.metric_exports[0]
    assert started.instance_id == started.resource.attributes[SERVICE_INSTANCE_ID] != ""
    assert (QUEUE.capacity, UPDATES.capacity) == (100, 100)
    assert (QUEUE.wake_at, UPDATES.wake_at) == (30, 50)
    assert (TABLES.metric.limit, TABLES.max_stream_keys) == (50, 5)
    assert started.pull is None and started.spooler is None

    broadcaster = ExperimentBroadcaster(base_topic="lifecycle:test")
    broadcaster.publish_metric_sync("loss", 0.5, step=3)
    broadcaster.publish_status("exp", "running")
    assert rt.flush(5)
    assert {"liveview.metric", "liveview.metric.step", "liveview.experiment.status"} <= names(http_receiver)
    assert resource_of(http_receiver)[SERVICE_NAME].string_value == "lifecycle"
    scopes = {
        (scope.scope.name, scope.scope.version)
        for request in http_receiver.metrics
        for resource_metrics in request.resource_metrics
        for scope in resource_metrics.scope_metrics
    }
    assert scopes == {("otel_liveview", pipeline.VERSION)}
    assert http_receiver.logs, "the status event"
    assert rt.shutdown(timeout=2)
    assert rt.current is None
    assert all(sender._aborted for sender in started.senders)
    assert not started.worker._thread.is_alive()  # type: ignore[union-attr]
    assert rt.shutdown() is True  # nothing left to stop
    assert rt.flush(1) is True


def test_a_second_configure_replaces_the_first(rt: Runtime, http_receiver: Receiver) -> None:
    first = rt.configure(endpoint=http_receiver.endpoint, protocol="http/protobuf", **QUICK)
    second = rt.configure(endpoint=http_receiver.endpoint, protocol="http/protobuf", topic="again", **QUICK)
    assert rt.current is second and second is not first
    assert all(sender._aborted for sender in first.senders)
    assert second.resource.attributes["liveview.topic"] == "again"
    assert rt._settings is second.settings


def test_ensure_starts_from_the_environment_with_the_first_topic(
    rt: Runtime, http_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert rt._settings is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", http_receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "50")
    started = rt.ensure("first:topic")
    assert rt.ensure("second:topic") is started
    assert started.resource.attributes["liveview.topic"] == "first:topic"
    assert started.settings.metric_export_interval == 0.05
    assert rt._settings is None  # the environment is read again at the next start
    TABLES.metric.set((("metric", "m"), ("topic", "first:topic")), 1.0)
    assert rt.flush(5)
    assert "liveview.metric" in names(http_receiver)


def test_ensure_after_a_shutdown_starts_again_with_the_configured_settings(rt: Runtime) -> None:
    first = rt.configure(metrics_exporter="none", logs_exporter="none", topic="kept", **QUICK)
    assert rt.shutdown(timeout=1) and rt.current is None
    again = rt.ensure("ignored")
    assert again is not first and again.settings is first.settings
    assert again.resource.attributes["liveview.topic"] == "kept"


def test_a_dead_collector_makes_flush_false_within_its_timeout(rt: Runtime) -> None:
    rt.configure(endpoint=f"http://127.0.0.1:{free_port()}", protocol="http/protobuf", **QUICK)
    TABLES.metric.set((("metric", "m"), ("topic", "t")), 1.0)
    started = time.monotonic()
    assert rt.flush(1.0) is False
    assert time.monotonic() - started < 3


def test_exporters_none_and_console(rt: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    off = rt.configure(metrics_exporter="none", logs_exporter="none", **QUICK)
    assert off.senders == ()
    assert rt.flush(2)
    console = rt.configure(metrics_exporter="console", logs_exporter="console", **QUICK)
    assert console.senders == ()
    TABLES.metric.set((("metric", "printed"), ("topic", "t")), 1.0)
    assert rt.flush(2)
    out = capsys.readouterr().out
    assert "printed" in out
    assert '"name": "otel_liveview"' in out and f'"version": "{pipeline.VERSION}"' in out  # the scope


def test_disabled_starts_nothing(rt: Runtime) -> None:
    off = rt.configure(disabled=True)
    assert (off.worker, off.meter_provider, off.shipper, off.senders) == (None, None, None, ())
    assert rt.flush(1) and rt.flush_at_end() and rt.shutdown()


def test_exit_hooks_are_installed_by_a_start_that_exports_only(
    providers: Providers, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = Runtime()
    installed: list[bool] = []
    monkeypatch.setattr(own, "_install_exit_hooks", lambda: installed.append(True))
    own.configure(disabled=True)
    assert installed == []
    own.configure(metrics_exporter="none", logs_exporter="none", **QUICK)
    assert installed == [True]
    assert own.shutdown(timeout=1)


def test_pull_mode_serves_and_its_endpoint_closes_at_shutdown(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_LIVEVIEW_PROMETHEUS_DIR", str(tmp_path))
    port = free_port()
    started = rt.configure(
        prometheus_port=port,
        metrics_exporter="none",
        logs_exporter="none",
        resource_attributes={RANK: "2"},
        **QUICK,
    )
    assert started.pull is not None and started.pull.port == port
    assert started.pull.identity == {RANK: "2"}  # the launch's identity on every series
    snapshot = wait_for(lambda: list(tmp_path.glob("*.json")))
    assert snapshot == [tmp_path / f"{started.instance_id}.json"]
    rt.shutdown(timeout=2)
    assert not list(tmp_path.glob("*.json"))


def test_pull_mode_without_prometheus_client_is_a_warning(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "otel_liveview._internal.pull", None)
    monkeypatch.delattr("otel_liveview._internal.pull", raising=False)
    started = rt.configure(
        prometheus_port=free_port(), metrics_exporter="none", logs_exporter="none", **QUICK
    )
    assert started.pull is None
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        "otel-liveview: pull mode (OTEL_LIVEVIEW_PROMETHEUS_PORT) needs otel_liveview._internal.pull: "
        "pip install 'otel-liveview[pull]'; no /metrics endpoint is served"
    ) in messages


# -- the application's providers ------------------------------------------------------------------------------


def test_the_application_s_providers_read_the_tables_and_take_the_records(
    rt: Runtime, providers: Providers
) -> None:
    reader = InMemoryMetricReader()
    providers.meter = MeterProvider(metric_readers=[reader])
    exporter = InMemoryLogRecordExporter()
    providers.logger = LoggerProvider()
    providers.logger.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    started = rt.configure(**QUICK)
    assert not started.owns_meter_provider and started.shipper is None
    assert started.logger_provider is providers.logger and started.metric_exports == ()
    assert started.senders == ()
    broadcaster = ExperimentBroadcaster(base_topic="app:providers")
    broadcaster.publish_metric_sync("loss", 0.25)
    broadcaster.publish_status("exp", "running")
    assert rt.flush(5)
    data = reader.get_metrics_data()
    found = {
        (metric.name, point.attributes.get("metric"), point.value)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        if (sm.scope.name, sm.scope.version) == ("otel_liveview", pipeline.VERSION)
        for metric in sm.metrics
        for point in metric.data.data_points
    }
    assert ("liveview.metric", "loss", 0.25) in found
    assert wait_for(lambda: exporter.get_finished_logs())
    assert rt.shutdown(timeout=2)
    assert reader.get_metrics_data() is not None  # the application's provider is flushed, not shut down


def test_register_instruments_reports_every_table_with_the_identity() -> None:
    tables = Tables()
    tables.metric.set((("metric", "m"), ("topic", "t")), 2.0)
    tables.published_counter("log").add(3)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    pipeline.register_instruments(provider.get_meter("x"), tables, identity={"liveview.rank": "1"})
    metrics = {
        metric.name: metric
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    (point,) = metrics["liveview.metric"].data.data_points
    assert (
        dict(point.attributes) == {"metric": "m", "topic": "t", "liveview.rank": "1"} and point.value == 2.0
    )
    assert metrics["liveview.metric"].description == tables.description("liveview.metric")
    (count,) = metrics["liveview.published"].data.data_points
    assert dict(count.attributes) == {"kind": "log", "liveview.rank": "1"} and count.value == 3
    assert metrics["liveview.published"].data.is_monotonic
    provider.shutdown()


def test_an_inherited_callback_reports_nothing_in_a_forked_child(monkeypatch: pytest.MonkeyPatch) -> None:
    report = pipeline._report(lambda: [((("k", "v"),), 1.0)], {})
    (observation,) = report(None)  # type: ignore[arg-type]
    assert (observation.value, dict(observation.attributes)) == (1.0, {"k": "v"})
    with_identity = pipeline._report(lambda: [((("k", "v"),), 1.0)], {"liveview.run.id": "r"})
    assert dict(with_identity(None)[0].attributes) == {"k": "v", "liveview.run.id": "r"}  # type: ignore[arg-type]
    pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: pid + 1)
    assert report(None) == [] and with_identity(None) == []  # type: ignore[arg-type]


# -- sinks ----------------------------------------------------------------------------------------------------


def test_the_sinks_the_exporter_settings_name(providers: Providers) -> None:
    settings = config.load(
        metrics_exporter="otlp,console", logs_exporter="console,otlp", protocol="http/protobuf"
    )
    schema = "https://opentelemetry.io/schemas/1.21.0"
    resource = Resource(pipeline.make_resource(settings, None).attributes, schema_url=schema)
    senders: list[OtlpSender] = []
    outage = Outage()
    metric = pipeline.metric_sinks(settings, resource, senders, {"liveview.rank": "0"}, outage)
    assert [type(sink) for sink in metric] == [OtlpMetricSink, ConsoleMetricSink]
    logs = pipeline.log_sinks(settings, senders, outage)
    assert [type(sink) for sink in logs] == [ConsoleLogSink, OtlpLogSink]
    assert [sender.endpoint.signal for sender in senders] == ["metrics", "logs"]
    assert senders[0].outage is outage and senders[1].outage is outage
    assert metric[0]._encoder._identity == {"liveview.rank": "0"}  # type: ignore[attr-defined]
    assert metric[1]._identity == {"liveview.rank": "0"}  # type: ignore[attr-defined]
    assert schema.encode() in metric[0]._encoder._resource_schema  # type: ignore[attr-defined]
    # With a spool the OTLP sinks write to it, and open no connection: the spool's thread sends.
    spooler: Any = object()
    opened = len(senders)
    spooled = pipeline.metric_sinks(settings, resource, senders, {"liveview.rank": "0"}, outage, spooler)
    assert [type(sink) for sink in spooled] == [SpoolMetricSink, ConsoleMetricSink]
    assert spooled[0]._spooler is spooler  # type: ignore[attr-defined]
    assert spooled[0]._encoder._identity == {"liveview.rank": "0"}  # type: ignore[attr-defined]
    spooled_logs = pipeline.log_sinks(settings, senders, outage, spooler)
    assert [type(sink) for sink in spooled_logs] == [ConsoleLogSink, SpoolLogSink]
    assert spooled_logs[1]._spooler is spooler  # type: ignore[attr-defined]
    assert len(senders) == opened
    none = config.load(metrics_exporter="none", logs_exporter="none")
    assert (
        pipeline.metric_sinks(none, resource, senders, {}, outage) == []
        and pipeline.log_sinks(none, senders, outage) == []
    )
    for sender in senders:
        sender.close()


# -- the resource ---------------------------------------------------------------------------------------------


def test_the_resource_names_the_process(providers: Providers, monkeypatch: pytest.MonkeyPatch) -> None:
    resource = pipeline.make_resource(config.load(), "a:topic").attributes
    assert resource[SERVICE_NAME] == "otel-liveview"
    assert resource["liveview.topic"] == "a:topic"
    assert resource["process.pid"] == os.getpid()
    assert resource["host.name"] == __import__("socket").gethostname()
    assert uuid.UUID(str(resource[SERVICE_INSTANCE_ID]))
    other = pipeline.make_resource(config.load(), None).attributes
    assert other[SERVICE_INSTANCE_ID] != resource[SERVICE_INSTANCE_ID] and "liveview.topic" not in other
    assert pipeline.make_resource(config.load(topic="set"), "first").attributes["liveview.topic"] == "set"
    configured = pipeline.make_resource(
        config.load(service_name="mine", resource_attributes={"team": "ml"}), None
    )
    assert (configured.attributes[SERVICE_NAME], configured.attributes["team"]) == ("mine", "ml")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    assert pipeline.make_resource(config.load(), None).attributes[SERVICE_NAME] == "from-env"
    assert pipeline.make_resource(config.load(service_name="wins"), None).attributes[SERVICE_NAME] == "wins"
    monkeypatch.delenv("OTEL_SERVICE_NAME")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=a, service.name = attrs ,x=1")
    assert pipeline.make_resource(config.load(), None).attributes[SERVICE_NAME] == "attrs"


@pytest.mark.parametrize(
    ("service_name", "attributes", "expected"),
    [
        ("", "", False),
        ("svc", "", True),
        ("", "service.name=x", True),
        ("", "a=1, service.name =x", True),
        ("", "service.namespace=x", False),
        ("", "a=service.name", False),
    ],
)
def test_a_service_name_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, service_name: str, attributes: str, expected: bool
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", service_name)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", attributes)
    assert pipeline._service_name_from_env() is expected


def test_the_launch_s_numbers_become_gauges() -> None:
    tables = Tables()
    pipeline._publish_launch({WORLD_SIZE: 4, RESTART_COUNT: 2, RUN_ID: "r"}, tables)
    assert tables.world_size.items() == [((), 4.0)] and tables.restart_count.items() == [((), 2.0)]
    assert tables.launch_step.enabled
    tables.clear()
    pipeline._publish_launch({RANK: 1, WORLD_SIZE: "4"}, tables)
    assert tables.launch_step.enabled and tables.world_size.items() == []
    pipeline._publish_launch({}, tables)
    assert not tables.launch_step.enabled and tables.restart_count.items() == []


# -- the exit allowance ---------------------------------------------------------------------------------


def test_the_exit_allowance_is_spent_by_the_end_of_experiments(monkeypatch: pytest.MonkeyPatch) -> None:
    own = Runtime()
    settings = config.load(exit_timeout=5)
    assert own.exit_time_left(settings) == 5  # nothing spent yet
    own.renew_exit_time()
    assert own.exit_time_left(settings) == 5
    own._spend_exit_time(1.5)
    own._spend_exit_time(1.0)
    assert own.exit_time_left(settings) == 2.5
    own._spend_exit_time(10)
    assert own.exit_time_left(settings) == 0
    pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: pid + 1)  # a child starts with all of it
    assert own.exit_time_left(settings) == 5
    own._spend_exit_time(1.0)
    assert own.exit_time_left(settings) == 4
    monkeypatch.setattr(os, "getpid", lambda: pid)
    assert own.exit_time_left(settings) == 5
    own.renew_exit_time()
    assert own.exit_time_left(settings) == 5


def test_flush_at_end_spends_from_the_allowance(rt: Runtime, http_receiver: Receiver) -> None:
    assert rt.flush_at_end() is True  # no pipeline yet
    rt.configure(endpoint=http_receiver.endpoint, protocol="http/protobuf", **QUICK)
    rt.renew_exit_time()
    assert rt.flush_at_end(timeout=5)
    spent = rt._exit_spent
    assert spent[0] == os.getpid() and 0 < spent[1] < 2
    rt._spend_exit_time(5)
    TABLES.metric.set((("metric", "m"), ("topic", "t")), 1.0)
    assert rt.flush_at_end() is False  # nothing left: not even an attempt


def test_flush_at_end_waits_no_longer_than_its_timeout_or_what_is_left() -> None:
    own = Runtime()
    own.current = FakePipeline(exit_timeout=3.0, answer=False)  # type: ignore[assignment]
    own.renew_exit_time()
    assert own.flush_at_end() is False  # the pipeline's answer
    own._exit_spent = (os.getpid(), 1.0)
    own.flush_at_end(timeout=5.0)
    own.flush_at_end(timeout=0.5)
    assert own.current.flushes == [3.0, 2.0, 0.5]  # type: ignore[union-attr]


def test_shutdown_gives_the_pipeline_its_exit_timeout_unless_told() -> None:
    own = Runtime()
    fake = FakePipeline(exit_timeout=3.0, answer=False)
    own.current = fake  # type: ignore[assignment]
    assert own.shutdown() is False and own.current is None
    own.current = fake  # type: ignore[assignment]
    own.shutdown(timeout=0.25)
    own.current = fake  # type: ignore[assignment]
    assert own.flush(0.75) is False
    assert fake.shutdowns == [3.0, 0.25] and fake.flushes == [0.75]


def test_at_exit_shuts_down_within_what_is_left(rt: Runtime, http_receiver: Receiver) -> None:
    rt.at_exit()  # nothing running: nothing to do
    rt.configure(endpoint=http_receiver.endpoint, protocol="http/protobuf", **QUICK)
    TABLES.metric.set((("metric", "at-exit"), ("topic", "t")), 1.0)
    rt.renew_exit_time()
    rt.at_exit()
    assert rt.current is None
    assert "liveview.metric" in names(http_receiver)


def test_exit_hooks_are_installed_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[Any] = []
    finalized: list[Any] = []
    monkeypatch.setattr(runtime.atexit, "register", registered.append)
    from multiprocessing import util

    monkeypatch.setattr(
        util, "Finalize", lambda obj, callback, exitpriority: finalized.append((obj, callback, exitpriority))
    )
    own = Runtime()
    assert own._exit_hooks_pid is None
    own._install_exit_hooks()
    own._install_exit_hooks()
    assert registered == [own.at_exit] and finalized == [(None, own.at_exit, -100)]
    assert own._exit_hooks_pid == os.getpid()
    monkeypatch.setattr(util, "Finalize", None)  # multiprocessing unusable: atexit alone
    own._exit_hooks_pid = None
    own._install_exit_hooks()
    assert registered == [own.at_exit, own.at_exit] and len(finalized) == 1


def test_at_exit_gives_the_shutdown_what_is_left_of_the_allowance(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt.configure(metrics_exporter="none", logs_exporter="none", **QUICK)
    rt.renew_exit_time()
    rt._spend_exit_time(0.5)
    timeouts: list[float | None] = []
    real = rt.shutdown
    monkeypatch.setattr(rt, "shutdown", lambda timeout=None: timeouts.append(timeout))
    rt.at_exit()
    assert timeouts == [1.5]
    real(timeout=1)


def test_the_tree_s_outage_markers_go_at_the_very_end_of_the_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    from multiprocessing import util

    finalized: list[tuple[Any, Any, int]] = []
    monkeypatch.setattr(
        util, "Finalize", lambda obj, callback, exitpriority: finalized.append((obj, callback, exitpriority))
    )
    runtime._remove_outage_markers_at_exit()
    assert finalized == [(None, runtime.RUNTIME.outage.forget, -100)]
    registered: list[Any] = []
    monkeypatch.setattr(util, "Finalize", None)  # multiprocessing unusable: atexit instead
    monkeypatch.setattr(runtime.atexit, "register", registered.append)
    runtime._remove_outage_markers_at_exit()
    assert registered == [runtime.RUNTIME.outage.forget]


def test_the_module_functions_are_the_process_runtime_s() -> None:
    assert runtime.configure == runtime.RUNTIME.configure
    assert runtime.flush == runtime.RUNTIME.flush and runtime.shutdown == runtime.RUNTIME.shutdown
    assert UPDATES.wake is QUEUE.wake  # the export thread sleeps on one event for both queues


# -- fork -----------------------------------------------------------------------------------------------------


def test_a_fork_pauses_the_export_and_the_child_starts_over(rt: Runtime, http_receiver: Receiver) -> None:
    parent = rt.configure(endpoint=http_receiver.endpoint, protocol="http/protobuf", **QUICK)
    assert runtime.FORK_WAIT == 2.0
    rt.before_fork()
    assert rt._paused is parent
    rt.after_fork_in_parent()
    assert rt._paused is None
    rt.after_fork_in_parent()  # not paused: nothing to resume
    TABLES.metric.set((("metric", "m"), ("topic", "t")), 1.0)
    assert rt.flush(5)  # the worker runs again

    rt.before_fork()
    rt._exit_hooks_pid = os.getpid()
    lock = rt._lock
    rt.after_fork_in_child()  # what a child runs: the parent's pipeline is carried over, to be stopped
    assert rt._paused is None and rt.current is None and rt._lock is not lock
    assert rt._inherited == [parent] and rt._exit_hooks_pid is None
    assert TABLES.metric.items() == [] and len(QUEUE) == 0
    assert UPDATES.wake is QUEUE.wake  # the queues, emptied, still wake the export thread as one
    child = rt.ensure()
    assert child is not parent and rt._inherited == []
    assert child.instance_id != parent.instance_id
    parent.resume()
    parent.worker.stop(1)  # type: ignore[union-attr]


def test_the_next_start_stops_what_a_child_inherited(
    providers: Providers, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = Runtime()
    monkeypatch.setattr(own, "_install_exit_hooks", lambda: None)
    stopped = threading.Event()
    own._inherited.append(SimpleNamespace(stop_inherited=stopped.set))  # type: ignore[arg-type]
    own.ensure()
    assert stopped.wait(5) and own._inherited == []
    own.shutdown(timeout=1)


def test_a_child_releases_the_pull_port_and_the_spool_it_inherited(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_LIVEVIEW_PROMETHEUS_DIR", str(tmp_path))
    parent = rt.configure(prometheus_port=free_port(), metrics_exporter="none", logs_exporter="none", **QUICK)
    released: list[str] = []
    monkeypatch.setattr(parent.pull, "release_after_fork", lambda: released.append("pull"))
    monkeypatch.setattr(parent, "release_after_fork", lambda: released.append("pipeline"))
    rt.after_fork_in_child()
    assert released == ["pipeline", "pull"]
    parent.pull.close()  # type: ignore[union-attr]
    parent.worker.stop(1)  # type: ignore[union-attr]
    rt._inherited.clear()


def test_a_pipeline_lets_go_of_its_spool_after_a_fork() -> None:
    calls: list[bool] = []
    spooled = SimpleNamespace(
        spooler=SimpleNamespace(spool=SimpleNamespace(after_fork=lambda: calls.append(True)))
    )
    pipeline.Pipeline.release_after_fork(spooled)  # type: ignore[arg-type]
    assert calls == [True]
    pipeline.Pipeline.release_after_fork(SimpleNamespace(spooler=None))  # type: ignore[arg-type]  # no spool
    assert calls == [True]


def test_a_disabled_pipeline_is_not_paused_by_a_fork(rt: Runtime) -> None:
    rt.before_fork()  # nothing running
    assert rt._paused is None
    rt.configure(disabled=True)
    rt.before_fork()
    assert rt._paused is None


def test_an_inherited_pipeline_s_own_provider_is_shut_down_quickly() -> None:
    calls: list[Any] = []
    provider = SimpleNamespace(shutdown=lambda timeout_millis: calls.append(timeout_millis))
    pipeline.Pipeline.stop_inherited(SimpleNamespace(owns_meter_provider=True, meter_provider=provider))  # type: ignore[arg-type]
    assert calls == [1000]
    pipeline.Pipeline.stop_inherited(SimpleNamespace(owns_meter_provider=False, meter_provider=provider))  # type: ignore[arg-type]
    assert calls == [1000]  # the application's provider is its own business

    def broken(timeout_millis: int) -> None:
        raise RuntimeError("the exporter is gone")

    failing = SimpleNamespace(owns_meter_provider=True, meter_provider=SimpleNamespace(shutdown=broken))
    pipeline.Pipeline.stop_inherited(failing)  # type: ignore[arg-type]  # never raises
