"""`otel-liveview demo` fills every panel of the dashboard: its metrics go to Prometheus 3.14 (OTLP
receiver, the shipped OTLP settings and rules), its events and logs to the in-suite receiver, read
through Loki's OTLP mapping (tests/deploy/test_dashboard_logql.py); the variables are resolved as Grafana
resolves them on load (tests/support/grafana.py), and the row repeated per process is checked for each."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_dashboard_logql import loki_entry, matches
from tests.deploy.test_dashboard_ranks import RANK_PANELS
from tests.support import ROOT, grafana
from tests.support.processes import publisher_env
from tests.support.receiver import Receiver, serving_http
from tests.support.servers import Server, query, start_shipped_prometheus_3

pytestmark = pytest.mark.servers

DASHBOARD = grafana.load()
SERVICE = "liveview-demo"
TOPIC = "demo:dashboard"
EMPTY_WHEN_HEALTHY = {"Drop rate"}  # the demo drops nothing
# No launcher starts the demo: the rank panels are checked against mpirun (test_dashboard_ranks.py).
NOT_LAUNCHED = set(RANK_PANELS)


def empty_panels(prometheus: Server, logs: Receiver) -> list[str]:
    """Titles of the panels that would show no data now (a repeated panel: for any of its repeats)."""
    now = time.time()

    def fetch(selector: str | None, label: str) -> list[str]:
        return grafana.label_values(prometheus.url, selector, label, now - grafana.DEFAULT_RANGE, now)

    def instant(expr: str) -> list[dict[str, Any]]:
        return query(prometheus, expr, at=now)

    if SERVICE not in fetch("liveview_published_total", "job") or TOPIC not in fetch(None, "topic"):
        return ["(the demo's service and topic are not there yet)"]
    values, _ = grafana.on_load(prometheus.url, {"service": SERVICE, "topic": TOPIC}, now)
    entries = [loki_entry(row) for row in logs.log_rows()]
    repeats = {
        id(panel): row["repeat"] for row, inside in grafana.repeated_rows(DASHBOARD) for panel in inside
    }

    def has_data(panel: dict[str, Any], chosen: dict[str, str]) -> bool:
        for target in panel["targets"]:
            expr = grafana.interpolate(target["expr"], chosen)
            if target["datasource"]["type"] == "prometheus":
                if query(prometheus, expr, at=now):
                    return True
            elif any(matches(expr, labels, metadata) for labels, metadata, _ in entries):
                return True
        return False

    empty = []
    for panel in grafana.panels(DASHBOARD):
        if panel["title"] in EMPTY_WHEN_HEALTHY | NOT_LAUNCHED:
            continue
        if id(panel) in repeats:
            name = repeats[id(panel)]
            options = grafana.variable_options(grafana.variable(DASHBOARD, name), values, fetch, instant)
            if len(options) < 2 or not all(has_data(panel, {**values, name: option}) for option in options):
                empty.append(panel["title"])
        elif not has_data(panel, values):
            empty.append(panel["title"])
    return empty


def test_the_demo_fills_every_panel(tmp_path: Path) -> None:
    prometheus = start_shipped_prometheus_3(tmp_path / "prometheus")
    try:
        with serving_http() as logs:
            env = publisher_env(
                metrics=prometheus.url + "/api/v1/otlp/v1/metrics",
                logs=logs.endpoint + "/v1/logs",
                OTEL_METRIC_EXPORT_INTERVAL="200",
                OTEL_SERVICE_NAME=SERVICE,
            )
            command = [sys.executable, "-m", "otel_liveview.cli", "demo", "--duration", "60"]
            command += ["--step-seconds", "0.05", "--topic", TOPIC]
            demo = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            try:
                deadline = time.monotonic() + 50
                while (empty := empty_panels(prometheus, logs)) and time.monotonic() < deadline:
                    assert demo.poll() is None, demo.stderr.read().decode() if demo.stderr else ""
                    time.sleep(0.5)
                assert empty == [], f"panels without data while the demo runs: {empty}"
                assert demo.poll() is None  # all that, while it runs
            finally:
                demo.kill()
                demo.wait()
    finally:
        prometheus.stop()
