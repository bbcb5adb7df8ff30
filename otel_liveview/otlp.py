"""OTLP on the wire: where each signal goes (the OTEL_EXPORTER_OTLP_* variables) and one request at a
time to it, over gRPC or HTTP/protobuf, never longer than the caller's deadline.

The SDK's exporters retry inside `export()` with sleeps of their own, so a dead collector could hold
a flush or the interpreter's exit for many seconds. Here each request is one attempt; `OtlpSender`
retries only while its caller's deadline allows, stops at once when told to, and reports an outage
with one warning line instead of a line per attempt.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import random
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import certifi
import urllib3
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from otel_liveview import config
from otel_liveview.config import Settings

_log = logging.getLogger("otel_liveview")

SIGNALS = ("metrics", "logs")
_GRPC_METHODS: dict[str, tuple[str, type[Message]]] = {  # signal -> (method, its response message)
    "metrics": (
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        ExportMetricsServiceResponse,
    ),
    "logs": ("/opentelemetry.proto.collector.logs.v1.LogsService/Export", ExportLogsServiceResponse),
}
_RETRYABLE_HTTP = frozenset((429, 502, 503, 504))  # the OTLP/HTTP specification's list
_RETRYABLE_GRPC = frozenset(
    (
        "CANCELLED",
        "DEADLINE_EXCEEDED",
        "RESOURCE_EXHAUSTED",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNAVAILABLE",
        "DATA_LOSS",
    )
)
DEFAULT_TIMEOUT = 10.0  # seconds; OTEL_EXPORTER_OTLP_TIMEOUT's default (10,000 ms)


@dataclass(frozen=True)
class Endpoint:
    """Where and how one signal is exported, resolved once from settings and the environment."""

    signal: str
    protocol: str
    url: str  # HTTP: the full URL with /v1/<signal>; gRPC: scheme://host:port
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    insecure: bool = False  # gRPC only: plaintext
    compression: str | None = None  # "gzip" or None
    certificate: str | None = None
    client_key: str | None = None
    client_certificate: str | None = None


def _env(signal: str, name: str) -> str | None:
    """OTEL_EXPORTER_OTLP_<SIGNAL>_<NAME>, else OTEL_EXPORTER_OTLP_<NAME> (the spec's precedence)."""
    for var in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
        value = os.environ.get(var, "").strip()
        if value:
            return value
    return None


def resolve(settings: Settings, signal: str) -> Endpoint:
    """The endpoint the exporter of `signal` uses. `configure(endpoint=...)` is a base URL, like
    OTEL_EXPORTER_OTLP_ENDPOINT; OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT is used exactly as given."""
    protocol = config.protocol_for(settings, signal)
    specific = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", "").strip()
    if settings.endpoint or not specific:
        base = (
            settings.endpoint
            or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
            or config.DEFAULT_ENDPOINTS[protocol]
        ).rstrip("/")
        url = f"{base}/v1/{signal}" if protocol == "http/protobuf" else base
    else:
        url = specific
    headers = parse_headers(_env(signal, "HEADERS") or "")
    headers.update(settings.headers or {})
    timeout = config.export_timeout(signal)
    insecure_var = _env(signal, "INSECURE")
    scheme = urlsplit(url).scheme
    if settings.insecure is not None:
        insecure = settings.insecure
    elif scheme in ("http", "https"):
        insecure = scheme == "http"
    else:
        insecure = (insecure_var or "").lower() == "true"
    compression = (_env(signal, "COMPRESSION") or "none").lower()
    if compression not in ("gzip", "none"):
        raise ValueError(f"unsupported OTLP compression {compression!r}; use gzip or none")
    return Endpoint(
        signal=signal,
        protocol=protocol,
        url=url,
        headers=headers,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        insecure=insecure,
        compression=None if compression == "none" else compression,
        certificate=_env(signal, "CERTIFICATE"),
        client_key=_env(signal, "CLIENT_KEY"),
        client_certificate=_env(signal, "CLIENT_CERTIFICATE"),
    )


def parse_headers(raw: str) -> dict[str, str]:
    """`key1=value1,key2=value2` with percent-encoded values (the W3C Baggage format the spec names)."""
    headers = {}
    for pair in raw.split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            headers[unquote(key.strip()).lower()] = unquote(value.strip())
    return headers


@dataclass(frozen=True)
class Outcome:
    ok: bool
    retryable: bool = False
    reason: str = ""


OK = Outcome(True)
NO_TIME = Outcome(False, True, "the deadline passed before an attempt")


class _HttpTransport:
    """OTLP/HTTP over urllib3 (what requests, and so the SDK's exporter, uses underneath, at a third
    of its CPU per request): one kept-alive connection, the proxy the environment names
    (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY), TLS verified against OTEL_EXPORTER_OTLP_CERTIFICATE,
    else REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE as the SDK's exporter reads them, else certifi's bundle."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._headers = {"Content-Type": "application/x-protobuf", **endpoint.headers}
        if endpoint.compression:
            self._headers["Content-Encoding"] = "gzip"
        # An explicit CA file must win over REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, as the spec means it to.
        ca = endpoint.certificate or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        tls: dict[str, Any] = {
            "cert_reqs": "CERT_REQUIRED",
            "ca_certs": ca or certifi.where(),
            "cert_file": endpoint.client_certificate,
            "key_file": endpoint.client_key,
        }
        proxy = _proxy_for(endpoint.url)
        if proxy is None:
            self._pool: urllib3.PoolManager = urllib3.PoolManager(maxsize=1, **tls)
        else:
            parts = urlsplit(proxy)
            credentials = unquote(f"{parts.username}:{parts.password or ''}") if parts.username else None
            self._pool = urllib3.ProxyManager(
                proxy,
                maxsize=1,
                proxy_headers=urllib3.make_headers(proxy_basic_auth=credentials) if credentials else None,
                **tls,
            )

    def send(self, payload: bytes, timeout: float) -> Outcome:
        if self._endpoint.compression:
            payload = gzip.compress(payload, compresslevel=6)
        try:
            response = self._pool.request(
                "POST",
                self._endpoint.url,
                body=payload,
                headers=self._headers,
                timeout=urllib3.Timeout(total=timeout),
                retries=False,  # OtlpSender decides about retries
                redirect=False,
            )
        except urllib3.exceptions.SSLError as error:
            return Outcome(False, False, f"TLS error: {_short(error)}")
        except urllib3.exceptions.LocationValueError as error:
            return Outcome(False, False, _short(error))
        except urllib3.exceptions.HTTPError as error:  # refused, reset, timed out, proxy failures
            return Outcome(False, True, _short(error))
        if 200 <= response.status < 300:
            return OK
        return Outcome(False, response.status in _RETRYABLE_HTTP, f"HTTP {response.status}")

    def close(self) -> None:
        self._pool.clear()


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url`, or None (NO_PROXY matches, or none is set)."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


class _GrpcTransport:
    def __init__(self, endpoint: Endpoint) -> None:
        import grpc  # imported here: an HTTP-only process need not load it

        self._grpc = grpc
        parts = urlsplit(endpoint.url if "://" in endpoint.url else f"//{endpoint.url}")
        target = parts.netloc or endpoint.url
        if endpoint.insecure:
            self._channel = grpc.insecure_channel(target)
        else:
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(*_tls_files(endpoint)))
        method, response = _GRPC_METHODS[endpoint.signal]
        self._call = self._channel.unary_unary(
            method,
            request_serializer=lambda payload: payload,
            response_deserializer=response.FromString,
        )
        self._metadata = tuple(endpoint.headers.items())
        self._compression = grpc.Compression.Gzip if endpoint.compression else None

    def send(self, payload: bytes, timeout: float) -> Outcome:
        try:
            self._call(payload, timeout=timeout, metadata=self._metadata, compression=self._compression)
        except self._grpc.RpcError as error:
            code = error.code()
            details = error.details() or ""
            return Outcome(False, code.name in _RETRYABLE_GRPC, f"{code.name} {_short(details)}".strip())
        return OK

    def close(self) -> None:
        self._channel.close()


def _tls_files(endpoint: Endpoint) -> tuple[bytes | None, bytes | None, bytes | None]:
    def read(path: str | None) -> bytes | None:
        if path is None:
            return None
        with open(path, "rb") as file:
            return file.read()

    return read(endpoint.certificate), read(endpoint.client_key), read(endpoint.client_certificate)


def _short(error: object) -> str:
    """The gist of a transport error: urllib3 nests the cause several levels deep."""
    text = str(error)
    for marker in (
        "Connection refused",
        "timed out",
        "Name or service not known",
        "certificate verify failed",
    ):
        if marker in text:
            return marker.lower()
    return text if len(text) <= 200 else text[:200] + "…"


class Outage:
    """One warning line when exporting starts to fail, one when every signal gets through again.

    Shared by the senders of one pipeline, so a dead collector is one line, not one per signal
    and attempt (the drops themselves are counted in liveview.dropped).
    """

    def __init__(self) -> None:
        self._since: dict[str, float] = {}  # signal -> monotonic time of its first failure

    def failed(self, endpoint: Endpoint, reason: str) -> None:
        if endpoint.signal in self._since:
            return
        if not self._since:
            _log.warning(
                "otel-liveview: cannot export %s to %s (%s); counting what is dropped "
                "(liveview_dropped_total) until it is back",
                endpoint.signal,
                endpoint.url,
                reason,
            )
        self._since[endpoint.signal] = time.monotonic()

    def recovered(self, endpoint: Endpoint) -> None:
        since = self._since.pop(endpoint.signal, None)
        if since is not None and not self._since:
            _log.warning(
                "otel-liveview: exporting to %s again after %.1f s", endpoint.url, time.monotonic() - since
            )

    def affects(self, signal: str) -> bool:
        return signal in self._since


class OtlpSender:
    """Sends one signal's export requests to its endpoint.

    `send(request, deadline)` makes one attempt, bounded by `deadline` (time.monotonic()). With
    `retry=True` it retries what the OTLP specification calls retryable, with exponential backoff,
    until the deadline; `abort()` ends such retries at once (at exit).
    """

    def __init__(self, endpoint: Endpoint, outage: Outage | None = None) -> None:
        self.endpoint = endpoint
        self.outage = outage or Outage()
        self._transport = (
            _GrpcTransport(endpoint) if endpoint.protocol == "grpc" else _HttpTransport(endpoint)
        )
        self._no_wait = threading.Event()  # set: no retry waits (at exit, or while a flush runs)
        self._aborted = False
        self._hurrying = 0

    def send(self, request: Message | bytes, deadline: float, retry: bool = False) -> Outcome:
        payload = request if isinstance(request, bytes) else request.SerializeToString()
        outcome = NO_TIME
        attempt = 0
        while (remaining := min(self.endpoint.timeout, deadline - time.monotonic())) > 0:
            outcome = self._transport.send(payload, remaining)
            if outcome.ok or not outcome.retryable or not retry:
                break
            backoff = min(2**attempt, 8) * random.uniform(0.8, 1.2)
            attempt += 1
            if time.monotonic() + backoff >= deadline or self._no_wait.wait(backoff):
                break
        if outcome.ok:
            self.outage.recovered(self.endpoint)
        elif outcome is not NO_TIME:  # no attempt, nothing learned about the collector
            self.outage.failed(self.endpoint, outcome.reason)
        return outcome

    @property
    def down(self) -> bool:
        return self.outage.affects(self.endpoint.signal)

    @contextlib.contextmanager
    def hurried(self) -> Iterator[None]:
        """While a flush runs, an export retrying in the background gives up at once (its batch is
        counted), so the flush is not stuck behind it."""
        self._hurrying += 1
        self._no_wait.set()
        try:
            yield
        finally:
            self._hurrying -= 1
            if not self._hurrying and not self._aborted:
                self._no_wait.clear()

    def abort(self) -> None:
        """From now on, no retries and no retry waits (the process is exiting)."""
        self._aborted = True
        self._no_wait.set()

    def close(self) -> None:
        self.abort()
        self._transport.close()
