"""`otel-liveview check` against real peers: the suite's OTLP receiver (HTTP and gRPC), a plain web
server, a closed port, servers that refuse the credentials, TLS peers, a peer that never answers;
and its validation of every OTEL_* value, each error naming the variable."""

from __future__ import annotations

import contextlib
import http.server
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from otel_liveview.cli import main as cli
from tests.support import free_port
from tests.support.receiver import Receiver, serving_http, silent_listener

Run = tuple[int, str, str]


@pytest.fixture
def check(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """Runs `otel-liveview check` in this process with exactly the OTEL_* variables given."""

    def run(env: dict[str, str], *args: str) -> Run:
        for name in [name for name in os.environ if name.startswith("OTEL_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("GRPC_VERBOSITY", "ERROR")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        code = cli.main(["check", "--timeout", "2", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def endpoints(out: str) -> dict[str, str]:
    """signal -> what check says about its endpoint."""
    return {
        line.split(":", 1)[0]: line.split(": ", 1)[1]
        for line in out.splitlines()
        if line.startswith(("metrics: ", "logs: "))
    }


@contextlib.contextmanager
def web_server() -> Iterator[str]:
    """`python3 -m http.server`: HTTP/1.1, no OTLP."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def grpc_refusing(code: grpc.StatusCode) -> Iterator[str]:
    """A gRPC server that answers every call with `code`, as a collector's auth extension does."""

    class Refusing(grpc.GenericRpcHandler):
        def service(self, details: Any) -> Any:
            def refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
                context.abort(code, "no valid token")
                return b""

            return grpc.unary_unary_rpc_method_handler(refuse)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((Refusing(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_real_receiver_accepts_an_export_of_each_signal(
    check: Any, http_receiver: Receiver, grpc_receiver: Receiver, protocol: str
) -> None:
    receiver = http_receiver if protocol == "http/protobuf" else grpc_receiver
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}
    code, out, err = check(env)
    assert (code, err) == (0, "")
    suffix = "/v1/{}" if protocol == "http/protobuf" else ""
    assert endpoints(out) == {
        signal: f"{protocol} -> {receiver.endpoint}{suffix.format(signal)}: export accepted"
        for signal in ("metrics", "logs")
    }
    assert (len(receiver.metrics), len(receiver.logs)) == (1, 1)  # one empty, valid request each
    assert not receiver.metrics[0].resource_metrics and not receiver.logs[0].resource_logs


def test_a_web_server_on_the_grpc_port_is_not_an_otlp_endpoint(check: Any) -> None:
    with web_server() as url:
        code, out, _ = check({"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
        assert code == 1
        assert endpoints(out)["metrics"] == (
            f"grpc -> {url}: not an OTLP/gRPC endpoint: an HTTP/1 server answered (OTLP/HTTP? set "
            "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf, usually port 4318)"
        )
        code, out, _ = check(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
        )
        assert code == 1
        assert endpoints(out)["logs"] == (
            f"http/protobuf -> {url}/v1/logs: not an OTLP/HTTP endpoint (HTTP 501: no OTLP receiver at this path)"
        )


def test_otlp_http_to_a_grpc_receiver_is_a_protocol_mismatch(check: Any, grpc_receiver: Receiver) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": grpc_receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    code, out, _ = check(env)
    assert code == 1
    assert endpoints(out)["metrics"] == (
        f"http/protobuf -> {grpc_receiver.endpoint}/v1/metrics: not an OTLP/HTTP endpoint: an HTTP/2 (gRPC) "
        "server answered (OTLP/gRPC? set OTEL_EXPORTER_OTLP_PROTOCOL=grpc, usually port 4317)"
    )
    assert grpc_receiver.requests == 0


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_closed_port_is_not_reachable(check: Any, protocol: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = check({"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol})
    assert (code, err) == (1, "")
    reason = "connection refused" if protocol == "http/protobuf" else "UNAVAILABLE connection refused"
    assert endpoints(out)["logs"].endswith(f": NOT reachable ({reason})")


@pytest.mark.parametrize("status", [401, 403])
def test_an_http_server_refusing_the_credentials(check: Any, http_receiver: Receiver, status: int) -> None:
    http_receiver.status = status
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": http_receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20expired",
    }
    code, out, _ = check(env)
    assert code == 1
    assert endpoints(out)["metrics"] == (
        f"http/protobuf -> {http_receiver.endpoint}/v1/metrics: authentication failed (HTTP {status}): "
        "check the credentials in OTEL_EXPORTER_OTLP_HEADERS"
    )
    assert "expired" not in out


@pytest.mark.parametrize("status", [grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED])
def test_a_grpc_server_refusing_the_credentials(check: Any, status: grpc.StatusCode) -> None:
    with grpc_refusing(status) as url:
        code, out, _ = check({"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert code == 1
    assert endpoints(out)["logs"] == (
        f"grpc -> {url}: authentication failed ({status.name}): check the credentials in "
        "OTEL_EXPORTER_OTLP_HEADERS"
    )


def test_a_grpc_server_without_the_otlp_services(check: Any) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))  # no service at all
    url = f"http://127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    try:
        code, out, _ = check({"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    finally:
        server.stop(grace=None)
    assert code == 1
    assert endpoints(out) == {
        signal: f"grpc -> {url}: not an OTLP/gRPC endpoint: a gRPC server without the OTLP {signal} service"
        for signal in ("metrics", "logs")
    }


def test_tls_failures_say_which(check: Any, tls_files: tuple[Path, ssl.SSLContext]) -> None:
    cert, context = tls_files
    with serving_http(tls=context) as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        }
        code, out, _ = check(env)
        assert code == 1
        assert endpoints(out)["metrics"] == (
            f"http/protobuf -> {receiver.endpoint}/v1/metrics: TLS failed: the server's certificate is not "
            "trusted; set OTEL_EXPORTER_OTLP_CERTIFICATE to its CA"
        )
        code, out, _ = check({**env, "OTEL_EXPORTER_OTLP_CERTIFICATE": str(cert)})
        assert code == 0, out
        assert endpoints(out)["metrics"].endswith(": export accepted")


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_https_to_a_plaintext_server(check: Any, http_receiver: Receiver, protocol: str) -> None:
    url = http_receiver.endpoint.replace("http://", "https://")
    code, out, _ = check({"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol})
    assert code == 1
    assert endpoints(out)["logs"].endswith(
        ": TLS failed: the server does not speak TLS on this port; use http://"
    )


def test_a_peer_that_never_answers(check: Any) -> None:
    with silent_listener() as listener:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": listener.url, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
        code, out, _ = check(env, "--timeout", "0.3")
    assert code == 1
    assert endpoints(out)["metrics"].endswith(": no answer in time (timed out)")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("OTEL_EXPORTER_OTLP_HEADERS", "garbage", "'garbage' is not key=value"),
        (
            "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
            "a=line%0Abreak",
            "header 'a': the value may hold only printable",
        ),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a b=c", "header name 'a b' may hold only letters"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x:1", "scheme 'ftp': use http:// or https://"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::1:bad", "Invalid IPv6 URL"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:99999", "Port out of range 0-65535"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://:4318/v1/metrics", "names no host"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "localhost:0", "port 0: give the collector's port"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "abc", "is not a number"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "0", "must be more than 0 (milliseconds)"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon", "use grpc or http/protobuf"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "use gzip or none"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "maybe", "must be true or false"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem", "is not a readable file"),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "inf", "is not a number"),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "0", "must be a whole number, at least 1"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "-5", "must not be negative"),
        ("OTEL_LIVEVIEW_PROMETHEUS_PORT", "70000", "must be a port number, 1 to 65535"),
        ("OTEL_SDK_DISABLED", "1", "must be true or false"),
        ("OTEL_METRICS_EXPORTER", "prometheus", "unknown exporter(s) prometheus (use otlp, console, none)"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team", "'team' is not key=value"),
        ("OTEL_SERVICE_NAME", "", None),  # empty is unset
        ("OTEL_LIVEVIEW_EXIT_TIMEOUT", " ", "is blank: unset it, or give a value"),
    ],
)
def test_every_value_is_validated_and_named(check: Any, name: str, value: str, message: str | None) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}", name: value}
    code, out, err = check(env)
    if message is None:
        assert (code, err) == (1, "")
        return
    assert code == 2 and out == ""
    assert err.startswith(f"otel-liveview check: {name}={value!r}: {message}")
    assert err.count("\n") == 1 and err.endswith("\n")  # one line


def test_otlp_http_needs_a_url_not_host_and_port(check: Any) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
    }
    code, _, err = check(env)
    assert code == 2
    assert err == (
        "otel-liveview check: OTEL_EXPORTER_OTLP_ENDPOINT='localhost:4318': OTLP/HTTP needs a URL such as "
        "http://localhost:4318\n"
    )


def test_grpc_takes_host_and_port(check: Any, grpc_receiver: Receiver) -> None:
    host_port = grpc_receiver.endpoint.removeprefix("http://")
    code, out, _ = check(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": host_port,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
        }
    )
    assert code == 0, out
    assert endpoints(out)["metrics"] == f"grpc -> {host_port}: export accepted"


def test_pull_mode_without_its_extra_is_a_failure(check: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "OTEL_LIVEVIEW_PROMETHEUS_PORT": "9464",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    code, out, _ = check(env)
    assert code == 0 and "pull mode: http://127.0.0.1:9464/metrics\n" in out
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as after a plain `pip install .`
    code, out, _ = check(env)
    assert code == 1
    assert (
        "pull mode: http://127.0.0.1:9464/metrics: NOT served, prometheus-client is missing (the 'pull' extra)\n"
        in out
    )


def test_no_environment_heading_without_variables(check: Any) -> None:
    code, out, _ = check({})
    assert code in (0, 1)  # localhost:4317, whatever listens there
    assert "environment:" not in out
    code, out, _ = check({"OTEL_SERVICE_NAME": "sweep"})
    assert out.splitlines()[:2] == ["environment:", "  OTEL_SERVICE_NAME=sweep"]
