"""The `OTEL_*` variables the library reads (config.py, otlp.py), each checked on its own for the
command line, so that an error names the variable and its value."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from urllib.parse import unquote, urlsplit

from otel_liveview._internal import config
from otel_liveview._internal.otlp import SIGNALS

_HEADER_KEY = re.compile(r"^[0-9a-z_.-]+$")  # gRPC metadata keys (lower-cased), a subset of HTTP's
_HEADER_VALUE = re.compile(r"^[\x20-\x7e]*$")  # printable ASCII: what gRPC metadata and HTTP both take
_BOOLEANS = ("1", "true", "yes", "on", "0", "false", "no", "off")  # as config reads its own


def _otlp(name: str) -> tuple[str, ...]:
    """OTEL_EXPORTER_OTLP_<NAME> and its per-signal forms."""
    return (
        f"OTEL_EXPORTER_OTLP_{name}",
        *(f"OTEL_EXPORTER_OTLP_{signal.upper()}_{name}" for signal in SIGNALS),
    )


def _number(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError
    return value


def _timeout(raw: str) -> str | None:
    return None if _number(raw) > 0 else "must be more than 0 (milliseconds)"


def _not_negative(raw: str) -> str | None:
    return None if _number(raw) >= 0 else "must not be negative"


def _count(raw: str) -> str | None:
    value = _number(raw)
    return None if value.is_integer() and value >= 1 else "must be a whole number, at least 1"


def _whole(raw: str) -> str | None:
    value = _number(raw)
    return None if value.is_integer() and value >= 0 else "must be a whole number, at least 0"


def _port(raw: str) -> str | None:
    value = _number(raw)
    return None if value.is_integer() and 1 <= value <= 65535 else "must be a port number, 1 to 65535"


def _boolean(raw: str) -> str | None:
    return None if raw.lower() in _BOOLEANS else "is not a boolean (true or false)"


def _true_or_false(raw: str) -> str | None:
    """The specification's booleans (OTEL_SDK_DISABLED, ..._INSECURE): true or false, any case."""
    return None if raw.lower() in ("true", "false") else "must be true or false"


def _protocol(raw: str) -> str | None:
    return None if raw in config.PROTOCOLS else f"use {' or '.join(config.PROTOCOLS)}"


def _compression(raw: str) -> str | None:
    return None if raw.lower() in ("gzip", "none") else "use gzip or none"


def _exporters(raw: str) -> str | None:
    try:
        config.exporter_list(raw, "")
    except ValueError as error:  # config's words: "names unknown exporter(s) ..."
        return str(error).strip().removeprefix("names ")
    return None


def _pairs(raw: str) -> str | None:
    """`key=value,...` with percent-encoded values (OTEL_RESOURCE_ATTRIBUTES)."""
    for member in filter(str.strip, raw.split(",")):
        key, sep, _ = member.partition("=")
        if not sep or not key.strip():
            return f"{member.strip()!r} is not key=value"
    return None


def _headers(raw: str) -> str | None:
    """`key=value,...` with percent-encoded values, each a valid gRPC metadata and HTTP header."""
    problem = _pairs(raw)
    if problem:
        return problem
    for member in filter(str.strip, raw.split(",")):
        key, _, value = member.partition("=")
        key, value = unquote(key.strip()).lower(), unquote(value.strip())
        if not _HEADER_KEY.match(key):
            return f"header name {key!r} may hold only letters, digits, '-', '_' and '.'"
        if not _HEADER_VALUE.match(value):
            return f"header {key!r}: the value may hold only printable ASCII (percent-encode the rest)"
    return None


def _readable_file(raw: str) -> str | None:
    return None if os.access(raw, os.R_OK) and os.path.isfile(raw) else "is not a readable file"


def _directory(raw: str) -> str | None:
    """A folder the spool can write to, or one that can be made."""
    path = os.path.abspath(raw)
    while not os.path.exists(path):  # the nearest existing parent must take a new folder
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    if not os.path.isdir(path):
        return "is not a folder"
    return None if os.access(path, os.W_OK | os.X_OK) else "is not writable"


