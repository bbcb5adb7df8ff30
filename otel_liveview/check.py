"""`otel-liveview check`: what the configuration resolves to, and whether its endpoints answer."""

from __future__ import annotations

import argparse
import os
import socket
from urllib.parse import urlsplit

from otel_liveview import config

SIGNALS = ("metrics", "logs")
_REDACT = ("HEADERS", "KEY", "TOKEN", "PASSWORD")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("check", help="show the resolved configuration and probe the OTLP endpoints")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per connection attempt")
    parser.set_defaults(run=run)


def endpoint_for(settings: config.Settings, signal: str) -> str:
    """The endpoint the exporter of `signal` will use, following the OTel spec's precedence."""
    protocol = config.protocol_for(settings, signal)
    specific = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if settings.endpoint:
        base = settings.endpoint.rstrip("/")
        return base + f"/v1/{signal}" if protocol == "http/protobuf" else base
    if specific:
        return specific
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", config.DEFAULT_ENDPOINTS[protocol]).rstrip("/")
    return base + f"/v1/{signal}" if protocol == "http/protobuf" else base


def reachable(url: str, timeout: float) -> str | None:
    """None if a TCP connection to the endpoint's host and port succeeds, else the reason."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout):
            return None
    except OSError as error:
        return str(error) or type(error).__name__


def run(args: argparse.Namespace) -> int:
    try:
        settings = config.load()
        protocols = {signal: config.protocol_for(settings, signal) for signal in SIGNALS}
    except ValueError as error:
        print(f"configuration error: {error}")
        return 2
    print("environment:")
    for name in sorted(k for k in os.environ if k.startswith("OTEL_")):
        value = os.environ[name]
        shown = "<redacted>" if any(word in name for word in _REDACT) else value
        print(f"  {name}={shown}")
    print(f"metric export interval: {settings.metric_export_interval:g} s")
    print(f"metric events: {settings.metric_events}")
    print(f"event queue: {settings.max_queue_size} records; exit timeout: {settings.exit_timeout:g} s")
    if settings.prometheus_port is not None:
        print(f"pull mode: http://{settings.prometheus_addr}:{settings.prometheus_port}/metrics")
    failures = 0
    for signal in SIGNALS:
        url = endpoint_for(settings, signal)
        problem = reachable(url, args.timeout)
        state = "reachable" if problem is None else f"NOT reachable ({problem})"
        print(f"{signal}: {protocols[signal]} -> {url}: {state}")
        failures += problem is not None
    return 1 if failures else 0
