"""The shipped Prometheus and Alertmanager files with the versions docker-compose.yml pins, built from
their Go modules: Prometheus 3.14 (and its promtool) and Alertmanager 0.34; and the alerting loop
through the real Collector: threshold crossing -> Collector -> Prometheus 3.14 (rules from
deploy/prometheus/rules) -> Alertmanager 0.34 (deploy/alertmanager/alertmanager.yml) -> webhook.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from tests.support import ROOT
from tests.support.processes import ThresholdPublisher, publisher_env
from tests.support.receiver import serving_http, wait_until
from tests.support.servers import (
    PROMETHEUS_3_FLAGS,
    SHIPPED_ALERTMANAGER,
    SHIPPED_RULES,
    Collector,
    Server,
    Webhook,
    active_alertmanagers,
    query,
    server_binary,
    shipped_alertmanager_config,
    shipped_prometheus_config,
    wait_for_series,
)

pytestmark = pytest.mark.servers

RULE_FILES = sorted(SHIPPED_RULES.glob("*.yml"))
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str) -> Any:
    with _http.open(url, timeout=10) as response:
        return json.load(response)


def problems(server: Server) -> list[str]:
    """Log lines at level WARN or ERROR (Prometheus and Alertmanager log `level=...` pairs)."""
    text = server.log_path.read_text(errors="replace")
    return [line for line in text.splitlines() if re.search(r"\blevel=(WARN|ERROR)\b", line)]


def promtool(*args: str | os.PathLike[str], cwd: Path = ROOT) -> str:
    result = subprocess.run(
        [server_binary("promtool-3.14"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_promtool_3_14_passes_the_shipped_config_rules_and_rule_tests(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(shipped_prometheus_config(alertmanager="alertmanager:9093"))  # rule path only
    assert "SUCCESS: 2 rule files found" in promtool("check", "config", "--lint=all", "--lint-fatal", config)
    output = promtool("check", "rules", "--lint=all", "--lint-fatal", *RULE_FILES)
    assert output.count("SUCCESS") == len(RULE_FILES) == 2
    tests = sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.yml"))
    assert len(tests) == 3
    assert promtool("test", "rules", *(t.name for t in tests), cwd=tests[0].parent).count("SUCCESS") == 3


def test_amtool_passes_the_shipped_alertmanager_config() -> None:
    result = subprocess.run(
        [server_binary("amtool"), "check-config", SHIPPED_ALERTMANAGER], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "1 inhibit rules" in result.stdout


def push_gauge(endpoint: str, instance: str) -> None:
    """One gauge point straight from the OpenTelemetry SDK over OTLP/HTTP."""
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint), export_interval_millis=60_000
    )
    resource = Resource.create({"service.name": "prom3-selftest", "service.instance.id": instance})
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    provider.get_meter("selftest").create_gauge("selftest.level").set(2.5, {"case": "otlp"})
    assert provider.force_flush(10_000)
    provider.shutdown()


def test_prometheus_3_14_and_alertmanager_0_34_run_the_shipped_files(
    prometheus_factory: Callable[..., Server], alertmanager_factory: Callable[..., Server]
) -> None:
    """Alertmanager 0.34 with deploy/alertmanager/alertmanager.yml as it is; Prometheus 3.14 with the
    shipped prometheus.yml (rule path and Alertmanager target changed, see shipped_prometheus_config)
    and the compose flags: rules loaded, Alertmanager found, OTLP taken, nothing warned about."""
    alertmanager = alertmanager_factory(SHIPPED_ALERTMANAGER, binary="alertmanager-0.34")
    status = get(alertmanager.url + "/api/v2/status")
    loaded = yaml.safe_load(status["config"]["original"])
    assert [r["name"] for r in loaded["receivers"]] == ["liveview-webhook"]
    assert loaded["route"]["routes"][0]["matchers"] == ['severity="critical"']
    assert len(loaded["inhibit_rules"]) == 1

    prometheus = prometheus_factory(
        binary="prometheus-3.14",
        config_text=shipped_prometheus_config(alertmanager=alertmanager.address),
        extra_args=PROMETHEUS_3_FLAGS,
    )
    groups = get(prometheus.url + "/api/v1/rules")["data"]["groups"]
    shipped = {
        group["name"]: [rule["alert"] for rule in group["rules"]]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
    }
    assert {g["name"]: [r["name"] for r in g["rules"]] for g in groups} == shipped
    assert {g["file"] for g in groups} == {str(path) for path in RULE_FILES}
    assert all(r["health"] != "err" for g in groups for r in g["rules"])
    assert sum(len(rules) for rules in shipped.values()) == 11

    flags = get(prometheus.url + "/api/v1/status/flags")["data"]
    assert flags["web.enable-otlp-receiver"] == flags["web.enable-remote-write-receiver"] == "true"
    config = yaml.safe_load(get(prometheus.url + "/api/v1/status/config")["data"]["yaml"])
    assert config["otlp"]["translation_strategy"] == "UnderscoreEscapingWithSuffixes"

    wait_until(
        lambda: get(prometheus.url + "/api/v1/alertmanagers")["data"]["activeAlertmanagers"],
        timeout=60,
        what="Prometheus to find Alertmanager",
    )
    push_gauge(prometheus.url + "/api/v1/otlp/v1/metrics", "prom3-otlp")
    result = wait_for_series(prometheus, 'selftest_level{instance="prom3-otlp"}')
    assert [s["metric"] for s in result] == [
        {"__name__": "selftest_level", "case": "otlp", "job": "prom3-selftest", "instance": "prom3-otlp"}
    ]
    assert result[0]["value"][1] == "2.5"
    assert problems(prometheus) == [] and problems(alertmanager) == []


def test_threshold_crossing_pages_through_the_collector_prometheus_3_14_and_alertmanager_0_34(
    tmp_path: Path,
    prometheus_factory: Callable[..., Server],
    alertmanager_factory: Callable[..., Server],
    collector_factory: Callable[..., Collector],
    webhook_receiver: Webhook,
) -> None:
    """The shipped rule files, with one change in a copy: LiveViewLossAbove's `for: 5m` becomes 0s so
    the test does not wait five minutes. The built-in rules are used as they are (NaN pages at once).
    The shipped routing with its receiver pointed at the test's webhook and its waits shortened."""
    rules = tmp_path / "rules"
    rules.mkdir()
    for path in RULE_FILES:
        text = path.read_text()
        if path.name == "liveview-thresholds.rules.yml":
            assert text.count("    for: 5m\n") == 1
            text = text.replace("    for: 5m\n", "    for: 0s\n")
        (rules / path.name).write_text(text)

    alertmanager = alertmanager_factory(
        shipped_alertmanager_config(webhook_receiver.url), binary="alertmanager-0.34"
    )
    prometheus = prometheus_factory(
        binary="prometheus-3.14",
        rule_files=sorted(rules.glob("*.yml")),
        evaluation_interval="500ms",
        alertmanager_url=alertmanager.url,
        extra_args=PROMETHEUS_3_FLAGS,
    )
    with serving_http() as loki:
        collector = collector_factory(
            remote_write_url=prometheus.url + "/api/v1/write", loki_url=loki.endpoint + "/otlp"
        )
        wait_until(
            lambda: active_alertmanagers(prometheus),
            timeout=60,
            what="Prometheus to find Alertmanager",
        )
        env = publisher_env(
            collector.otlp_grpc_endpoint,
            protocol="grpc",
            OTEL_EXPORTER_OTLP_INSECURE="true",
            OTEL_LIVEVIEW_METRIC_EVENTS="false",
            OTEL_METRIC_EXPORT_INTERVAL="250",
            OTEL_SERVICE_NAME="alerts-otelcol",
        )
        with ThresholdPublisher("alerts:otelcol", env, first=1.0) as publisher:
            wait_for_series(prometheus, 'liveview_metric{job="alerts-otelcol"} == 1', timeout=60)

            crossed = publisher.set(2.5)
            firing = webhook_receiver.wait_for_alert("LiveViewLossAbove", "firing", timeout=90)
            paged = time.time() - crossed
            labels = firing[0]["labels"]
            assert labels == {
                "alertname": "LiveViewLossAbove",
                "severity": "warning",
                "liveview": "threshold",
                "metric": "loss",
                "phase": "train",
                "topic": "alerts:otelcol",
                "job": "alerts-otelcol",
                "instance": labels["instance"],
            }
            assert len(labels["instance"]) == 36  # the publisher's service.instance.id
            assert firing[0]["annotations"] == {
                "summary": "Training loss above 2 for 5 minutes",  # the shipped text; 0s in this copy
                "description": f"loss is 2.5 on {labels['instance']} (topic alerts:otelcol), above 2 for 5m.",
            }

            recovered = publisher.set(1.5)
            resolved = webhook_receiver.wait_for_alert("LiveViewLossAbove", "resolved", timeout=90)
            cleared = time.time() - recovered
            assert resolved[0]["labels"] == labels

            diverged = publisher.set(float("nan"))
            nan = webhook_receiver.wait_for_alert("LiveViewMetricNotFinite", "firing", timeout=90)
            nan_paged = time.time() - diverged
            assert nan[0]["labels"] == {
                "alertname": "LiveViewMetricNotFinite",
                "severity": "critical",
                "liveview": "builtin",
                "metric": "loss",
                "phase": "train",
                "topic": "alerts:otelcol",
                "value": "nan",
                "job": "alerts-otelcol",
                "instance": labels["instance"],
            }
            print(
                f"\nthrough the Collector, Prometheus 3.14, Alertmanager 0.34: crossed -> firing webhook "
                f"{paged:.2f} s; recovered -> resolved {cleared:.2f} s; NaN -> critical page {nan_paged:.2f} s "
                "(export 250 ms, batch 200 ms, evaluation 500 ms, group_wait 0 s)"
            )
    assert not [
        a for a in webhook_receiver.alerts() if a["labels"]["alertname"] == "LiveViewDroppingTelemetry"
    ]
    assert collector.log_lines() == []
    assert query(prometheus, 'ALERTS{alertname="LiveViewMetricNotFinite",alertstate="firing"}')