def _endpoint(raw: str) -> str | None:
    """An http(s) URL, or gRPC's host:port; the port, if given, in range."""
    try:
        parts = urlsplit(raw if "://" in raw else f"//{raw}")
        port = parts.port
    except ValueError as error:
        return str(error)
    if port == 0:
        return "port 0: give the collector's port"
    if "://" in raw and parts.scheme not in ("http", "https"):
        return f"scheme {parts.scheme!r}: use http:// or https://"
    if not parts.hostname:
        return "names no host"
    return None


_RULES: dict[str, Callable[[str], str | None]] = {
    "OTEL_METRIC_EXPORT_INTERVAL": _not_negative,
    "OTEL_BLRP_SCHEDULE_DELAY": _not_negative,
    "OTEL_BLRP_MAX_QUEUE_SIZE": _count,
    "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": _count,
    "OTEL_ATTRIBUTE_COUNT_LIMIT": _count,
    "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT": _count,
    "OTEL_LIVEVIEW_MAX_SERIES": _count,
    "OTEL_LIVEVIEW_MAX_STREAM_KEYS": _count,
    "OTEL_LIVEVIEW_EXIT_TIMEOUT": _not_negative,
    "OTEL_LIVEVIEW_PROMETHEUS_PORT": _port,
    "OTEL_LIVEVIEW_METRIC_EVENTS": _boolean,
    "OTEL_LIVEVIEW_SPOOL_DIR": _directory,
    "OTEL_LIVEVIEW_SPOOL_MAX_BYTES": _count,
    "OTEL_LIVEVIEW_OFFLINE": _boolean,
    "OTEL_LIVEVIEW_RANK": _whole,
    "OTEL_LIVEVIEW_WORLD_SIZE": _count,
    "OTEL_SDK_DISABLED": _true_or_false,
    "OTEL_METRICS_EXPORTER": _exporters,
    "OTEL_LOGS_EXPORTER": _exporters,
    "OTEL_RESOURCE_ATTRIBUTES": _pairs,
    **dict.fromkeys(_otlp("ENDPOINT"), _endpoint),
    **dict.fromkeys(_otlp("PROTOCOL"), _protocol),
    **dict.fromkeys(_otlp("TIMEOUT"), _timeout),
    **dict.fromkeys(_otlp("HEADERS"), _headers),
    **dict.fromkeys(_otlp("INSECURE"), _true_or_false),
    **dict.fromkeys(_otlp("COMPRESSION"), _compression),
    **dict.fromkeys(_otlp("CERTIFICATE"), _readable_file),
    **dict.fromkeys(_otlp("CLIENT_KEY"), _readable_file),
    **dict.fromkeys(_otlp("CLIENT_CERTIFICATE"), _readable_file),
}
NAMES = tuple(_RULES)


def problems(environ: Mapping[str, str] | None = None) -> list[str]:
    """`NAME='value': what is wrong`, for every variable the library could not use as it is set.
    An empty value is unset, as the specification says."""
    environ = os.environ if environ is None else environ
    found = []
    for name, rule in _RULES.items():
        value = environ.get(name, "")
        if not value:
            continue
        try:
            problem = rule(value.strip()) if value.strip() else "is blank: unset it, or give a value"
        except ValueError:
            problem = "is not a number"
        if problem:
            found.append(f"{name}={value!r}: {problem}")
    return found or _http_endpoints_without_scheme(environ)


def _http_endpoints_without_scheme(environ: Mapping[str, str]) -> list[str]:
    """gRPC takes host:port; OTLP/HTTP needs a URL."""
    found = []
    for signal in SIGNALS:
        protocol = (
            environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
            or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "grpc"
        ).strip()
        for name in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            value = environ.get(name, "").strip()
            if value:
                if protocol == "http/protobuf" and "://" not in value:
                    found.append(f"{name}={value!r}: OTLP/HTTP needs a URL such as http://{value}")
                break
    return list(dict.fromkeys(found))


__all__ = [
    "NAMES",
    "problems",
]
