"""OTLP on the wire (otel_liveview/_internal/otlp.py) in-process: where each signal goes as the
OTEL_EXPORTER_OTLP_* variables say, and OtlpSender's requests to receivers on free loopback ports
(HTTP and gRPC, a proxy, refusals, retries within the deadline), with the outage lines it writes."""

from __future__ import annotations

import base64
import gzip
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import certifi
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, ResourceMetrics, ScopeMetrics

from otel_liveview._internal import config, otlp
from otel_liveview._internal.otlp import Endpoint, OtlpSender, Outage, OutageMarkers, Outcome
from tests.support import free_port
from tests.support.receiver import Receiver, silent_listener, start_http, stop_http

REQUEST = ExportMetricsServiceRequest(
    resource_metrics=[ResourceMetrics(scope_metrics=[ScopeMetrics(metrics=[Metric(name="m")])])]
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if (
            var.startswith("OTEL_")
            or var.lower().endswith("_proxy")
            or var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
        ):
            monkeypatch.delenv(var)
    monkeypatch.setattr(config, "_warned", set())


def markers(tmp_path: Path, tree: str = "1-test") -> OutageMarkers:
    return OutageMarkers(tree, str(tmp_path))


def resolve(signal: str = "metrics", **settings: Any) -> Endpoint:
    return otlp.resolve(config.load(**settings), signal)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


# -- where each signal goes ---------------------------------------------------------------------------


def test_the_defaults_are_grpc_to_localhost_in_plaintext() -> None:
    endpoint = resolve("logs")
    assert endpoint == Endpoint(
        signal="logs",
        protocol="grpc",
        url="http://localhost:4317",
        headers={},
        timeout=10.0,
        insecure=True,
        compression=None,
        certificate=None,
        client_key=None,
        client_certificate=None,
        problem=None,
    )


def test_http_adds_the_signal_s_path_to_the_base(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve("metrics", protocol="http/protobuf").url == "http://localhost:4318/v1/metrics"
    assert (
        resolve("logs", protocol="http/protobuf", endpoint="https://h:1/base/").url
        == "https://h:1/base/v1/logs"
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", " https://collector:4318/ ")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    endpoint = resolve("logs")
    assert (endpoint.url, endpoint.insecure) == ("https://collector:4318/v1/logs", False)
    assert resolve("logs", protocol="grpc").url == "https://collector:4318"
    assert resolve("logs", protocol="http/protobuf", endpoint="http://BOX").url == "http://BOX/v1/logs"


def test_a_signal_s_own_endpoint_is_used_exactly_unless_configure_names_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", " http://metrics:9/exactly ")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    assert resolve("metrics").url == "http://metrics:9/exactly"
    assert resolve("logs").url == "http://base:4318/v1/logs"
    assert resolve("metrics", endpoint="http://mine:1").url == "http://mine:1/v1/metrics"


def test_an_endpoint_that_cannot_be_parsed_leaves_the_signal_unexported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:99999")
    endpoint = resolve("metrics")
    assert endpoint.problem is not None
    assert endpoint.problem.startswith("OTEL_EXPORTER_OTLP_ENDPOINT is not a usable URL (")
    assert endpoint.insecure is False  # no scheme read from it
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:70000")
    assert (resolve("logs").problem or "").startswith("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT is not a usable URL")
    messages = warnings_of(caplog)
    assert len(messages) == 2
    assert messages[0].startswith(
        "otel-liveview: OTEL_EXPORTER_OTLP_ENDPOINT='http://collector:99999' is not a usable"
    )
    assert messages[0].endswith("; " + otlp._OFF)


def test_headers_from_the_variables_and_configure(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Api-Key=a%20b, x = 1 ")
    assert resolve("logs").headers == {"api-key": "a b", "x": "1"}
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "only=logs")
    assert resolve("logs").headers == {"only": "logs"}
    assert resolve("metrics", headers={"x": "2", "y": "3"}).headers == {"api-key": "a b", "x": "2", "y": "3"}
    assert warnings_of(caplog) == []
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "token=secret,broken,=v,,")
    assert resolve("logs").headers == {"token": "secret"}
    (message,) = warnings_of(caplog)
    assert "secret" not in message
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "=v")
    assert resolve("logs").headers == {}
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "=v=w")
    assert resolve("logs").headers == {}
    assert len(warnings_of(caplog)) == 3  # each bad value once
    assert message == (
        "otel-liveview: OTEL_EXPORTER_OTLP_LOGS_HEADERS (its value not shown) has entries that are not "
        "key=value; ignoring those"
    )


