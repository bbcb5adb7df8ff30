"""Settings: keyword arguments, then OTEL_* variables as the OpenTelemetry spec defines them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otel_liveview._internal import config, otlp


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


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees the library's once-per-value warnings afresh."""
    monkeypatch.setattr(config, "_warned", set())


def test_bad_keyword_arguments_are_errors_at_once() -> None:
    """configure(...) arguments are the program's own: a wrong one is a programming error."""
    with pytest.raises(TypeError, match="unknown setting"):
        config.load(colour="red")
    with pytest.raises(ValueError, match=r"^max_queue_size must be at least 1$"):
        config.load(max_queue_size=0)
    with pytest.raises(ValueError, match=r"^exit_timeout must be a finite number$"):
        config.load(exit_timeout=float("inf"))
    with pytest.raises(
        ValueError, match=r"^endpoint 'http://\[::1:bad' is not a usable URL \(Invalid IPv6 URL\)$"
    ):
        config.load(endpoint="http://[::1:bad")
    with pytest.raises(ValueError, match="unsupported OTLP protocol"):
        config.load(protocol="http/json")
    with pytest.raises(ValueError, match="metrics_exporter names unknown exporter"):
        config.load(metrics_exporter="zipkin")


BAD_VARIABLES = [
    # variable, value, the setting it feeds, what the library says it uses instead
    ("OTEL_BLRP_SCHEDULE_DELAY", "x", "schedule_delay", "is not a number; using the default (200 ms)"),
    (
        "OTEL_METRIC_EXPORT_INTERVAL",
        "-5",
        "metric_export_interval",
        "must not be negative; using the default (1000 ms)",
    ),
    ("OTEL_BLRP_MAX_QUEUE_SIZE", "lots", "max_queue_size", "is not a number; using the default (32768)"),
    (
        "OTEL_BLRP_MAX_QUEUE_SIZE",
        "inf",
        "max_queue_size",
        "must be a finite number; using the default (32768)",
    ),
    (
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        "0",
        "max_export_batch_size",
        "must be at least 1; using the default (512)",
    ),
    ("OTEL_LIVEVIEW_EXIT_TIMEOUT", "nan", "exit_timeout", "must be a finite number; using the default (5 s)"),
    (
        "OTEL_LIVEVIEW_PROMETHEUS_PORT",
        "99999",
        "prometheus_port",
        "must be a port number (0-65535); using the default (off)",
    ),
    ("OTEL_ATTRIBUTE_COUNT_LIMIT", "many", "max_attributes", "is not a number; using the default (128)"),
    ("OTEL_LIVEVIEW_METRIC_EVENTS", "maybe", "metric_events", "is not a boolean (true or false); using true"),
    ("OTEL_SDK_DISABLED", "1", "disabled", "is not a boolean (true or false); using false"),
    (
        "OTEL_METRICS_EXPORTER",
        "zipkin",
        "metrics_exporter",
        "names unknown exporter(s) zipkin (use otlp, console, none); using the default (otlp)",
    ),
    (
        "OTEL_LOGS_EXPORTER",
        "none,otlp",
        "logs_exporter",
        "combines 'none' with other exporters; using the default (otlp)",
    ),
]


@pytest.mark.parametrize(("var", "raw", "name", "said"), BAD_VARIABLES)
def test_a_bad_variable_is_one_warning_and_the_default(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    var: str,
    raw: str,
    name: str,
    said: str,
) -> None:
    """As the OpenTelemetry SDK does: the experiment is not the place for a configuration error."""
    monkeypatch.setenv(var, raw)
    settings, again = config.load(), config.load()
    default = getattr(config.Settings(), name)
    assert getattr(settings, name) == getattr(again, name) == default
    assert caplog.messages == [f"otel-liveview: {var}={raw!r} {said}"]  # once, however often it is read
    with pytest.raises(ValueError) as raised, config.strict():  # what a configuration check wants
        config.load()
    assert str(raised.value) == f"{var}={raw!r} {said.split('; ')[0]}"


def test_the_spec_booleans_take_true_and_false_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for raw, disabled in (("true", True), ("TRUE", True), ("false", False), ("", False)):
        monkeypatch.setenv("OTEL_SDK_DISABLED", raw)
        assert config.load().disabled is disabled
    monkeypatch.setenv("OTEL_LIVEVIEW_METRIC_EVENTS", "off")  # the library's own also take on/off, 1/0
    assert config.load().metric_events is False


