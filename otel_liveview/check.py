"""`otel-liveview check`: what the configuration resolves to, and whether its endpoints answer."""

from __future__ import annotations

import argparse
import os
import socket
import ssl
from urllib.parse import urlsplit

from otel_liveview import config, otlp

_REDACT = ("HEADERS", "KEY", "TOKEN", "PASSWORD")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("check", help="show the resolved configuration and probe the OTLP endpoints")
    parser.add_argument(
        "--timeout",
        type=config.positive_seconds,
        default=2.0,
        help="seconds per connection attempt (default: %(default)s)",
    )
    parser.set_defaults(run=run)


def reachable(url: str, timeout: float) -> str | None:
    """None if a TCP connection to the endpoint's host and port succeeds, else the reason."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout):
            return None
    except OSError as error:
        return str(error) or type(error).__name__


def tls_problems(endpoint: otlp.Endpoint) -> list[str]:
    """What is wrong with the endpoint's certificate and key files (OTEL_EXPORTER_OTLP_*CERTIFICATE,
    *CLIENT_KEY): missing, unreadable, or not PEM."""
    problems = []
    if endpoint.certificate:
        try:
            ssl.create_default_context(cafile=endpoint.certificate)
        except (OSError, ssl.SSLError) as error:
            problems.append(f"CA certificate {endpoint.certificate} is not usable ({error})")
    if endpoint.client_certificate or endpoint.client_key:
        try:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.load_cert_chain(endpoint.client_certificate or "", endpoint.client_key)
        except (OSError, ssl.SSLError) as error:
            problems.append(
                f"client certificate {endpoint.client_certificate} / key {endpoint.client_key} not usable ({error})"
            )
    return problems


def run(args: argparse.Namespace) -> int:
    try:
        with config.strict():  # a bad value is this command's business: an error, not a warning
            settings = config.load()
            endpoints = {signal: otlp.resolve(settings, signal) for signal in otlp.SIGNALS}
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
    if settings.disabled:
        print("OTEL_SDK_DISABLED: publishing does nothing, no connection is made")
        return 0
    failures = 0
    exporters = {"metrics": settings.metrics_exporter, "logs": settings.logs_exporter}
    for signal in otlp.SIGNALS:
        others = [name for name in exporters[signal] if name != "otlp"]
        if "otlp" not in exporters[signal]:
            print(f"{signal}: {', '.join(others) or 'none'} (no OTLP export)")
            continue
        endpoint = endpoints[signal]
        for problem in tls_problems(endpoint):
            print(f"{signal}: {problem}")
            failures += 1
        unreachable = reachable(endpoint.url, args.timeout)
        state = "reachable" if unreachable is None else f"NOT reachable ({unreachable})"
        also = f" (and {', '.join(others)})" if others else ""
        print(f"{signal}: {endpoint.protocol} -> {endpoint.url}: {state}{also}")
        failures += unreachable is not None
    return 1 if failures else 0