def test_parse_headers_takes_the_baggage_format() -> None:
    assert otlp.parse_headers("A=1,b=x%3Dy,c==2, d%20e = f ,no-value,=x") == {
        "a": "1",
        "b": "x=y",
        "c": "=2",
        "d e": "f",
    }
    assert otlp.parse_headers("") == {}


def test_plaintext_follows_the_scheme_then_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve("logs", endpoint="https://h:1").insecure is False
    assert resolve("logs", endpoint="http://h:1", insecure=False).insecure is False
    assert resolve("logs", endpoint="https://h:1", insecure=True).insecure is True
    assert resolve("logs", endpoint="h:1").insecure is False
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "TRUE")
    assert resolve("logs", endpoint="h:1").insecure is True
    assert resolve("logs", endpoint="https://h:1").insecure is False
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_INSECURE", "false")
    assert resolve("logs", endpoint="h:1").insecure is False
    assert resolve("metrics", endpoint="h:1").insecure is True


def test_compression_gzip_or_none(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", " GZIP ")
    assert resolve("logs").compression == "gzip"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "none")
    assert resolve("logs").compression is None
    assert resolve("metrics").compression == "gzip"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "brotli")
    assert resolve("metrics").compression is None
    assert warnings_of(caplog) == [
        "otel-liveview: OTEL_EXPORTER_OTLP_METRICS_COMPRESSION='brotli' is not an OTLP compression (gzip, none); "
        "using none"
    ]


def test_tls_files_and_timeouts_by_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", " /ca.pem ")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "/logs-ca.pem")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/key.pem")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE", "/cert.pem")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", "   ")  # blank: the general one applies
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")
    logs, metrics = resolve("logs"), resolve("metrics")
    assert (logs.certificate, logs.client_key, logs.client_certificate) == ("/logs-ca.pem", "/key.pem", None)
    assert (metrics.certificate, metrics.client_key, metrics.client_certificate) == (
        "/ca.pem",
        "/key.pem",
        "/cert.pem",
    )
    assert (logs.timeout, metrics.timeout) == (2.5, 2.5)


def test_short_reasons() -> None:
    assert otlp._short("HTTPConnectionPool: ... [Errno 111] Connection refused')") == "connection refused"
    assert otlp._short(TimeoutError("read timed out")) == "timed out"
    assert otlp._short("[Errno -2] Name or service not known") == "name or service not known"
    assert otlp._short("SSL: certificate verify failed (self signed)") == "certificate verify failed"
    assert otlp._short("x" * 200) == "x" * 200
    assert otlp._short("x" * 201) == "x" * 200 + "…"


def test_the_proxy_for_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert otlp._proxy_for("http://collector:4318/v1/logs") is None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    monkeypatch.setenv("ALL_PROXY", "http://all:1")
    monkeypatch.setenv("NO_PROXY", "skip.example")
    assert otlp._proxy_for("http://collector:4318/v1/logs") == "http://proxy:3128"
    assert otlp._proxy_for("https://collector:4318/v1/logs") == "http://all:1"
    assert otlp._proxy_for("http://skip.example:4318/v1/logs") is None


# -- sending over HTTP ---------------------------------------------------------------------------------


