"""The process's pipeline (otel_liveview/_internal/pipeline.py) in-process: started by configure() or on
first use, exporting to in-suite OTLP receivers on free ports (with its own exporters, or through the
application's SDK providers), flushed, shut down, and handed over a fork; the resource it names the
process with and the exit allowance it spends.

The SDK's global providers are replaced for each test (the module's `metrics` and `_logs` are
patched), so a test sees the same path whatever other tests installed globally."""

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
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME

from otel_liveview._internal import config, launch, pipeline
from otel_liveview._internal.export import ConsoleLogSink, ConsoleMetricSink, OtlpLogSink, OtlpMetricSink
from otel_liveview._internal.otlp import OtlpSender
from otel_liveview._internal.tables import TABLES, Tables
from otel_liveview.broadcaster import ExperimentBroadcaster
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
def providers(monkeypatch: pytest.MonkeyPatch) -> Iterator[Providers]:
    for var in list(os.environ):
        if var.startswith("OTEL_") and var != "OTEL_LIVEVIEW_PROCESS_TREE":
            monkeypatch.delenv(var)
    pipeline.shutdown(timeout=1)
    saved = (pipeline._settings, pipeline.QUEUE.capacity, pipeline.QUEUE.wake_at, pipeline.UPDATES.wake_at)
    TABLES.clear()
    monkeypatch.setattr(pipeline, "_install_exit_hooks", lambda: None)  # nothing left for the real exit
    yield Providers(monkeypatch)
    pipeline.shutdown(timeout=1)
    pipeline._settings, pipeline.QUEUE.capacity, pipeline.QUEUE.wake_at, pipeline.UPDATES.wake_at = saved
    pipeline.UPDATES.capacity = pipeline.QUEUE.capacity
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


# -- its own exporters --------------------------------------------------------------------------------------


def test_configure_exports_metrics_and_events_to_the_endpoint_and_shutdown_stops(
    providers: Providers, http_receiver: Receiver
) -> None:
    started = pipeline.configure(
        endpoint=http_receiver.endpoint,
        protocol="http/protobuf",
        service_name="lifecycle",
        max_queue_size=100,
        max_export_batch_size=30,
        max_series=50,
        max_stream_keys=5,
        **QUICK,
    )
    assert pipeline.active() is started and pipeline.ensure("ignored") is started
    assert started.owns_meter_provider and started.shipper is not None and started.logger_provider is None
    assert [sender.endpoint.signal for sender in started.senders] == ["metrics", "logs"]
    assert [sender.endpoint.url for sender in started.senders] == [
        http_receiver.endpoint + "/v1/metrics",
        http_receiver.endpoint + "/v1/logs",
    ]
    assert len(started.metric_exporters) == 1 and started.meter_provider is started.metric_exporters[0]
    assert started.instance_id == started.resource.attributes[SERVICE_INSTANCE_ID] != ""
    assert (pipeline.QUEUE.capacity, pipeline.UPDATES.capacity) == (100, 100)
    assert (pipeline.QUEUE.wake_at, pipeline.UPDATES.wake_at) == (30, 50)
    assert (TABLES.metric.limit, TABLES.max_stream_keys) == (50, 5)
    assert started.pull is None

    broadcaster = ExperimentBroadcaster(base_topic="lifecycle:test")
    broadcaster.publish_metric_sync("loss", 0.5, step=3)
    broadcaster.publish_status("exp", "running")
    assert pipeline.flush(5)
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
    assert pipeline.shutdown(timeout=2)
    assert pipeline.active() is None
    assert all(sender._aborted for sender in started.senders)
    assert not started.worker._thread.is_alive()  # type: ignore[union-attr]
    assert pipeline.shutdown() is True  # nothing left to stop


def test_a_second_configure_replaces_the_first(providers: Providers, http_receiver: Receiver) -> None:
    first = pipeline.configure(endpoint=http_receiver.endpoint, protocol="http/protobuf", **QUICK)
    second = pipeline.configure(
        endpoint=http_receiver.endpoint, protocol="http/protobuf", topic="again", **QUICK
    )
    assert pipeline.active() is second and second is not first
    assert all(sender._aborted for sender in first.senders)
    assert second.resource.attributes["liveview.topic"] == "again"
    assert pipeline._settings is second.settings


