"""Self-tests of the real-server fixtures in tests/support/servers.py: each server starts and answers, the
push path relabels like Prometheus' own OTLP receiver, and a failing test shows the servers' logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from tests.support import ROOT
from tests.support.servers import (
    BINARIES,
    PushStack,
    Server,
    Webhook,
    query,
    server_binary,
    wait_for_series,
)

VERSIONS = {
    "prometheus": ["--version"],
    "promtool": ["--version"],
    "promtool3": ["--version"],
    "alertmanager": ["--version"],
    "amtool": ["--version"],
    "docker-compose": ["version"],
}


@pytest.mark.servers
@pytest.mark.parametrize("name", sorted(VERSIONS))
def test_each_fetched_binary_runs(name: str) -> None:
    result = subprocess.run(
        [server_binary(name), *VERSIONS[name]], capture_output=True, text=True, timeout=30
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    if name == "promtool3":
        assert "version 3." in output
    elif name == "docker-compose":
        assert "Docker Compose version" in output
    else:
        assert "version 2." in output or "version 0." in output


def test_a_missing_binary_skips_locally_and_fails_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVEVIEW_SERVERS_DIR", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="prometheus not found"):
        server_binary("prometheus")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="fetch-servers"):
        server_binary("vmagent")
    with pytest.raises(pytest.fail.Exception, match="build-servers"):
        server_binary("otelcol")
    assert {"prometheus", "promtool", "promtool3", "alertmanager", "vmagent", "docker-compose"} <= set(
        BINARIES
    )
    assert {"otelcol", "prometheus-3.14", "promtool-3.14", "alertmanager-0.34"} <= set(BINARIES)


@pytest.mark.servers
@pytest.mark.parametrize("name", ["prometheus-3.14", "promtool-3.14", "alertmanager-0.34"])
def test_each_built_binary_runs(name: str) -> None:
    """The builds carry no version string (the build does not stamp one); they start and answer."""
    result = subprocess.run([server_binary(name), "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert name.split("-")[0] + ", version" in result.stdout + result.stderr


@pytest.mark.servers
def test_prometheus_answers_with_the_fixture_configuration(prometheus: Server) -> None:
    assert query(prometheus, "vector(42)")[0]["value"][1] == "42"
    with urllib.request.urlopen(prometheus.url + "/api/v1/status/config", timeout=5) as response:
        config = json.load(response)["data"]["yaml"]
    shipped = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert f"out_of_order_time_window: {shipped['storage']['tsdb']['out_of_order_time_window']}" in config
    with urllib.request.urlopen(prometheus.url + "/api/v1/status/flags", timeout=5) as response:
        flags = json.load(response)["data"]
    assert flags["web.listen-address"] == prometheus.address
    assert flags["web.enable-remote-write-receiver"] == "true"


@pytest.mark.servers
def test_rules_fire_through_alertmanager_to_the_webhook(
    tmp_path: Path,
    prometheus_factory: Callable[..., Server],
    alertmanager_factory: Callable[..., Server],
    webhook_receiver: Webhook,
) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "groups:\n"
        "  - name: selftest\n"
        "    rules:\n"
        "      - alert: AlwaysFiring\n"
        "        expr: vector(1)\n"
        "        labels: {severity: info}\n"
        "        annotations: {summary: fixture self-test}\n"
    )
    alertmanager = alertmanager_factory(
        {
            "route": {
                "receiver": "hook",
                "group_by": ["alertname"],
                "group_wait": "100ms",
                "group_interval": "1s",
            },
            "receivers": [{"name": "hook", "webhook_configs": [{"url": webhook_receiver.url}]}],
        }
    )
    prometheus = prometheus_factory(
        rule_files=[rules], evaluation_interval="500ms", alertmanager_url=alertmanager.url
    )

    def firing(notifications: list[dict]) -> list[dict]:
        return [
            alert
            for payload in notifications
            for alert in payload.get("alerts", [])
            if alert["labels"].get("alertname") == "AlwaysFiring" and alert["status"] == "firing"
        ]

    alerts = webhook_receiver.wait_for(firing, timeout=30)
    assert alerts[0]["labels"] == {"alertname": "AlwaysFiring", "severity": "info"}
    assert alerts[0]["annotations"] == {"summary": "fixture self-test"}
    assert webhook_receiver.paths[0] == "/alerts"
    assert query(prometheus, 'ALERTS{alertname="AlwaysFiring",alertstate="firing"}')


def test_webhook_receiver_records_posted_json(webhook_receiver: Webhook) -> None:
    body = json.dumps({"status": "firing", "alerts": [{"labels": {"alertname": "X"}}]}).encode()
    request = urllib.request.Request(webhook_receiver.url, data=body, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    assert webhook_receiver.wait_for(lambda n: len(n) == 1, timeout=5)
    assert webhook_receiver.alerts() == [{"labels": {"alertname": "X"}}]
    with pytest.raises(AssertionError, match="no matching notification"):
        webhook_receiver.wait_for(lambda n: len(n) == 2, timeout=0.2)


def push_once(endpoint: str, resource: dict[str, str | int], label: str) -> None:
    """Export one gauge and one counter point straight from the OpenTelemetry SDK to vmagent."""
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint), export_interval_millis=60_000
    )
    provider = MeterProvider(resource=Resource.create(resource), metric_readers=[reader])
    meter = provider.get_meter("selftest")
    meter.create_gauge("selftest.level").set(2.5, {"case": label, "phase": "train"})
    meter.create_counter("selftest.events").add(3, {"case": label})
    assert provider.force_flush(10_000)
    provider.shutdown()


@pytest.mark.servers
@pytest.mark.parametrize(
    ("namespace", "job"), [(None, "selftest-svc"), ("lab", "lab/selftest-svc")], ids=["name", "namespace"]
)
def test_vmagent_labels_series_like_the_otlp_receiver(
    push_stack: PushStack, namespace: str | None, job: str
) -> None:
    label = f"relabel-{namespace}"
    resource: dict[str, str | int] = {
        "service.name": "selftest-svc",
        "service.instance.id": f"instance-{label}",
        "service.version": "1.2.3",
        "host.name": "box",
        "process.pid": 4242,
        "liveview.topic": "selftest",
        "deployment.environment": "ci",
    }
    if namespace:
        resource["service.namespace"] = namespace
    push_once(push_stack.otlp_metrics_endpoint, resource, label)

    level = wait_for_series(push_stack, f'selftest_level{{case="{label}"}}')
    events = wait_for_series(push_stack, f'selftest_events_total{{case="{label}"}}')
    assert [series["metric"] for series in level] == [
        {
            "__name__": "selftest_level",
            "case": label,
            "phase": "train",
            "job": job,
            "instance": f"instance-{label}",
        }
    ]
    assert level[0]["value"][1] == "2.5"
    assert [series["metric"] for series in events] == [
        {"__name__": "selftest_events_total", "case": label, "job": job, "instance": f"instance-{label}"}
    ]
    assert events[0]["value"][1] == "3"


@pytest.mark.servers
def test_a_failing_test_shows_the_server_log(tmp_path: Path) -> None:
    server_binary("prometheus")
    test_file = tmp_path / "test_fails.py"
    test_file.write_text(
        "def test_fails(prometheus_factory):\n"
        "    prometheus_factory(extra_config={'global': {'external_labels': {'marker': 'x'}}})\n"
        "    assert False, 'deliberate'\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.support.servers",
            "-p",
            "no:cacheprovider",
            "-q",
            test_file,
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "deliberate" in result.stdout
    assert "prometheus log, last lines" in result.stdout
    assert "Server is ready to receive web requests." in result.stdout
