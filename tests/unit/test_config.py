"""Settings: keyword arguments, then OTEL_* variables as the OpenTelemetry spec defines them."""

from __future__ import annotations

import pytest

from otel_liveview import config, otlp


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config.load().metric_export_interval == 1.0  # a live view, not the SDK's 60 s
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "250")
    monkeypatch.setenv("OTEL_BLRP_MAX_QUEUE_SIZE", "100")
    monkeypatch.setenv("OTEL_LIVEVIEW_METRIC_EVENTS", "off")
    settings = config.load()
    assert (settings.metric_export_interval, settings.max_queue_size, settings.metric_events) == (
        0.25,
        100,
        False,
    )
    assert config.load(metric_export_interval=2.0).metric_export_interval == 2.0  # arguments win


def test_bad_settings_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError, match="unknown setting"):
        config.load(colour="red")
    monkeypatch.setenv("OTEL_BLRP_MAX_QUEUE_SIZE", "lots")
    with pytest.raises(ValueError, match="OTEL_BLRP_MAX_QUEUE_SIZE='lots' is not a number"):
        config.load()
    monkeypatch.delenv("OTEL_BLRP_MAX_QUEUE_SIZE")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ValueError, match="unsupported OTLP protocol"):
        config.protocol_for(config.load(), "logs")


def test_protocol_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc")
    settings = config.load()
    assert config.protocol_for(settings, "metrics") == "http/protobuf"
    assert config.protocol_for(settings, "logs") == "grpc"
    assert config.protocol_for(config.load(protocol="http/protobuf"), "logs") == "http/protobuf"


def test_export_timeout_is_read_in_milliseconds_as_the_spec_says(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config.export_timeout("logs") is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "500")
    assert config.export_timeout("logs") == 2.5
    assert config.export_timeout("metrics") == 0.5
    assert otlp.resolve(config.load(), "logs").timeout == 2.5
    assert otlp.resolve(config.load(), "metrics").timeout == 0.5
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TIMEOUT")
    assert otlp.resolve(config.load(), "logs").timeout == 10.0  # the spec's default, 10,000 ms


def test_explicit_http_endpoint_gets_the_signal_path() -> None:
    settings = config.load(endpoint="http://collector:4318/", protocol="http/protobuf")
    assert otlp.resolve(settings, "logs").url == "http://collector:4318/v1/logs"
    assert otlp.resolve(settings, "metrics").url == "http://collector:4318/v1/metrics"


def test_endpoint_variables_follow_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://gateway.example:4318/")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "https://logs.example/custom/path")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc,X-Tenant=lab")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-only=metrics")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    settings = config.load()
    logs, metrics = otlp.resolve(settings, "logs"), otlp.resolve(settings, "metrics")
    assert logs.url == "https://logs.example/custom/path"  # a signal's own endpoint is used as given
    assert metrics.url == "https://gateway.example:4318/v1/metrics"  # the base one gets the path
    assert logs.headers == {"authorization": "Bearer abc", "x-tenant": "lab"}
    assert metrics.headers == {"x-only": "metrics"}  # the signal's variable replaces the general one
    assert (logs.compression, metrics.insecure) == ("gzip", False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    grpc = otlp.resolve(config.load(), "metrics")
    assert (grpc.url, grpc.insecure) == ("collector:4317", True)
    assert otlp.resolve(config.load(endpoint="http://c:4317"), "metrics").insecure is True
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli")
    with pytest.raises(ValueError, match="unsupported OTLP compression 'brotli'"):
        otlp.resolve(config.load(), "logs")


def test_exporter_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (config.load().metrics_exporter, config.load().logs_exporter) == (("otlp",), ("otlp",))
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", " console , otlp,console")
    settings = config.load()
    assert settings.metrics_exporter == ()
    assert settings.logs_exporter == ("console", "otlp")  # a comma list, duplicates once
    assert config.load(metrics_exporter="console").metrics_exporter == ("console",)  # arguments win
    assert config.load(logs_exporter=["none"]).logs_exporter == ()
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "zipkin")
    with pytest.raises(ValueError, match=r"OTEL_METRICS_EXPORTER: unknown exporter\(s\) zipkin"):
        config.load()
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none,otlp")
    with pytest.raises(ValueError, match="'none' cannot be combined"):
        config.load()
    monkeypatch.delenv("OTEL_METRICS_EXPORTER")
    assert config.load().disabled is False
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert config.load().disabled is True