class Recording(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, dict[str, str], bytes]]
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(self.status)
        if self.status in (302, 307):  # a redirect to where it would be taken
            self.send_header("Location", self.path if self.path.startswith("/") else "/v1/metrics")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recording() -> Iterator[tuple[str, type[Recording]]]:
    handler = type("Handler", (Recording,), {"seen": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def http_endpoint(url: str, **changes: Any) -> Endpoint:
    values: dict[str, Any] = {"signal": "metrics", "protocol": "http/protobuf", "url": url, "timeout": 5.0}
    values.update(changes)
    return Endpoint(**values)


def sender(endpoint: Endpoint, tmp_path: Path) -> OtlpSender:
    return OtlpSender(endpoint, Outage(markers(tmp_path)))


def test_a_request_is_posted_as_protobuf_with_the_headers(
    recording: tuple[str, type[Recording]], tmp_path: Path
) -> None:
    url, handler = recording
    endpoint = http_endpoint(url + "/v1/metrics", headers={"authorization": "Bearer t"})
    with_sender = sender(endpoint, tmp_path)
    assert with_sender.usable
    assert with_sender.send(REQUEST, time.monotonic() + 5) == otlp.OK
    assert with_sender.send(REQUEST.SerializeToString(), time.monotonic() + 5).ok  # bytes as they are
    with_sender.close()
    (method, path, headers, body), second = handler.seen
    assert (method, path, body, second[3]) == ("POST", "/v1/metrics", REQUEST.SerializeToString(), body)
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["authorization"] == "Bearer t"
    assert "content-encoding" not in headers


def test_gzip_compresses_the_body(recording: tuple[str, type[Recording]], tmp_path: Path) -> None:
    url, handler = recording
    assert (
        sender(http_endpoint(url + "/v1/metrics", compression="gzip"), tmp_path)
        .send(REQUEST, time.monotonic() + 5)
        .ok
    )
    (_, _, headers, body) = handler.seen[0]
    assert headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == REQUEST.SerializeToString()


def test_a_proxy_from_the_environment_with_its_credentials(
    recording: tuple[str, type[Recording]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = recording
    monkeypatch.setenv("HTTP_PROXY", url.replace("http://", "http://us%20er:pa%3Ass@"))
    target = "http://collector.invalid:4318/v1/metrics"
    assert sender(http_endpoint(target), tmp_path).send(REQUEST, time.monotonic() + 5).ok
    (_, path, headers, _) = handler.seen[0]
    assert path == target
    assert headers["proxy-authorization"] == "Basic " + base64.b64encode(b"us er:pa:ss").decode()
    monkeypatch.setenv("HTTP_PROXY", url.replace("http://", "http://user@"))
    assert sender(http_endpoint(target), tmp_path).send(REQUEST, time.monotonic() + 5).ok
    assert handler.seen[-1][2]["proxy-authorization"] == "Basic " + base64.b64encode(b"user:").decode()
    handler.seen.clear()
    monkeypatch.setenv("HTTP_PROXY", url)
    assert sender(http_endpoint(target), tmp_path).send(REQUEST, time.monotonic() + 5).ok
    assert "proxy-authorization" not in handler.seen[0][2]


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (429, True),
        (502, True),
        (503, True),
        (504, True),
        (400, False),
        (500, False),
        (404, False),
        (300, False),
        (302, False),
        (307, False),
    ],
)
def test_an_http_error_says_whether_it_may_be_retried(
    recording: tuple[str, type[Recording]], tmp_path: Path, status: int, retryable: bool
) -> None:
    url, handler = recording
    handler.status = status
    outcome = sender(http_endpoint(url + "/v1/metrics"), tmp_path).send(REQUEST, time.monotonic() + 5)
    assert outcome == Outcome(False, retryable, f"HTTP {status}")
    assert len(handler.seen) == 1  # no retry without retry=True


def test_any_2xx_is_success(recording: tuple[str, type[Recording]], tmp_path: Path) -> None:
    url, handler = recording
    handler.status = 299
    assert sender(http_endpoint(url + "/v1/metrics"), tmp_path).send(REQUEST, time.monotonic() + 5).ok


def test_a_refused_connection_is_retryable_and_reported_once_until_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/metrics"
    refused = sender(http_endpoint(url), tmp_path)
    outcome = refused.send(REQUEST, time.monotonic() + 5)
    assert outcome == Outcome(False, True, "connection refused")
    assert refused.down
    refused.send(REQUEST, time.monotonic() + 5)
    assert warnings_of(caplog) == [
        f"otel-liveview: cannot export metrics to {url} (connection refused); counting what is dropped "
        "(liveview_dropped_total) until it is back"
    ]
    receiver = Receiver()
    server = start_http(receiver, port=port)
    try:
        assert refused.send(REQUEST, time.monotonic() + 5).ok
    finally:
        stop_http(server)
    assert not refused.down
    last = warnings_of(caplog)[-1]
    assert last.startswith(f"otel-liveview: exporting metrics to {url} again after ") and last.endswith(" s")
    assert float(last.split()[-2]) < 30
    assert len(receiver.metrics) == 1


def test_no_time_left_is_no_attempt_and_no_outage(
    recording: tuple[str, type[Recording]], tmp_path: Path
) -> None:
    url, handler = recording
    quick = sender(http_endpoint(url + "/v1/metrics"), tmp_path)
    assert quick.send(REQUEST, time.monotonic() - 1) is otlp.NO_TIME
    assert Outcome(False, True, "the deadline passed before an attempt") == otlp.NO_TIME
    assert handler.seen == [] and not quick.down


def test_retries_wait_with_backoff_until_the_deadline(
    recording: tuple[str, type[Recording]], tmp_path: Path
) -> None:
    url, handler = recording
    handler.status = 503
    retrying = sender(http_endpoint(url + "/v1/metrics"), tmp_path)
    started = time.monotonic()
    outcome = retrying.send(REQUEST, started + 1.5, retry=True)
    elapsed = time.monotonic() - started
    assert outcome == Outcome(False, True, "HTTP 503")
    assert len(handler.seen) == 2  # one wait of 0.8-1.2 s fits, the next (1.6-2.4 s) does not
    assert 0.8 <= elapsed < 1.5
    handler.status = 400
    handler.seen.clear()
    assert retrying.send(REQUEST, time.monotonic() + 5, retry=True) == Outcome(False, False, "HTTP 400")
    assert len(handler.seen) == 1  # not retryable: at once


def test_a_hurried_or_aborted_sender_does_not_wait_to_retry(
    recording: tuple[str, type[Recording]], tmp_path: Path
) -> None:
    url, handler = recording
    handler.status = 503
    retrying = sender(http_endpoint(url + "/v1/metrics"), tmp_path)
    with retrying.hurried():
        with retrying.hurried():
            pass
        started = time.monotonic()
        assert not retrying.send(REQUEST, started + 30, retry=True).ok
        assert time.monotonic() - started < 0.5 and len(handler.seen) == 1
    assert not retrying._no_wait.is_set()  # waits again after the flush
    retrying.abort()
    with retrying.hurried():
        pass
    assert retrying._no_wait.is_set()  # an aborted sender stays so
    started = time.monotonic()
    assert not retrying.send(REQUEST, started + 30, retry=True).ok
    assert time.monotonic() - started < 0.5 and len(handler.seen) == 2


def test_the_request_timeout_is_the_endpoint_s_within_the_deadline(tmp_path: Path) -> None:
    with silent_listener() as listener:
        hung = sender(http_endpoint(listener.url + "/v1/metrics", timeout=0.3), tmp_path)
        started = time.monotonic()
        outcome = hung.send(REQUEST, started + 30)
        assert (outcome.ok, outcome.retryable, outcome.reason) == (False, True, "timed out")
        assert 0.25 <= time.monotonic() - started < 2
        hung = sender(http_endpoint(listener.url + "/v1/metrics", timeout=30), tmp_path)
        started = time.monotonic()
        assert not hung.send(REQUEST, started + 0.3).ok
        assert time.monotonic() - started < 2


def test_an_unusable_endpoint_fails_at_once_without_an_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = sender(http_endpoint("http://h:99999", problem="OTEL_EXPORTER_OTLP_ENDPOINT is bad"), tmp_path)
    assert not broken.usable
    assert broken.send(REQUEST, time.monotonic() + 5) == Outcome(
        False, False, "OTEL_EXPORTER_OTLP_ENDPOINT is bad"
    )
    assert not broken.down and warnings_of(caplog) == []
    broken.close()


def test_a_tls_file_that_cannot_be_read_turns_the_exporter_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = str(tmp_path / "missing.pem")
    endpoint = Endpoint(
        signal="logs", protocol="grpc", url="https://collector:4317", insecure=False, certificate=missing
    )
    off = sender(endpoint, tmp_path)
    assert not off.usable
    outcome = off.send(REQUEST, time.monotonic() + 5)
    assert (outcome.ok, outcome.retryable) == (False, False) and "No such file or directory" in outcome.reason
    (message,) = warnings_of(caplog)
    assert message.startswith("otel-liveview: cannot export events and logs to https://collector:4317 (")
    assert message.endswith(otlp._OFF)


def test_a_ca_file_that_is_not_a_certificate_for_http_turns_the_exporter_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bad))
    endpoint = http_endpoint("https://127.0.0.1:1/v1/metrics")
    transport = otlp._HttpTransport(endpoint)
    assert transport._pool.connection_pool_kw["ca_certs"] == str(bad)
    monkeypatch.setenv("CURL_CA_BUNDLE", "/curl.pem")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    assert otlp._HttpTransport(endpoint)._pool.connection_pool_kw["ca_certs"] == "/curl.pem"
    explicit = otlp._HttpTransport(
        http_endpoint("https://h:1", certificate="/mine.pem", client_key="/k", client_certificate="/c")
    )
    kw = explicit._pool.connection_pool_kw
    assert (kw["ca_certs"], kw["key_file"], kw["cert_file"], kw["cert_reqs"]) == (
        "/mine.pem",
        "/k",
        "/c",
        "CERT_REQUIRED",
    )
    monkeypatch.delenv("CURL_CA_BUNDLE")
    assert otlp._HttpTransport(endpoint)._pool.connection_pool_kw["ca_certs"] == certifi.where()


