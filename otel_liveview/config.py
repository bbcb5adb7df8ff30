"""Settings: keyword arguments of `configure()` first, then environment variables, then defaults.

The standard `OTEL_*` variables keep the meaning the OpenTelemetry specification gives them; the
library's own knobs are `OTEL_LIVEVIEW_*`.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any

PROTOCOLS = ("grpc", "http/protobuf")
EXPORTERS = ("otlp", "console", "none")
DEFAULT_ENDPOINTS = {"grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318"}


@dataclass(frozen=True)
class Settings:
    service_name: str | None = (
        None  # None: OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, else "otel-liveview"
    )
    topic: str | None = None  # resource attribute liveview.topic; defaults to the first broadcaster's topic
    endpoint: str | None = None  # base URL; None: OTEL_EXPORTER_OTLP_[SIGNAL_]ENDPOINT, then localhost
    protocol: str | None = (
        None  # None: OTEL_EXPORTER_OTLP_{METRICS,LOGS}_PROTOCOL, then ..._PROTOCOL, then grpc
    )
    headers: dict[str, str] | None = None
    insecure: bool | None = None
    metric_export_interval: float = 1.0  # seconds; OTEL_METRIC_EXPORT_INTERVAL (ms) overrides the default
    metric_events: bool = True  # every update also in liveview.metric events, per series and interval
    max_queue_size: int = 32_768  # events/logs waiting for export; OTEL_BLRP_MAX_QUEUE_SIZE
    max_export_batch_size: int = 512  # OTEL_BLRP_MAX_EXPORT_BATCH_SIZE
    schedule_delay: float = 0.2  # seconds between event exports; OTEL_BLRP_SCHEDULE_DELAY (ms)
    max_series: int = 2_000  # distinct attribute sets per gauge; OTEL_LIVEVIEW_MAX_SERIES
    max_stream_keys: int = 64  # numeric keys per data stream; OTEL_LIVEVIEW_MAX_STREAM_KEYS
    exit_timeout: float = (
        5.0  # seconds the interpreter may wait at exit to export; OTEL_LIVEVIEW_EXIT_TIMEOUT
    )
    prometheus_port: int | None = None  # pull mode; OTEL_LIVEVIEW_PROMETHEUS_PORT
    prometheus_addr: str = "127.0.0.1"  # OTEL_LIVEVIEW_PROMETHEUS_ADDR
    resource_attributes: dict[str, Any] = field(default_factory=dict)
    metrics_exporter: tuple[str, ...] = ("otlp",)  # OTEL_METRICS_EXPORTER: otlp, console, none
    logs_exporter: tuple[str, ...] = ("otlp",)  # OTEL_LOGS_EXPORTER (events and logs)
    disabled: bool = False  # OTEL_SDK_DISABLED: publishing does nothing at all
    max_attributes: int = (
        128  # per event/log record; OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT, OTEL_ATTRIBUTE_COUNT_LIMIT
    )


_ENV_MS = {
    "metric_export_interval": "OTEL_METRIC_EXPORT_INTERVAL",
    "schedule_delay": "OTEL_BLRP_SCHEDULE_DELAY",
}
_ENV_INT = {
    "max_queue_size": "OTEL_BLRP_MAX_QUEUE_SIZE",
    "max_export_batch_size": "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
    "max_series": "OTEL_LIVEVIEW_MAX_SERIES",
    "max_stream_keys": "OTEL_LIVEVIEW_MAX_STREAM_KEYS",
    "prometheus_port": "OTEL_LIVEVIEW_PROMETHEUS_PORT",
}
_ENV_SECONDS = {"exit_timeout": "OTEL_LIVEVIEW_EXIT_TIMEOUT"}
_ENV_BOOL = {"metric_events": "OTEL_LIVEVIEW_METRIC_EVENTS", "disabled": "OTEL_SDK_DISABLED"}
_ENV_EXPORTERS = {"metrics_exporter": "OTEL_METRICS_EXPORTER", "logs_exporter": "OTEL_LOGS_EXPORTER"}
_ENV_STR = {"topic": "OTEL_LIVEVIEW_TOPIC", "prometheus_addr": "OTEL_LIVEVIEW_PROMETHEUS_ADDR"}


def load(**overrides: Any) -> Settings:
    """Settings from keyword arguments, then the environment, then the defaults."""
    known = {f.name for f in fields(Settings)}
    unknown = set(overrides) - known
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name, var in _ENV_MS.items():
        values[name] = _env_number(var, float) / 1000 if var in os.environ else None
    for name, var in _ENV_INT.items():
        values[name] = _env_number(var, int) if var in os.environ else None
    for name, var in _ENV_SECONDS.items():
        values[name] = _env_number(var, float) if var in os.environ else None
    for name, var in _ENV_BOOL.items():
        values[name] = _env_bool(var) if var in os.environ else None
    for name, var in _ENV_STR.items():
        values[name] = os.environ.get(var) or None
    for var in (
        "OTEL_ATTRIBUTE_COUNT_LIMIT",
        "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
    ):  # the specific one wins
        if os.environ.get(var, "").strip():
            values["max_attributes"] = _env_number(var, int)
    for name, var in _ENV_EXPORTERS.items():
        values[name] = exporter_list(os.environ[var], var) if os.environ.get(var, "").strip() else None
    for name in _ENV_EXPORTERS:
        if isinstance(overrides.get(name), str):
            overrides[name] = exporter_list(overrides[name], name)
        elif overrides.get(name) is not None:
            overrides[name] = exporter_list(",".join(overrides[name]), name)
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings(**{k: v for k, v in values.items() if v is not None})
    _validate(settings)
    return settings


def exporter_list(raw: str, source: str) -> tuple[str, ...]:
    """A comma-separated exporter list as OTEL_{METRICS,LOGS}_EXPORTER take it; `none` alone means none."""
    names = tuple(dict.fromkeys(name.strip().lower() for name in raw.split(",") if name.strip()))
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise ValueError(f"{source}: unknown exporter(s) {', '.join(unknown)}; use {', '.join(EXPORTERS)}")
    if "none" in names and len(names) > 1:
        raise ValueError(f"{source}: 'none' cannot be combined with other exporters")
    return () if names in ((), ("none",)) else names


def protocol_for(settings: Settings, signal: str) -> str:
    """The OTLP protocol for `signal` ("metrics" or "logs"), as the OTel spec orders the variables."""
    protocol = (
        settings.protocol
        or os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()
    if protocol not in PROTOCOLS:
        raise ValueError(f"unsupported OTLP protocol {protocol!r} for {signal}; use one of {PROTOCOLS}")
    return protocol


def export_timeout(signal: str) -> float | None:
    """OTEL_EXPORTER_OTLP_[SIGNAL_]TIMEOUT in seconds, or None when unset.

    The OTel specification gives this variable in milliseconds (opentelemetry-python's own exporters
    read seconds).
    """
    for var in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        if os.environ.get(var, "").strip():
            return float(_env_number(var, float)) / 1000
    return None


def _validate(settings: Settings) -> None:
    if settings.protocol is not None and settings.protocol not in PROTOCOLS:
        raise ValueError(f"unsupported OTLP protocol {settings.protocol!r}; use one of {PROTOCOLS}")
    for name in ("metric_export_interval", "schedule_delay", "exit_timeout"):
        if getattr(settings, name) < 0:
            raise ValueError(f"{name} must not be negative")
    for name in (
        "max_queue_size",
        "max_export_batch_size",
        "max_series",
        "max_stream_keys",
        "max_attributes",
    ):
        if getattr(settings, name) < 1:
            raise ValueError(f"{name} must be at least 1")


def positive_seconds(text: str) -> float:
    """A command-line duration: a positive number of seconds (argparse reports the error)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _env_number(var: str, kind: type) -> Any:
    raw = os.environ[var].strip()
    try:
        return kind(float(raw)) if kind is int else kind(raw)
    except ValueError:
        raise ValueError(f"{var}={raw!r} is not a number") from None


def _env_bool(var: str) -> bool:
    raw = os.environ[var].strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{var}={raw!r} is not a boolean (true/false)")
