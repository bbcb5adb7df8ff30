"""The alerting loop with real servers: library -> vmagent -> Prometheus (shipped rules) ->
Alertmanager (shipped routing, receiver pointed at the test's webhook) -> webhook; with Debian's
Prometheus 2.53 and Alertmanager 0.28, and with the 3.14 and 0.34 builds docker-compose.yml pins
(the same loop through the real Collector is in test_prometheus3.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from otel_liveview.alerts import rules as alerts
from tests.support import ROOT
from tests.support.processes import ThresholdPublisher, publisher_env
from tests.support.receiver import wait_until
from tests.support.servers import Server, Webhook, active_alertmanagers, shipped_alertmanager_config

SHIPPED_BUILTIN = ROOT / "deploy" / alerts.BUILTIN_RULES


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

    alertmanager = alertmanager_factory(
        shipped_alertmanager_config(webhook_receiver.url), binary=alertmanager_binary
    )
    prometheus = prometheus_factory(
        binary=prometheus_binary,
        rule_files=[tmp_path / "deploy" / alerts.THRESHOLD_RULES, SHIPPED_BUILTIN],
        evaluation_interval="500ms",
        alertmanager_url=alertmanager.url,
    )
    vmagent = vmagent_factory(prometheus.url + "/api/v1/write")
    # Prometheus finds its Alertmanager a few seconds after start; measure the loop, not that.
    wait_until(lambda: active_alertmanagers(prometheus), timeout=30, what="Prometheus to find Alertmanager")

    env = publisher_env(
        metrics=vmagent.url + "/opentelemetry/v1/metrics",
        logs="http://127.0.0.1:9/v1/logs",  # events are not under test
        OTEL_LIVEVIEW_METRIC_EVENTS="false",
        OTEL_METRIC_EXPORT_INTERVAL="250",
        OTEL_SERVICE_NAME="alerts-e2e",
    )
    with ThresholdPublisher("alerts:e2e", env, first=1.0) as publisher:
        crossed = publisher.set(2.5)
        firing = webhook_receiver.wait_for_alert("LiveViewLossAbove", "firing", timeout=60)
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

        recovered = publisher.set(1.5)
        resolved = webhook_receiver.wait_for_alert("LiveViewLossAbove", "resolved", timeout=60)
        assert resolved[0]["labels"] == labels
        print(
            f"\n{prometheus_binary}, {alertmanager_binary}: threshold crossed -> firing webhook: {paged - crossed:.2f} s; "
            f"recovered -> resolved webhook: {time.time() - recovered:.2f} s "
            "(export 250 ms, vmagent ~1 s, evaluation 500 ms, group_wait 0 s)"
        )
        # No built-in rule fired along the way: nothing dropped, nothing non-finite.
        assert not [a for a in webhook_receiver.alerts() if a["labels"]["liveview"] == "builtin"]


pytestmark = pytest.mark.servers