def test_tls_errors_are_not_retried(tmp_path: Path, recording: tuple[str, type[Recording]]) -> None:
    url, _ = recording
    outcome = sender(http_endpoint(url.replace("http:", "https:") + "/v1/metrics"), tmp_path).send(
        REQUEST, time.monotonic() + 5
    )
    assert (outcome.ok, outcome.retryable) == (False, False)
    assert outcome.reason.startswith("TLS error: ") and "None" not in outcome.reason


def test_a_url_without_a_host_fails_at_once(tmp_path: Path) -> None:
    outcome = sender(http_endpoint("http:///v1/metrics"), tmp_path).send(REQUEST, time.monotonic() + 5)
    assert outcome == Outcome(False, False, "No host specified.")


def test_retries_back_off_exponentially_up_to_8_seconds_with_jitter(
    recording: tuple[str, type[Recording]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = recording
    handler.status = 503
    retrying = sender(http_endpoint(url + "/v1/metrics"), tmp_path)
    jitter: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        jitter.append((low, high))
        return 0.5

    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return len(waits) >= 6  # told to stop waiting after the sixth

    monkeypatch.setattr(otlp.random, "uniform", uniform)
    monkeypatch.setattr(retrying._no_wait, "wait", wait)
    assert not retrying.send(REQUEST, time.monotonic() + 100, retry=True).ok
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert jitter == [(0.8, 1.2)] * 6
    assert len(handler.seen) == 6


# -- sending over gRPC --------------------------------------------------------------------------------------


def grpc_endpoint(url: str, **changes: Any) -> Endpoint:
    values: dict[str, Any] = {
        "signal": "metrics",
        "protocol": "grpc",
        "url": url,
        "timeout": 5.0,
        "insecure": True,
    }
    values.update(changes)
    return Endpoint(**values)


def test_grpc_requests_arrive_with_or_without_gzip(grpc_receiver: Receiver, tmp_path: Path) -> None:
    plain = sender(grpc_endpoint(grpc_receiver.endpoint, headers={"x-key": "v"}), tmp_path)
    assert plain.send(REQUEST, time.monotonic() + 5) == otlp.OK
    bare = grpc_receiver.endpoint.removeprefix("http://")
    assert sender(grpc_endpoint(bare, compression="gzip"), tmp_path).send(REQUEST, time.monotonic() + 5).ok
    logs = sender(grpc_endpoint(grpc_receiver.endpoint, signal="logs"), tmp_path)
    assert logs.send(b"", time.monotonic() + 5).ok
    plain.close()
    assert grpc_receiver.metrics == [REQUEST, REQUEST] and len(grpc_receiver.logs) == 1


def test_a_grpc_refusal_is_retryable_by_its_code(grpc_receiver: Receiver, tmp_path: Path) -> None:
    grpc_receiver.status = 503
    outcome = sender(grpc_endpoint(grpc_receiver.endpoint), tmp_path).send(REQUEST, time.monotonic() + 5)
    assert outcome == Outcome(False, True, "UNAVAILABLE receiver told to fail")


def test_a_grpc_call_to_nothing_is_unavailable(tmp_path: Path) -> None:
    outcome = sender(grpc_endpoint(f"http://127.0.0.1:{free_port()}", timeout=2), tmp_path).send(
        REQUEST, time.monotonic() + 5
    )
    assert (outcome.ok, outcome.retryable) == (False, True)
    assert outcome.reason.startswith("UNAVAILABLE") or outcome.reason.startswith("DEADLINE_EXCEEDED")


def test_a_grpc_server_that_is_not_tls_fails_a_secure_channel(
    grpc_receiver: Receiver, tmp_path: Path
) -> None:
    secure = sender(grpc_endpoint(grpc_receiver.endpoint, insecure=False, timeout=2), tmp_path)
    assert secure.usable
    assert not secure.send(REQUEST, time.monotonic() + 5).ok
    assert grpc_receiver.metrics == []


# -- outages ---------------------------------------------------------------------------------------------------


def test_an_outage_is_said_once_per_tree_and_its_end_by_the_first_to_get_through(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = http_endpoint("http://c:4318/v1/logs", signal="logs")
    first, second = Outage(markers(tmp_path)), Outage(markers(tmp_path))
    first.failed(endpoint, "connection refused")
    first.failed(endpoint, "connection refused")
    second.failed(endpoint, "connection refused")
    assert first.affects("logs") and second.affects("logs") and not first.affects("metrics")
    assert warnings_of(caplog) == [
        "otel-liveview: cannot export events and logs to http://c:4318/v1/logs (connection refused); counting "
        "what is dropped (liveview_dropped_total) until it is back"
    ]
    second.recovered(endpoint)
    first.recovered(endpoint)
    first.recovered(endpoint)  # not failing: nothing to say
    assert len(warnings_of(caplog)) == 2
    assert warnings_of(caplog)[1].startswith(
        "otel-liveview: exporting events and logs to http://c:4318/v1/logs again after "
    )
    assert not first.affects("logs") and not second.affects("logs")
    assert list(tmp_path.iterdir()) == []


def test_markers_are_per_tree_signal_and_url(tmp_path: Path) -> None:
    one = markers(tmp_path, "1-a")
    assert one.claim(("logs", "u"))
    assert not one.claim(("logs", "u"))
    assert one.claim(("metrics", "u")) and one.claim(("logs", "v"))
    assert markers(tmp_path, "1-b").claim(("logs", "u"))
    names = sorted(path.name for path in tmp_path.iterdir())
    assert len(names) == 4 and all(name.startswith(OutageMarkers.PREFIX) for name in names)
    assert sum(name.startswith("otel-liveview-outage-1-a-") for name in names) == 3
    assert all(len(name) == len("otel-liveview-outage-1-a-") + 16 for name in names)
    digest = hashlib.sha256(b"logs\0u").hexdigest()[:16]  # the same name in every process of the tree
    assert f"otel-liveview-outage-1-a-{digest}" in names
    assert all((tmp_path / name).stat().st_mode & 0o777 == 0o600 for name in names)


def test_release_says_how_long_the_tree_s_outage_lasted(tmp_path: Path) -> None:
    one = markers(tmp_path)
    assert one.claim(("logs", "u"))
    (path,) = tmp_path.iterdir()
    os.utime(path, (time.time() - 30, time.time() - 30))
    lasted = one.release(("logs", "u"), 2.0)
    assert lasted is not None and 29 < lasted < 40
    assert one.release(("logs", "u"), 2.0) is None  # already ended
    assert one.claim(("logs", "u"))
    assert one.release(("logs", "u"), 100.0) == 100.0  # the longer of the two


def test_without_a_directory_each_process_says_it_and_its_end(tmp_path: Path) -> None:
    nowhere = OutageMarkers("1-a", str(tmp_path / "missing"))
    assert nowhere.claim(("logs", "u")) and nowhere.claim(("logs", "u"))
    assert nowhere.release(("logs", "u"), 3.0) == 3.0
    assert nowhere.release(("logs", "u"), 3.0) is None


def test_stale_markers_go_when_an_outage_starts_and_fresh_ones_stay(tmp_path: Path) -> None:
    old = tmp_path / f"{OutageMarkers.PREFIX}9-x-0000"
    recent = tmp_path / f"{OutageMarkers.PREFIX}9-y-0000"
    other = tmp_path / "unrelated"
    for path in (old, recent, other):
        path.write_text("")
    day = time.time() - OutageMarkers.STALE - 10
    os.utime(old, (day, day))
    os.utime(other, (day, day))
    hour = time.time() - 3600
    os.utime(recent, (hour, hour))
    assert OutageMarkers.STALE == 86400
    stale_dir = tmp_path / f"{OutageMarkers.PREFIX}9-z-0000"
    stale_dir.mkdir()
    os.utime(stale_dir, (day, day))
    assert markers(tmp_path).claim(("logs", "u"))  # a marker that cannot be removed is left
    assert not old.exists() and recent.exists() and other.exists() and stale_dir.exists()


def test_the_tree_s_first_process_clears_its_markers_at_exit(tmp_path: Path) -> None:
    root = OutageMarkers(f"{os.getpid()}-tree", str(tmp_path))
    child = OutageMarkers(f"{os.getpid() + 1}-tree", str(tmp_path))
    assert root.is_root and not child.is_root
    assert root.claim(("logs", "u")) and root.claim(("metrics", "u")) and child.claim(("logs", "u"))
    Outage(child).forget()
    assert len(list(tmp_path.iterdir())) == 3
    (tmp_path / f"{OutageMarkers.PREFIX}{os.getpid()}-tree-dir").mkdir()  # cannot be unlinked: left
    Outage(root).forget()
    left = sorted(path.name for path in tmp_path.iterdir())
    assert left == sorted(
        [f"{OutageMarkers.PREFIX}{os.getpid()}-tree-dir", child._path(("logs", "u")).rsplit("/", 1)[1]]
    )


def test_the_tree_is_named_once_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(otlp.TREE_VARIABLE, raising=False)
    first = OutageMarkers.of_this_tree()
    pid, _, suffix = first.tree.partition("-")
    assert pid == str(os.getpid()) and len(suffix) == 16 and first.is_root
    assert os.environ[otlp.TREE_VARIABLE] == first.tree
    assert OutageMarkers.of_this_tree().tree == first.tree
    monkeypatch.setenv(otlp.TREE_VARIABLE, "1-parent")
    assert not OutageMarkers.of_this_tree().is_root
    assert OutageMarkers.of_this_tree()._directory == tempfile.gettempdir()


def test_grpc_sends_the_headers_as_metadata_and_the_deadline(tmp_path: Path) -> None:
    from concurrent import futures

    import grpc

    seen: list[tuple[dict[str, str], float | None]] = []

    def export(payload: bytes, context: grpc.ServicerContext) -> bytes:
        seen.append((dict(context.invocation_metadata()), context.time_remaining()))
        context.abort(grpc.StatusCode.UNAVAILABLE, "")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(export, response_serializer=lambda b: b)
    method = "opentelemetry.proto.collector.metrics.v1.MetricsService"
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(method, {"Export": handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        endpoint = grpc_endpoint(f"http://127.0.0.1:{port}", headers={"x-key": "v"}, timeout=3.0)
        outcome = sender(endpoint, tmp_path).send(REQUEST, time.monotonic() + 5)
    finally:
        server.stop(None)
    assert outcome == Outcome(False, True, "UNAVAILABLE")  # no details: the code alone
    ((metadata, remaining),) = seen
    assert metadata["x-key"] == "v"
    assert remaining is not None and 0 < remaining < 3.5  # the endpoint's timeout, not the deadline
