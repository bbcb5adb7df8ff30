"""OTLP on the wire: where each signal goes (the OTEL_EXPORTER_OTLP_* variables) and one request at a
time to it, over gRPC or HTTP/protobuf, never longer than the caller's deadline.

The SDK's exporters retry inside `export()` with sleeps of their own, so a dead collector could hold
a flush or the interpreter's exit for many seconds. Here each request is one attempt; `OtlpSender`
retries only while its caller's deadline allows, stops at once when told to, and reports an outage
with one warning line instead of a line per attempt.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import hashlib
import logging
import os
import random
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import certifi
import urllib3
from google.protobuf.message import Message

from otel_liveview._internal import config, grpc_client
from otel_liveview._internal.config import Settings

_log = logging.getLogger("otel_liveview")

SIGNALS = ("metrics", "logs")
_GRPC_METHODS = {
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
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
    problem: str | None = None  # why nothing can be sent there (a URL that cannot be parsed)


def _env(signal: str, name: str) -> str | None:
    """OTEL_EXPORTER_OTLP_<SIGNAL>_<NAME>, else OTEL_EXPORTER_OTLP_<NAME> (the spec's precedence)."""
    var = _var(signal, name)
    return None if var is None else os.environ[var].strip()


def resolve(settings: Settings, signal: str) -> Endpoint:
    """The endpoint the exporter of `signal` uses. `configure(endpoint=...)` is a base URL, like
    OTEL_EXPORTER_OTLP_ENDPOINT; OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT is used exactly as given.

    A variable that cannot be used gets one warning and its default (`config.unusable`); an
    endpoint URL that cannot be parsed at all leaves the signal unexported (`Endpoint.problem`).
    """
    protocol = config.protocol_for(settings, signal)
    specific_var = f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
    specific = os.environ.get(specific_var, "").strip()
    if settings.endpoint or not specific:
        source = "OTEL_EXPORTER_OTLP_ENDPOINT"
        base = (
            settings.endpoint or os.environ.get(source, "").strip() or config.DEFAULT_ENDPOINTS[protocol]
        ).rstrip("/")
        url = f"{base}/v1/{signal}" if protocol == "http/protobuf" else base
    else:
        source, url = specific_var, specific
    problem = config.url_problem(url)
    if problem is not None:  # a variable's (config.load already refused such a configure(endpoint=...))
        config.unusable(source, os.environ.get(source, url).strip(), problem, _OFF)
        problem = f"{source} {problem}"
    headers = _headers(signal)
    headers.update(settings.headers or {})
    timeout = config.export_timeout(signal)
    insecure_var = _env(signal, "INSECURE")
    scheme = "" if problem else urlsplit(url).scheme
    if settings.insecure is not None:
        insecure = settings.insecure
    elif scheme in ("http", "https"):
        insecure = scheme == "http"
    else:
        insecure = (insecure_var or "").lower() == "true"
    return Endpoint(
        signal=signal,
        protocol=protocol,
        url=url,
        headers=headers,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        insecure=insecure,
        compression=_compression(signal),
        certificate=_env(signal, "CERTIFICATE"),
        client_key=_env(signal, "CLIENT_KEY"),
        client_certificate=_env(signal, "CLIENT_CERTIFICATE"),
        problem=problem,
    )


_OFF = "not exporting to it: what would go there is counted as dropped (liveview_dropped_total)"


def _var(signal: str, name: str) -> str | None:
    """Which of OTEL_EXPORTER_OTLP_<SIGNAL>_<NAME>, OTEL_EXPORTER_OTLP_<NAME> applies (set and not blank)."""
    for var in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
        if os.environ.get(var, "").strip():
            return var
    return None


def _compression(signal: str) -> str | None:
    var = _var(signal, "COMPRESSION")
    if var is None:
        return None
    raw = os.environ[var].strip()
    if raw.lower() in ("gzip", "none"):
        return None if raw.lower() == "none" else "gzip"
    config.unusable(var, raw, "is not an OTLP compression (gzip, none)", "using none")
    return None


def _headers(signal: str) -> dict[str, str]:
    var = _var(signal, "HEADERS")
    if var is None:
        return {}
    raw = os.environ[var].strip()
    headers = parse_headers(raw)
    if any(not pair.partition("=")[0].strip() or "=" not in pair for pair in raw.split(",") if pair.strip()):
        config.unusable(var, raw, "has entries that are not key=value", "ignoring those", secret=True)
    return headers


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
    """OTLP/gRPC through `grpc_client` (pure Python, so that a fork never meets a call in flight)."""

    def __init__(self, endpoint: Endpoint) -> None:
        tls = None
        if not endpoint.insecure:
            tls = grpc_client.tls_context(
                endpoint.certificate, endpoint.client_certificate, endpoint.client_key
            )
        self._client = grpc_client.GrpcClient(
            endpoint.url,
            _GRPC_METHODS[endpoint.signal],
            tls=tls,
            metadata=endpoint.headers,
            compress=endpoint.compression == "gzip",
        )

    def send(self, payload: bytes, timeout: float) -> Outcome:
        try:
            status = self._client.call(payload, timeout)
        except grpc_client.CallFailed as failure:
            status = failure.status
        if status.code == "OK":
            return OK
        return Outcome(
            False, status.code in _RETRYABLE_GRPC, f"{status.code} {_short(status.message)}".strip()
        )

    def close(self) -> None:
        self._client.close()


class _Unusable:
    """The transport of an endpoint nothing can be sent to: each request fails at once (and is
    counted as dropped by the caller), nothing waits."""

    def __init__(self, reason: str) -> None:
        self._outcome = Outcome(False, False, reason)

    def send(self, payload: bytes, timeout: float) -> Outcome:
        return self._outcome

    def close(self) -> None:
        pass


def _transport_for(endpoint: Endpoint) -> _HttpTransport | _GrpcTransport | _Unusable:
    if endpoint.problem is not None:
        return _Unusable(endpoint.problem)
    try:
        return _GrpcTransport(endpoint) if endpoint.protocol == "grpc" else _HttpTransport(endpoint)
    except (OSError, ValueError) as error:  # a TLS file that cannot be read, a target grpc refuses
        reason = _short(error)
        _log.warning(
            "otel-liveview: cannot export %s to %s (%s); %s",
            SIGNAL_WORDS[endpoint.signal],
            endpoint.url,
            reason,
            _OFF,
        )
        return _Unusable(reason)


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


SIGNAL_WORDS = {"metrics": "metrics", "logs": "events and logs"}  # what each OTLP signal carries here
TREE_VARIABLE = "OTEL_LIVEVIEW_PROCESS_TREE"  # set by a tree's first process, inherited by its children


class Outage:
    """One warning line when exporting a signal to its endpoint starts to fail, one when it gets
    through again (the drops themselves are counted in liveview.dropped).

    Per signal, and once per outage for the whole process tree: the process that first sees a
    signal fail creates a marker file (`OutageMarkers`) and says so, the others see the file and
    stay quiet; the first to get through again removes it and says that.
    """

    def __init__(self, markers: OutageMarkers | None = None) -> None:
        self._since: dict[tuple[str, str], float] = {}  # (signal, url) -> monotonic time of its first failure
        self._markers = markers or OutageMarkers.of_this_tree()
        self.spooling: str | None = None  # the spool folder what cannot be sent goes to, if any

    def failed(self, endpoint: Endpoint, reason: str) -> None:
        key = (endpoint.signal, endpoint.url)
        if key in self._since:
            return
        self._since[key] = time.monotonic()
        if self._markers.claim(key):
            instead = (
                "counting what is dropped (liveview_dropped_total)"
                if self.spooling is None
                else f"spooling to {self.spooling}"
            )
            _log.warning(
                "otel-liveview: cannot export %s to %s (%s); %s until it is back",
                SIGNAL_WORDS[endpoint.signal],
                endpoint.url,
                reason,
                instead,
            )

    def recovered(self, endpoint: Endpoint) -> None:
        key = (endpoint.signal, endpoint.url)
        since = self._since.pop(key, None)
        if since is None:
            return
        lasted = self._markers.release(key, time.monotonic() - since)
        if lasted is not None:
            _log.warning(
                "otel-liveview: exporting %s to %s again after %.1f s",
                SIGNAL_WORDS[endpoint.signal],
                endpoint.url,
                lasted,
            )

    def affects(self, signal: str) -> bool:
        return any(failing == signal for failing, _ in self._since)

    def forget(self) -> None:
        """The process is exiting: if it started the tree, the tree's markers go with it (an outage
        still going on is not carried into a later run)."""
        if self._markers.is_root:
            self._markers.clear()


class OutageMarkers:
    """The outages a process tree has reported: one empty file per signal and endpoint in the
    temporary directory, its name made of the tree's id and a hash of both.

    The tree's id (TREE_VARIABLE) is set in the environment by its first process, so forked,
    spawned and subprocess children inherit it; a new run is a new tree.
    """

    PREFIX = "otel-liveview-outage-"
    STALE = 24 * 3600.0  # seconds: a marker this old was left by a tree that was killed

    def __init__(self, tree: str, directory: str) -> None:
        self.tree = tree
        self._directory = directory
        self._unmarked: set[tuple[str, str]] = set()  # claimed without a file (the directory failed us)

    @classmethod
    def of_this_tree(cls) -> OutageMarkers:
        tree = os.environ.setdefault(TREE_VARIABLE, f"{os.getpid()}-{uuid.uuid4().hex[:16]}")
        return cls(tree, tempfile.gettempdir())

    def _path(self, key: tuple[str, str]) -> str:
        digest = hashlib.sha256("\0".join(key).encode()).hexdigest()[:16]
        return os.path.join(self._directory, f"{self.PREFIX}{self.tree}-{digest}")

    def claim(self, key: tuple[str, str]) -> bool:
        """True if this process is the tree's first to see `key` fail (so it reports the outage)."""
        try:
            os.close(os.open(self._path(key), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return False
        except OSError:  # no usable temporary directory: better a line per process than none
            self._unmarked.add(key)
            return True
        self._remove_stale()
        return True

    def _remove_stale(self) -> None:
        """Markers of trees that were killed during an outage (their first process could not remove
        them), once they are a day old; looked for only when an outage starts."""
        now = time.time()
        for path in glob.glob(os.path.join(glob.escape(self._directory), f"{self.PREFIX}*")):
            with contextlib.suppress(OSError):
                if now - os.stat(path).st_mtime > self.STALE:
                    os.unlink(path)

    def release(self, key: tuple[str, str], seen: float) -> float | None:
        """How long the tree's outage of `key` lasted if this process ends it (reports its end),
        else None; `seen`: how long this process saw it, should the file tell nothing."""
        if key in self._unmarked:
            self._unmarked.discard(key)
            return seen
        path = self._path(key)
        try:
            began = os.stat(path).st_mtime
            os.unlink(path)
        except OSError:  # gone: another process of the tree got through first and said so
            return None
        return max(seen, time.time() - began)

    def clear(self) -> None:
        """Remove the tree's markers (its first process exits; an outage still going on is not
        carried into another run)."""
        for path in glob.glob(os.path.join(glob.escape(self._directory), f"{self.PREFIX}{self.tree}-*")):
            with contextlib.suppress(OSError):
                os.unlink(path)

    @property
    def is_root(self) -> bool:
        """Whether this process started the tree."""
        return self.tree.split("-", 1)[0] == str(os.getpid())


class OtlpSender:
    """Sends one signal's export requests to its endpoint.

    `send(request, deadline)` makes one attempt, bounded by `deadline` (time.monotonic()). With
    `retry=True` it retries what the OTLP specification calls retryable, with exponential backoff,
    until the deadline; `abort()` ends such retries at once (at exit).
    """

    def __init__(self, endpoint: Endpoint, outage: Outage | None = None) -> None:
        self.endpoint = endpoint
        self.outage = outage or Outage()
        self._transport = _transport_for(endpoint)
        # Nothing can be sent (already said once, at start): no outage to report, only drops to count.
        self.usable = not isinstance(self._transport, _Unusable)
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
        elif outcome is not NO_TIME and self.usable:  # no attempt, nothing learned about the collector
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