@pytest.mark.parametrize(
    ("var", "raw", "said"),
    [
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "http/json",
            "is not an OTLP protocol (grpc, http/protobuf); using grpc",
        ),
        (
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "abc",
            "is not a positive number of milliseconds; using the default (10000 ms)",
        ),
        (
            "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
            "0",
            "is not a positive number of milliseconds; using the default (10000 ms)",
        ),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli", "is not an OTLP compression (gzip, none); using none"),
    ],
)
def test_a_bad_exporter_variable_is_one_warning_and_the_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, var: str, raw: str, said: str
) -> None:
    monkeypatch.setenv(var, raw)
    endpoint = otlp.resolve(config.load(), "logs")
    otlp.resolve(config.load(), "logs")
    assert (endpoint.protocol, endpoint.timeout, endpoint.compression, endpoint.problem) == (
        "grpc",
        10.0,
        None,
        None,
    )
    assert caplog.messages == [f"otel-liveview: {var}={raw!r} {said}"]
    with pytest.raises(ValueError, match=f"^{var}="), config.strict():
        otlp.resolve(config.load(), "logs")


def test_bad_header_entries_are_ignored_with_a_warning_that_hides_the_value(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20secret,garbage")
    assert otlp.resolve(config.load(), "logs").headers == {"authorization": "Bearer secret"}
    assert caplog.messages == [
        "otel-liveview: OTEL_EXPORTER_OTLP_HEADERS (its value not shown) has entries that are not key=value; "
        "ignoring those"
    ]


@pytest.mark.parametrize(
    ("var", "url", "problem"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::1:bad", "Invalid IPv6 URL"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:99999", "Port out of range 0-65535"),
        (
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "http://collector:port/v1/logs",
            "Port could not be cast to integer value as 'port'",
        ),
    ],
)
def test_an_endpoint_that_cannot_be_parsed_turns_its_exporter_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, var: str, url: str, problem: str
) -> None:
    """Nothing is sent, nothing waits, every request fails at once (and is counted by its caller);
    one warning names the variable, no outage line follows."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv(var, url)
    endpoint = otlp.resolve(config.load(), "logs")
    assert endpoint.problem == f"{var} is not a usable URL ({problem})"
    sender = otlp.OtlpSender(endpoint, otlp.Outage(otlp.OutageMarkers("1-a", "/nonexistent")))
    outcome = sender.send(ExportLogsServiceRequest(), time.monotonic() + 10)
    assert (outcome.ok, outcome.retryable, outcome.reason) == (False, False, endpoint.problem)
    assert caplog.messages == [
        f"otel-liveview: {var}={url!r} is not a usable URL ({problem}); not exporting to it: what would go "
        "there is counted as dropped (liveview_dropped_total)"
    ]
    with pytest.raises(ValueError, match=f"^{var}="), config.strict():
        otlp.resolve(config.load(), "logs")


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


def test_exporter_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (config.load().metrics_exporter, config.load().logs_exporter) == (("otlp",), ("otlp",))
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", " console , otlp,console")
    settings = config.load()
    assert settings.metrics_exporter == ()
    assert settings.logs_exporter == ("console", "otlp")  # a comma list, duplicates once
    assert config.load(metrics_exporter="console").metrics_exporter == ("console",)  # arguments win
    assert config.load(logs_exporter=["none"]).logs_exporter == ()
    monkeypatch.delenv("OTEL_METRICS_EXPORTER")
    assert config.load().disabled is False
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert config.load().disabled is True


def test_tls_files_grpc_cannot_read_turn_its_exporter_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """The gRPC channel reads them at once: that raised out of the first publish."""
    missing = tmp_path / "ca.pem"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(missing))
    sender = otlp.OtlpSender(
        otlp.resolve(config.load(), "metrics"), otlp.Outage(otlp.OutageMarkers("1-a", "/x"))
    )
    outcome = sender.send(ExportLogsServiceRequest(), time.monotonic() + 10)
    assert not sender.usable and (outcome.ok, outcome.retryable) == (False, False)
    assert caplog.messages == [
        f"otel-liveview: cannot export metrics to https://127.0.0.1:9 ([Errno 2] No such file or directory: "
        f"'{missing}'); not exporting to it: what would go there is counted as dropped (liveview_dropped_total)"
    ]
