"""The alerting loop with real servers: library -> vmagent -> Prometheus (shipped rules) ->
Alertmanager (shipped routing, receiver pointed at the test's webhook) -> webhook; with Debian's
Prometheus 2.53 and Alertmanager 0.28, and with the 3.14 and 0.34 builds docker-compose.yml pins
(the same loop through the real Collector is in test_prometheus3.py)."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from otel_liveview import alerts
from tests.processes import start_python, threshold_publisher
from tests.receiver import wait_until
from tests.servers import Server, Webhook

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
SHIPPED_BUILTIN = ROOT / "deploy" / alerts.BUILTIN_RULES

PUBLISHER = threshold_publisher("alerts:e2e")


@pytest.mark.parametrize(
    ("prometheus_binary", "alertmanager_binary"),
    [("prometheus", "alertmanager"), ("prometheus-3.14", "alertmanager-0.34")],
    ids=["debian-2.53-0.28", "pinned-3.14-0.34"],
)
def test_crossing_a_threshold_pages_and_recovering_resolves(
    prometheus_binary: str,
    alertmanager_binary: str,
    tmp_path: Path,
    prometheus_factory: Callable[..., Server],
    vmagent_factory: Callable[..., Server],
    alertmanager_factory: Callable[..., Server],
    webhook_receiver: Webhook,
) -> None:
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text(
        "thresholds:\n  - metric: loss\n    phase: train\n    above: 2\n    for: 0s\n    severity: critical\n"
    )
    alerts.render(thresholds, tmp_path / "deploy")

    # The shipped routing, with only its receiver and its waits changed for a test.
    config = yaml.safe_load(SHIPPED_ALERTMANAGER.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_receiver.url
    for route in [config["route"], *config["route"].get("routes", [])]:
        route["group_wait"], route["group_interval"] = "0s", "1s"
    alertmanager = alertmanager_factory(config, binary=alertmanager_binary)
    prometheus = prometheus_factory(
        binary=prometheus_binary,
        rule_files=[tmp_path / "deploy" / alerts.THRESHOLD_RULES, SHIPPED_BUILTIN],
        evaluation_interval="500ms",
        alertmanager_url=alertmanager.url,
    )
    vmagent = vmagent_factory(prometheus.url + "/api/v1/write")
    # Prometheus finds its Alertmanager a few seconds after start; measure the loop, not that.
    wait_until(lambda: _active_alertmanagers(prometheus), timeout=30, what="Prometheus to find Alertmanager")

    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": vmagent.url + "/opentelemetry/v1/metrics",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://127.0.0.1:9/v1/logs",  # events are not under test
        "OTEL_LIVEVIEW_METRIC_EVENTS": "false",
        "OTEL_METRIC_EXPORT_INTERVAL": "250",
        "OTEL_SERVICE_NAME": "alerts-e2e",
    }
    publisher = start_python(PUBLISHER, env)
    try:
        assert publisher.stdin and publisher.stdout
        publisher.stdin.write("1.0\n")
        publisher.stdin.flush()
        assert publisher.stdout.readline().strip() == "ready"

        def alert(status: str) -> Callable[[list[dict]], list[dict]]:
            return lambda notifications: [
                a
                for n in notifications
                for a in n["alerts"]
                if a["labels"]["alertname"] == "LiveViewLossAbove" and a["status"] == status
            ]

        publisher.stdin.write("2.5\n")
        publisher.stdin.flush()
        crossed = float(publisher.stdout.readline().split()[1])
        firing = webhook_receiver.wait_for(alert("firing"), timeout=60)
        paged = time.time()
        labels = firing[0]["labels"]
        assert labels == {
            "alertname": "LiveViewLossAbove",
            "severity": "critical",
            "liveview": "threshold",
            "metric": "loss",
            "phase": "train",
            "topic": "alerts:e2e",
            "job": "alerts-e2e",
            "instance": labels["instance"],
        }
        assert len(labels["instance"]) == 36  # the publisher's service.instance.id
        assert firing[0]["annotations"]["description"].startswith("loss is 2.5 on ")

        publisher.stdin.write("1.5\n")
        publisher.stdin.flush()
        recovered = float(publisher.stdout.readline().split()[1])
        resolved = webhook_receiver.wait_for(alert("resolved"), timeout=60)
        assert resolved[0]["labels"] == labels
        print(
            f"\n{prometheus_binary}, {alertmanager_binary}: threshold crossed -> firing webhook: {paged - crossed:.2f} s; "
            f"recovered -> resolved webhook: {time.time() - recovered:.2f} s "
            "(export 250 ms, vmagent ~1 s, evaluation 500 ms, group_wait 0 s)"
        )
        # No built-in rule fired along the way: nothing dropped, nothing non-finite.
        assert not [a for a in webhook_receiver.alerts() if a["labels"]["liveview"] == "builtin"]
    finally:
        publisher.kill()
        publisher.wait()


def _active_alertmanagers(prometheus: Server) -> list[dict]:
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with no_proxy.open(prometheus.url + "/api/v1/alertmanagers", timeout=5) as response:
        return json.load(response)["data"]["activeAlertmanagers"]


pytestmark = pytest.mark.servers