def test_ensure_starts_from_the_environment_with_the_first_topic(
    providers: Providers, http_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline._settings = None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", http_receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "50")
    started = pipeline.ensure("first:topic")
    assert pipeline.ensure("second:topic") is started
    assert started.resource.attributes["liveview.topic"] == "first:topic"
    assert started.settings.metric_export_interval == 0.05
    TABLES.metric.set((("metric", "m"), ("topic", "first:topic")), 1.0)
    assert pipeline.flush(5)
    assert "liveview.metric" in names(http_receiver)


def test_a_dead_collector_makes_flush_false_within_its_timeout(providers: Providers) -> None:
    pipeline.configure(endpoint=f"http://127.0.0.1:{free_port()}", protocol="http/protobuf", **QUICK)
    TABLES.metric.set((("metric", "m"), ("topic", "t")), 1.0)
    started = time.monotonic()
    assert pipeline.flush(1.0) is False
    assert time.monotonic() - started < 3


def test_exporters_none_and_console(providers: Providers, capsys: pytest.CaptureFixture[str]) -> None:
    off = pipeline.configure(metrics_exporter="none", logs_exporter="none", **QUICK)
    assert off.senders == ()
    assert pipeline.flush(2)
    console = pipeline.configure(metrics_exporter="console", logs_exporter="console", **QUICK)
    assert console.senders == ()
    TABLES.metric.set((("metric", "printed"), ("topic", "t")), 1.0)
    assert pipeline.flush(2)
    out = capsys.readouterr().out
    assert "printed" in out
    assert '"name": "otel_liveview"' in out and f'"version": "{pipeline.VERSION}"' in out  # the scope


def test_disabled_starts_nothing(providers: Providers) -> None:
    off = pipeline.configure(disabled=True)
    assert (off.worker, off.meter_provider, off.shipper, off.senders) == (None, None, None, ())
    assert pipeline.flush(1) and pipeline.flush_at_end() and pipeline.shutdown()


def test_pull_mode_serves_and_its_endpoint_closes_at_shutdown(
    providers: Providers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_LIVEVIEW_PROMETHEUS_DIR", str(tmp_path))
    port = free_port()
    started = pipeline.configure(prometheus_port=port, metrics_exporter="none", logs_exporter="none", **QUICK)
    assert started.pull is not None and started.pull.port == port
    snapshot = wait_for(lambda: list(tmp_path.glob("*.json")))
    assert snapshot == [tmp_path / f"{started.instance_id}.json"]
    pipeline.shutdown(timeout=2)
    assert not list(tmp_path.glob("*.json"))


def test_pull_mode_without_prometheus_client_is_a_warning(
    providers: Providers, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "otel_liveview._internal.pull", None)
    monkeypatch.delattr("otel_liveview._internal.pull", raising=False)
    started = pipeline.configure(
        prometheus_port=free_port(), metrics_exporter="none", logs_exporter="none", **QUICK
    )
    assert started.pull is None
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        m.startswith("otel-liveview: pull mode (OTEL_LIVEVIEW_PROMETHEUS_PORT) needs ") for m in messages
    )
    assert any(m.endswith("no /metrics endpoint is served") for m in messages)


# -- the application's providers ------------------------------------------------------------------------------


def test_the_application_s_providers_read_the_tables_and_take_the_records(providers: Providers) -> None:
    reader = InMemoryMetricReader()
    providers.meter = MeterProvider(metric_readers=[reader])
    exporter = InMemoryLogRecordExporter()
    providers.logger = LoggerProvider()
    providers.logger.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    started = pipeline.configure(**QUICK)
    assert not started.owns_meter_provider and started.shipper is None
    assert started.logger_provider is providers.logger and started.metric_exporters == ()
    assert started.senders == ()
    broadcaster = ExperimentBroadcaster(base_topic="app:providers")
    broadcaster.publish_metric_sync("loss", 0.25)
    broadcaster.publish_status("exp", "running")
    assert pipeline.flush(5)
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
    assert pipeline.shutdown(timeout=2)
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
    resource = pipeline.make_resource(settings, None)
    senders: list[OtlpSender] = []
    metric = pipeline.metric_sinks(settings, resource, senders, {"liveview.rank": "0"})
    assert [type(sink) for sink in metric] == [OtlpMetricSink, ConsoleMetricSink]
    logs = pipeline.log_sinks(settings, senders)
    assert [type(sink) for sink in logs] == [ConsoleLogSink, OtlpLogSink]
    assert [sender.endpoint.signal for sender in senders] == ["metrics", "logs"]
    assert senders[0].outage is pipeline._OUTAGE and senders[1].outage is pipeline._OUTAGE
    assert metric[0]._encoder._identity == {"liveview.rank": "0"}  # type: ignore[attr-defined]
    none = config.load(metrics_exporter="none", logs_exporter="none")
    assert (
        pipeline.metric_sinks(none, resource, senders, {}) == [] and pipeline.log_sinks(none, senders) == []
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


def test_the_launch_s_numbers_become_gauges(providers: Providers) -> None:
    pipeline._publish_launch(
        {launch.WORLD_SIZE: 4, launch.ATTRIBUTES["restart_count"]: 2, launch.RUN_ID: "r"}
    )
    assert TABLES.world_size.items() == [((), 4.0)] and TABLES.restart_count.items() == [((), 2.0)]
    assert TABLES.launch_step.enabled
    TABLES.clear()
    pipeline._publish_launch({launch.RANK: 1, launch.WORLD_SIZE: "4"})
    assert TABLES.launch_step.enabled and TABLES.world_size.items() == []
    pipeline._publish_launch({})
    assert not TABLES.launch_step.enabled and TABLES.restart_count.items() == []


# -- the exit allowance ---------------------------------------------------------------------------------


def test_the_exit_allowance_is_spent_by_the_end_of_experiments(
    providers: Providers, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = config.load(exit_timeout=5)
    pipeline.renew_exit_time()
    assert pipeline.exit_time_left(settings) == 5
    pipeline._spend_exit_time(1.5)
    pipeline._spend_exit_time(1.0)
    assert pipeline.exit_time_left(settings) == 2.5
    pipeline._spend_exit_time(10)
    assert pipeline.exit_time_left(settings) == 0
    pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: pid + 1)  # a child starts with all of it
    assert pipeline.exit_time_left(settings) == 5
    pipeline._spend_exit_time(1.0)
    assert pipeline.exit_time_left(settings) == 4
    monkeypatch.setattr(os, "getpid", lambda: pid)
    assert pipeline.exit_time_left(settings) == 5
    pipeline.renew_exit_time()
    assert pipeline.exit_time_left(settings) == 5


def test_flush_at_end_spends_from_the_allowance(providers: Providers, http_receiver: Receiver) -> None:
    assert pipeline.flush_at_end() is True  # no pipeline yet
    pipeline.configure(endpoint=http_receiver.endpoint, protocol="http/protobuf", **QUICK)
    pipeline.renew_exit_time()
    assert pipeline.flush_at_end(timeout=5)
    spent = pipeline._exit_spent
    assert spent[0] == os.getpid() and 0 < spent[1] < 2
    pipeline._spend_exit_time(5)
    TABLES.metric.set((("metric", "m"), ("topic", "t")), 1.0)
    assert pipeline.flush_at_end() is False  # nothing left: not even an attempt


def test_at_exit_shuts_down_within_what_is_left(providers: Providers, http_receiver: Receiver) -> None:
    pipeline._at_exit()  # nothing running: nothing to do
    pipeline.configure(endpoint=http_receiver.endpoint, protocol="http/protobuf", **QUICK)
    TABLES.metric.set((("metric", "at-exit"), ("topic", "t")), 1.0)
    pipeline.renew_exit_time()
    pipeline._at_exit()
    assert pipeline.active() is None
    assert "liveview.metric" in names(http_receiver)


def test_exit_hooks_are_installed_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[Any] = []
    finalized: list[Any] = []
    monkeypatch.setattr(pipeline.atexit, "register", registered.append)
    from multiprocessing import util

    monkeypatch.setattr(
        util, "Finalize", lambda obj, callback, exitpriority: finalized.append((callback, exitpriority))
    )
    monkeypatch.setattr(pipeline, "_exit_hooks_pid", None)
    pipeline._install_exit_hooks()
    pipeline._install_exit_hooks()
    assert registered == [pipeline._at_exit] and finalized == [(pipeline._at_exit, -100)]
    assert pipeline._exit_hooks_pid == os.getpid()


# -- deadlines ----------------------------------------------------------------------------------------------


def test_within_waits_for_the_work_until_the_deadline_only() -> None:
    fake: Any = object()
    done = threading.Event()
    assert pipeline._within(time.monotonic() + 5, lambda p, d: None, fake) is True

    def fail(p: Any, d: float) -> None:
        raise RuntimeError("broken exporter")

    assert pipeline._within(time.monotonic() + 5, fail, fake) is False
    started = time.monotonic()
    assert pipeline._within(started + 0.2, lambda p, d: done.wait(5), fake) is False
    assert time.monotonic() - started < 1
    done.set()
    assert pipeline._quietly(lambda p, d: None, fake, 0.0) is True
    assert pipeline._quietly(fail, fake, 0.0) is False


# -- fork -----------------------------------------------------------------------------------------------------


def test_a_fork_pauses_the_export_and_the_child_starts_over(
    providers: Providers, http_receiver: Receiver
) -> None:
    parent = pipeline.configure(endpoint=http_receiver.endpoint, protocol="http/protobuf", **QUICK)
    assert pipeline.FORK_WAIT == 2.0
    pipeline._before_fork()
    assert pipeline._paused is parent.worker
    pipeline._after_fork_in_parent()
    assert pipeline._paused is None
    pipeline._after_fork_in_parent()  # not paused: nothing to resume
    TABLES.metric.set((("metric", "m"), ("topic", "t")), 1.0)
    assert pipeline.flush(5)  # the worker runs again

    pipeline._before_fork()
    pipeline._after_fork_in_child()  # what a child runs: the parent's pipeline is stale
    assert pipeline._paused is None and pipeline.active() is None
    assert pipeline._stale == [parent] and pipeline._exit_hooks_pid is None
    assert TABLES.metric.items() == [] and len(pipeline.QUEUE) == 0
    child = pipeline.ensure()
    assert child is not parent and pipeline._stale == []
    assert child.instance_id != parent.instance_id
    parent.worker.resume()  # type: ignore[union-attr]
    parent.worker.stop(1)  # type: ignore[union-attr]


def test_a_child_releases_the_pull_port_it_inherited(
    providers: Providers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_LIVEVIEW_PROMETHEUS_DIR", str(tmp_path))
    parent = pipeline.configure(
        prometheus_port=free_port(), metrics_exporter="none", logs_exporter="none", **QUICK
    )
    released: list[bool] = []
    monkeypatch.setattr(parent.pull, "release_after_fork", lambda: released.append(True))
    pipeline._after_fork_in_child()
    assert released == [True]
    parent.pull.close()
    parent.worker.stop(1)  # type: ignore[union-attr]
    pipeline._stale.clear()


def test_a_disabled_pipeline_is_not_paused_by_a_fork(providers: Providers) -> None:
    pipeline.configure(disabled=True)
    pipeline._before_fork()
    assert pipeline._paused is None


def test_a_stale_pipeline_s_own_provider_is_shut_down_quickly() -> None:
    calls: list[Any] = []
    provider = SimpleNamespace(shutdown=lambda timeout_millis: calls.append(timeout_millis))
    pipeline._quietly_shutdown(SimpleNamespace(owns_meter_provider=True, meter_provider=provider))  # type: ignore[arg-type]
    assert calls == [1000]
    pipeline._quietly_shutdown(SimpleNamespace(owns_meter_provider=False, meter_provider=provider))  # type: ignore[arg-type]
    assert calls == [1000]  # the application's provider is its own business


def test_at_exit_gives_the_shutdown_what_is_left_of_the_allowance(
    providers: Providers, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.configure(metrics_exporter="none", logs_exporter="none", **QUICK)
    pipeline.renew_exit_time()
    pipeline._spend_exit_time(0.5)
    timeouts: list[float | None] = []
    monkeypatch.setattr(pipeline, "shutdown", lambda timeout=None: timeouts.append(timeout))
    pipeline._at_exit()
    assert timeouts == [1.5]


def test_the_tree_s_outage_markers_go_at_the_very_end_of_the_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    from multiprocessing import util

    finalized: list[tuple[Any, Any, int]] = []
    monkeypatch.setattr(
        util, "Finalize", lambda obj, callback, exitpriority: finalized.append((obj, callback, exitpriority))
    )
    pipeline._remove_outage_markers_at_exit()
    assert finalized == [(None, pipeline._OUTAGE.forget, -100)]
    registered: list[Any] = []
    monkeypatch.setattr(util, "Finalize", None)  # multiprocessing unusable: atexit instead
    monkeypatch.setattr(pipeline.atexit, "register", registered.append)
    pipeline._remove_outage_markers_at_exit()
    assert registered == [pipeline._OUTAGE.forget]
