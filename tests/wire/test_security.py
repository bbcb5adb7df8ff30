"""TLS to the collector and proxies with the standard variables, and credentials that never leak."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.processes import publisher_env
from tests.support.receiver import Receiver, serving_http

TOKEN = "s3cr3t-token-value"

SCRIPT = """
import otel_liveview
b = otel_liveview.ExperimentBroadcaster("security")
b.publish_log_sync("info", "over tls")
b.publish_metric_sync("m", 1.0)
print(otel_liveview.flush(10), otel_liveview.stats()["dropped"])
"""


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=publisher_env(OTEL_EXPORTER_OTLP_TIMEOUT="2000", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def https_receiver(tmp_path: Path) -> Iterator[tuple[Receiver, Path]]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with serving_http(tls=context) as receiver:
        yield receiver, cert


def test_tls_with_the_collectors_certificate(https_receiver: tuple[Receiver, Path]) -> None:
    receiver, cert = https_receiver
    assert receiver.endpoint.startswith("https://")
    result = run(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_CERTIFICATE": str(cert)}
    )
    assert result.stdout.split()[0] == "True", result.stderr[-2000:]
    assert [row.body for row in receiver.log_rows() if row.event_name == ""] == ["over tls"]


def test_tls_refuses_an_unknown_certificate(https_receiver: tuple[Receiver, Path]) -> None:
    receiver, _ = https_receiver
    result = run({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
    assert "log/export_failed" in result.stdout  # counted, not sent in the clear, not crashed
    assert receiver.log_rows() == []


def test_otlp_http_goes_through_the_proxy_the_environment_names(http_receiver: Receiver) -> None:
    # The receiver stands in for the forward proxy: it answers the absolute-form requests a proxy
    # gets (`POST http://collector.invalid:4318/v1/logs`). ".invalid" never resolves, so whatever
    # arrives came through the proxy.
    collector = "http://collector.invalid:4318"
    proxied = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector, "http_proxy": http_receiver.endpoint, "no_proxy": ""}
    result = run(proxied)
    assert result.stdout.split()[0] == "True", result.stderr[-2000:]
    assert {f"{collector}/v1/logs", f"{collector}/v1/metrics"} <= set(http_receiver.attempts)
    assert [row.body for row in http_receiver.log_rows() if row.event_name == ""] == ["over tls"]

    http_receiver.clear()
    result = run({**proxied, "no_proxy": "collector.invalid"})  # NO_PROXY: straight to the host
    assert result.stdout.split()[0] == "False" and "log/export_failed" in result.stdout
    assert http_receiver.log_rows() == []


def test_auth_headers_never_appear_in_logs_or_errors(http_receiver: Receiver) -> None:
    http_receiver.status = 401  # the collector rejects the credentials
    result = run(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": http_receiver.endpoint,
            "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{TOKEN}",
        }
    )
    assert "export_failed" in result.stdout
    assert "401" in result.stderr or "Unauthorized" in result.stderr  # the failure is reported ...
    assert TOKEN not in result.stdout + result.stderr  # ... without the credential


def test_no_secrets_in_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    pattern = "|".join(
        [
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
            r"AKIA[0-9A-Z]{16}",
            r"ghp_[0-9A-Za-z]{36}",
            r"xox[bp]-[0-9A-Za-z-]+",
        ]
    )
    found = subprocess.run(["grep", "-lE", pattern, "--", *tracked], cwd=ROOT, capture_output=True, text=True)
    assert found.stdout == "", f"possible secrets in: {found.stdout}"
