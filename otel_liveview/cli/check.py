"""`otel-liveview check`: what the configuration resolves to, and whether each endpoint takes an export."""

from __future__ import annotations

import argparse
import os
import ssl
import sys
import time

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from otel_liveview._internal import config, otlp
from otel_liveview.cli import variables

_REDACT = ("HEADERS", "KEY", "TOKEN", "PASSWORD")
_EMPTY_REQUESTS: dict[str, type[Message]] = {
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}
_SWITCH_TO_HTTP = "OTLP/HTTP? set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf, usually port 4318"
_SWITCH_TO_GRPC = "OTLP/gRPC? set OTEL_EXPORTER_OTLP_PROTOCOL=grpc, usually port 4317"
# (protocol or None for both, markers in the sender's failure reason, what it means), first match wins
_VERDICTS = (
    (None, ("HTTP 401", "HTTP 403", "UNAUTHENTICATED", "PERMISSION_DENIED"),
     "authentication failed ({code}): check the credentials in OTEL_EXPORTER_OTLP_HEADERS"),
    (None, ("WRONG_VERSION", "wrong version number"),
     "TLS failed: the server does not speak TLS on this port; use http://"),
    (None, ("certificate verify failed", "CERTIFICATE_VERI"),
     "TLS failed: the server's certificate is not trusted; set OTEL_EXPORTER_OTLP_CERTIFICATE to its CA"),
    (None, ("TLS error", "Tls handshake failed", "SSL"), "TLS failed ({reason})"),
    ("grpc", ("HTTP/1 server answered",),
     f"not an OTLP/gRPC endpoint: an HTTP/1 server answered ({_SWITCH_TO_HTTP})"),
    ("grpc", ("UNIMPLEMENTED",), "not an OTLP/gRPC endpoint: a gRPC server without the OTLP {signal} service"),
    ("http/protobuf", ("BadStatusLine('\\x00",),
     f"not an OTLP/HTTP endpoint: an HTTP/2 (gRPC) server answered ({_SWITCH_TO_GRPC})"),
    ("http/protobuf", ("HTTP 404", "HTTP 405", "HTTP 415", "HTTP 501"),
     "not an OTLP/HTTP endpoint ({code}: no OTLP receiver at this path)"),
    (None, ("Connection reset", "Connection aborted", "RemoteDisconnected", "closed the connection",
            "not an HTTP/2 server"),
     "the server closed the connection: not an OTLP endpoint of this protocol, or one that wants TLS"),
    (None, ("refused", "not known", "name resolution"), "NOT reachable ({reason})"),
    (None, ("timed out", "DEADLINE_EXCEEDED"), "no answer in time ({reason})"),
)  # fmt: skip


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "check",
        help="show the resolved configuration and send a test export to each OTLP endpoint",
        description="Check the OTEL_* settings this machine's publishers would use: every value is "
        "validated, then an empty OTLP export request goes to the metrics and the logs endpoint, and "
        "the answer says whether it was accepted, or why not (unreachable, not an OTLP endpoint of "
        "that protocol, TLS, authentication). Exit status: 0 all accepted, 1 an export failed, "
        "2 a setting is invalid.",
    )
    parser.add_argument(
        "--timeout",
        type=config.positive_seconds,
        default=2.0,
        help="seconds per export attempt (default: %(default)s)",
    )
    parser.set_defaults(run=run)


def configuration_error() -> str | None:
    """The first OTEL_* setting the library could not use, naming its variable; None if all are usable."""
    found = variables.problems()
    if found:
        return found[0]
    try:
        settings = config.load()
        for signal in otlp.SIGNALS:
            otlp.resolve(settings, signal)
    except (ValueError, OverflowError) as error:  # a rule variables does not know yet
        return str(error)
    return None


def tls_problems(endpoint: otlp.Endpoint) -> list[str]:
    """What is wrong with the endpoint's certificate and key files (OTEL_EXPORTER_OTLP_*CERTIFICATE,
    *CLIENT_KEY): unreadable, or not PEM."""
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


class _Unreported(otlp.Outage):
    """The check reports each outcome itself: no outage warning lines."""

    def failed(self, endpoint: otlp.Endpoint, reason: str) -> None:
        pass

    def recovered(self, endpoint: otlp.Endpoint) -> None:
        pass


def export_once(endpoint: otlp.Endpoint, timeout: float) -> otlp.Outcome:
    """One empty export request of the endpoint's signal, through the library's own sender."""
    sender = otlp.OtlpSender(endpoint, _Unreported())
    try:
        return sender.send(_EMPTY_REQUESTS[endpoint.signal](), time.monotonic() + timeout)
    finally:
        sender.close()


def verdict(endpoint: otlp.Endpoint, outcome: otlp.Outcome) -> str:
    """What an export's outcome says about the endpoint, in words a user can act on."""
    if outcome.ok:
        return "export accepted"
    reason = outcome.reason
    for protocol, markers, meaning in _VERDICTS:
        if protocol in (None, endpoint.protocol) and any(marker in reason for marker in markers):
            return meaning.format(code=_status(reason), reason=reason, signal=endpoint.signal)
    return f"export failed ({reason})"


def _status(reason: str) -> str:
    """The status of a failure: "HTTP 401" over HTTP, the code's name ("UNAUTHENTICATED") over gRPC."""
    words = reason.split()
    return " ".join(words[:2]) if reason.startswith("HTTP ") else words[0]


def run(args: argparse.Namespace) -> int:
    problem = configuration_error()
    if problem is not None:
        print(f"otel-liveview check: {problem}", file=sys.stderr)
        return 2
    settings = config.load()
    show_environment()
    print(f"metric export interval: {settings.metric_export_interval:g} s")
    print(f"metric events: {settings.metric_events}")
    print(f"event queue: {settings.max_queue_size} records; exit timeout: {settings.exit_timeout:g} s")
    failures = 0
    if settings.prometheus_port is not None:
        served = "" if _has_pull_extra() else ": NOT served, prometheus-client is missing (the 'pull' extra)"
        print(f"pull mode: http://{settings.prometheus_addr}:{settings.prometheus_port}/metrics{served}")
        failures += bool(served)
    if settings.disabled:
        print("OTEL_SDK_DISABLED: publishing does nothing, no connection is made")
        return 1 if failures else 0
    exporters = {"metrics": settings.metrics_exporter, "logs": settings.logs_exporter}
    for signal in otlp.SIGNALS:
        others = [name for name in exporters[signal] if name != "otlp"]
        if "otlp" not in exporters[signal]:
            print(f"{signal}: {', '.join(others) or 'none'} (no OTLP export)")
            continue
        endpoint = otlp.resolve(settings, signal)
        for problem in tls_problems(endpoint):
            print(f"{signal}: {problem}")
            failures += 1
        outcome = export_once(endpoint, args.timeout)
        also = f" (and {', '.join(others)})" if others else ""
        print(f"{signal}: {endpoint.protocol} -> {endpoint.url}: {verdict(endpoint, outcome)}{also}")
        failures += not outcome.ok
    return 1 if failures else 0


def _has_pull_extra() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def show_environment() -> None:
    """The OTEL_* variables set, secrets redacted; nothing when none is."""
    names = sorted(name for name in os.environ if name.startswith("OTEL_"))
    if names:
        print("environment:")
    for name in names:
        shown = "<redacted>" if any(word in name for word in _REDACT) else os.environ[name]
        print(f"  {name}={shown}")


__all__ = [
    "configuration_error",
    "export_once",
    "register",
    "run",
    "show_environment",
    "tls_problems",
    "verdict",
]
