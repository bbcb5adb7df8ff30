"""The `otel-liveview` command: demo and check, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT
from tests.support.receiver import Receiver


def cli(*args: str, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_liveview.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_publishes_every_kind_from_two_processes(http_receiver: Receiver) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": http_receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
    }
    result = cli("demo", "--duration", "3", "--step-seconds", "0.02", "--topic", "demo:test", env=env)
    assert result.returncode == 0, result.stderr
    # Into a pipe: a line per epoch (150 steps: epochs 0, 1, 2), no carriage returns, then the outcome.
    lines = result.stdout.splitlines()
    assert "\r" not in result.stdout
    assert [line.split()[:4] for line in lines[:-1]] == [
        ["step", str(step), "epoch", str(step // 50)] for step in range(0, 50 * len(lines[:-1]), 50)
    ]
    assert 1 <= len(lines) - 1 <= 3 and lines[-1] == "done"

    rows = http_receiver.log_rows()
    assert {row.resource["service.instance.id"] for row in rows} and len(
        {row.resource["process.pid"] for row in rows}
    ) == 2
    events = {row.event_name for row in rows}
    assert {"liveview.metric", "liveview.data", "liveview.status", ""} <= events
    levels = {row.severity_text for row in rows if row.event_name == ""}
    assert {"DEBUG", "INFO"} <= levels
    statuses: dict[str, list[str]] = {}
    for row in rows:
        if row.event_name == "liveview.status":
            statuses.setdefault(row.body["experiment"], []).append(row.body["status"])
    assert statuses == {
        "demo-mnist": ["initializing", "running", "completed"],
        "demo-lr-sweep-0.5": ["initializing", "running", "failed"],  # the sweep that diverges
    }
    sensors = [row.body for row in rows if row.event_name == "liveview.data"]
    assert sensors and {"temperature", "pressure", "arm", "status"} <= set(sensors[-1])

    metrics = {dict(attrs)["metric"] for _, attrs in http_receiver.latest("liveview.metric")}
    assert {"loss", "accuracy", "learning_rate"} <= metrics
    phases = {dict(attrs).get("phase") for _, attrs in http_receiver.latest("liveview.metric")}
    assert {"train", "eval"} <= phases  # the evaluation worker is the second process


def test_check_reports_reachable_and_unreachable_endpoints(http_receiver: Receiver) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": http_receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20s3cret-token",
    }
    result = cli("check", env=env)
    assert result.returncode == 0, result.stdout
    assert f"metrics: http/protobuf -> {http_receiver.endpoint}/v1/metrics: export accepted" in result.stdout
    assert (len(http_receiver.metrics), len(http_receiver.logs)) == (1, 1)
    assert "s3cret-token" not in result.stdout and "OTEL_EXPORTER_OTLP_HEADERS=<redacted>" in result.stdout

    result = cli(
        "check",
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
    )
    assert result.returncode == 1
    assert "logs: grpc -> http://127.0.0.1:9: NOT reachable (UNAVAILABLE connection refused)" in result.stdout

    result = cli("check", env={"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"})
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "otel-liveview check: OTEL_EXPORTER_OTLP_PROTOCOL='carrier-pigeon': use grpc or http/protobuf\n"
    )


def test_version_and_usage_errors_are_plain() -> None:
    version = cli("--version", env={})
    assert version.returncode == 0 and version.stdout.startswith("otel-liveview ")
    for args, message in (
        (("check", "--timeout", "-1"), "argument --timeout: '-1' is not a positive number of seconds"),
        (("demo", "--duration", "-1"), "argument --duration: '-1' is not a positive number of seconds"),
        (("demo", "--step-seconds", "soon"), "argument --step-seconds: 'soon' is not a positive number"),
        (("view", "--refresh", "0"), "argument --refresh: '0' is not a positive number of seconds"),
    ):
        result = cli(*args, env={})
        assert result.returncode == 2, args
        assert message in result.stderr and "Traceback" not in result.stderr
        assert result.stdout == ""


def test_check_reports_unusable_certificate_files(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://127.0.0.1:9",
        "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE": str(bogus),
    }
    result = cli("check", "--timeout", "0.5", env=env)
    assert result.returncode == 1
    assert f"logs: CA certificate {bogus} is not usable" in result.stdout
    assert "metrics: CA certificate" not in result.stdout  # only the logs signal names that file
