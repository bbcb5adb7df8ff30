"""Settings: keyword arguments, then OTEL_* variables as the OpenTelemetry spec defines them."""

from __future__ import annotations

import pytest

from otel_liveview import config, pipeline


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
    exporter = pipeline.log_exporter(config.load(protocol="http/protobuf"))
    assert exporter._client._timeout == 2.5  # seconds, as opentelemetry-python's exporters take it


def test_explicit_http_endpoint_gets_the_signal_path() -> None:
    settings = config.load(endpoint="http://collector:4318/", protocol="http/protobuf")
    assert pipeline.log_exporter(settings)._endpoint == "http://collector:4318/v1/logs"
    assert pipeline.metric_exporter(settings)._endpoint == "http://collector:4318/v1/metrics"
