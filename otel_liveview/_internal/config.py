"""Settings: keyword arguments of `configure()` first, then environment variables, then defaults.

The standard `OTEL_*` variables keep the meaning the OpenTelemetry specification gives them; the
library's own knobs are `OTEL_LIVEVIEW_*`.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

_log = logging.getLogger("otel_liveview")

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
    spool_dir: str | None = None  # OTEL_LIVEVIEW_SPOOL_DIR: what the collector cannot take goes there
    spool_max_bytes: int = 1024**3  # OTEL_LIVEVIEW_SPOOL_MAX_BYTES: the folder's budget
    offline: bool = False  # OTEL_LIVEVIEW_OFFLINE: send nothing, spool everything


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
    "spool_max_bytes": "OTEL_LIVEVIEW_SPOOL_MAX_BYTES",
}
_ENV_SECONDS = {"exit_timeout": "OTEL_LIVEVIEW_EXIT_TIMEOUT"}
_ENV_BOOL = {
    "metric_events": "OTEL_LIVEVIEW_METRIC_EVENTS",
    "disabled": "OTEL_SDK_DISABLED",
    "offline": "OTEL_LIVEVIEW_OFFLINE",
}
_ENV_EXPORTERS = {"metrics_exporter": "OTEL_METRICS_EXPORTER", "logs_exporter": "OTEL_LOGS_EXPORTER"}
_ENV_STR = {
    "topic": "OTEL_LIVEVIEW_TOPIC",
    "prometheus_addr": "OTEL_LIVEVIEW_PROMETHEUS_ADDR",
    "spool_dir": "OTEL_LIVEVIEW_SPOOL_DIR",
}


def load(**overrides: Any) -> Settings:
    """Settings from keyword arguments, then the environment, then the defaults.

    A keyword argument that is wrong is a programming error: TypeError or ValueError, at once. A
    variable that is wrong is not the experiment's business: one warning naming it and the default
    used instead (as the OpenTelemetry SDK does), or ValueError inside `strict()`.
    """
    known = {f.name for f in fields(Settings)}
    unknown = set(overrides) - known
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name, var in _ENV_MS.items():
        millis = _env_number(var, float, name, _DEFAULTS[name] * 1000, "ms")
        values[name] = None if millis is None else millis / 1000
    for name, var in _ENV_INT.items():
        values[name] = _env_number(var, int, name, _DEFAULTS[name])
    for name, var in _ENV_SECONDS.items():
        values[name] = _env_number(var, float, name, _DEFAULTS[name], "s")
    for name, var in _ENV_BOOL.items():
        values[name] = _env_bool(var, default=_DEFAULTS[name], spec=var.startswith("OTEL_SDK"))
    for name, var in _ENV_STR.items():
        values[name] = os.environ.get(var) or None
    for var in (
        "OTEL_ATTRIBUTE_COUNT_LIMIT",
        "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
    ):  # the specific one wins
        limit = _env_number(var, int, "max_attributes", _DEFAULTS["max_attributes"])
        values["max_attributes"] = values.get("max_attributes") if limit is None else limit
    for name, var in _ENV_EXPORTERS.items():
        values[name] = _env_exporters(var)
    for name in _ENV_EXPORTERS:
        if isinstance(overrides.get(name), str):
            overrides[name] = exporter_list(overrides[name], name)
        elif overrides.get(name) is not None:
            overrides[name] = exporter_list(",".join(overrides[name]), name)
    given = {k: v for k, v in overrides.items() if v is not None}
    _validate(given)
    values.update(given)
    return Settings(**{k: v for k, v in values.items() if v is not None})


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Settings)}
_AT_LEAST_ONE = (
    "max_queue_size",
    "max_export_batch_size",
    "max_series",
    "max_stream_keys",
    "max_attributes",
    "spool_max_bytes",
)
_NON_NEGATIVE = ("metric_export_interval", "schedule_delay", "exit_timeout", "prometheus_port")
_strict: contextvars.ContextVar[bool] = contextvars.ContextVar("otel_liveview_strict", default=False)
_warned: set[tuple[str, str]] = set()


@contextlib.contextmanager
def strict() -> Iterator[None]:
    """Within it, a variable that cannot be used raises ValueError naming it (what a command line
    that checks the configuration wants) instead of a warning and the default."""
    token = _strict.set(True)
    try:
        yield
    finally:
        _strict.reset(token)


def unusable(var: str, raw: str, problem: str, instead: str, *, secret: bool = False) -> None:
    """Variable `var` holds `raw`, which cannot be used: ValueError within `strict()`, else one
    warning per variable and value saying what is done `instead` (the caller then does it). A
    `secret` value (headers carry tokens) is not shown."""
    message = f"{var} (its value not shown) {problem}" if secret else f"{var}={raw!r} {problem}"
    if _strict.get():
        raise ValueError(message)
    if (var, raw) not in _warned:
        _warned.add((var, raw))
        _log.warning("otel-liveview: %s; %s", message, instead)


def _range_problem(name: str, value: float) -> str | None:
    """What is wrong with `value` for setting `name`, or None."""
    if not math.isfinite(value):
        return "must be a finite number"
    if name in _AT_LEAST_ONE and value < 1:
        return "must be at least 1"
    if name in _NON_NEGATIVE and value < 0:
        return "must not be negative"
    if name == "prometheus_port" and value > 65535:
        return "must be a port number (0-65535)"
    return None


def _validate(given: dict[str, Any]) -> None:
    """Keyword arguments of configure(): wrong ones raise (the code that passed them is wrong)."""
    protocol = given.get("protocol")
    if protocol is not None and protocol not in PROTOCOLS:
        raise ValueError(f"unsupported OTLP protocol {protocol!r}; use one of {PROTOCOLS}")
    for name in (*_AT_LEAST_ONE, *_NON_NEGATIVE):
        if name in given:
            problem = _range_problem(name, given[name])
            if problem is not None:
                raise ValueError(f"{name} {problem}")
    endpoint = given.get("endpoint")
    if endpoint is not None:
        problem = url_problem(endpoint)
        if problem is not None:
            raise ValueError(f"endpoint {endpoint!r} {problem}")


def url_problem(url: str) -> str | None:
    """Why `url` cannot be an OTLP endpoint (it cannot be parsed, or its port is not one), or None."""
    try:
        urlsplit(url).port  # noqa: B018 - parsing it is the check
    except ValueError as error:
        return f"is not a usable URL ({error})"
    return None


def exporter_list(raw: str, source: str) -> tuple[str, ...]:
    """A comma-separated exporter list as OTEL_{METRICS,LOGS}_EXPORTER take it; `none` alone means none."""
    names = tuple(dict.fromkeys(name.strip().lower() for name in raw.split(",") if name.strip()))
    problem = _exporters_problem(names)
    if problem is not None:
        raise ValueError(f"{source} {problem}")
    return () if names in ((), ("none",)) else names


def _exporters_problem(names: tuple[str, ...]) -> str | None:
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        return f"names unknown exporter(s) {', '.join(unknown)} (use {', '.join(EXPORTERS)})"
    if "none" in names and len(names) > 1:
        return "combines 'none' with other exporters"
    return None


def protocol_for(settings: Settings, signal: str) -> str:
    """The OTLP protocol for `signal` ("metrics" or "logs"), as the OTel spec orders the variables."""
    if settings.protocol:
        return settings.protocol
    for var in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        raw = os.environ.get(var, "").strip()
        if raw in PROTOCOLS:
            return raw
        if raw:
            unusable(var, raw, f"is not an OTLP protocol ({', '.join(PROTOCOLS)})", "using grpc")
            break
    return "grpc"


def export_timeout(signal: str) -> float | None:
    """OTEL_EXPORTER_OTLP_[SIGNAL_]TIMEOUT in seconds, or None when unset (or unusable).

    The OTel specification gives this variable in milliseconds (opentelemetry-python's own exporters
    read seconds).
    """
    for var in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        raw = os.environ.get(var, "").strip()
        if not raw:
            continue
        try:
            millis = float(raw)
        except ValueError:
            millis = math.nan
        if math.isfinite(millis) and millis > 0:
            return millis / 1000
        unusable(var, raw, "is not a positive number of milliseconds", "using the default (10000 ms)")
        return None
    return None


def positive_seconds(text: str) -> float:
    """A command-line duration: a positive number of seconds (argparse reports the error)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _env_number(var: str, kind: type, name: str, default: Any, unit: str = "") -> Any:
    """The number in `var` (None when unset or unusable: the default applies)."""
    raw = os.environ.get(var, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
        problem: str | None = "is not a number"
    else:
        problem = _range_problem(name, value)
    if problem is None:
        return kind(value)
    shown = "off" if default is None else f"{default:g}{' ' + unit if unit else ''}"
    unusable(var, raw, problem, f"using the default ({shown})")
    return None


def _env_bool(var: str, *, default: bool, spec: bool) -> bool | None:
    """`var` as a boolean (None when unset or unusable). For the OpenTelemetry spec's own variables
    (`spec`) only "true" is true and only "false" false, as the spec defines them; the library's
    own also take 1/0, yes/no, on/off."""
    raw = os.environ.get(var, "").strip()
    words = ("true", "false") if spec else ("1", "true", "yes", "on", "0", "false", "no", "off")
    if not raw:
        return None
    if raw.lower() in words:
        return raw.lower() in ("1", "true", "yes", "on")
    unusable(var, raw, "is not a boolean (true or false)", f"using {str(default).lower()}")
    return None


def _env_exporters(var: str) -> tuple[str, ...] | None:
    raw = os.environ.get(var, "").strip()
    if not raw:
        return None
    try:
        return exporter_list(raw, var)
    except ValueError as error:
        unusable(var, raw, str(error).removeprefix(f"{var} "), "using the default (otlp)")
        return None
