"""Every Prometheus query of the LiveView dashboard, variables filled in, against a real Prometheus
fed by a publishing experiment through the push path (library -> vmagent -> Prometheus)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.processes import start_python
from tests.receiver import Receiver
from tests.servers import PushStack, query, wait_for_series

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = json.loads((ROOT / "grafana_dashboards" / "liveview.json").read_text())
TOPIC = "dashboard:queries"
# Empty unless an alert fires; this test checks only that Prometheus accepts it.
MAY_BE_EMPTY = {"Firing alerts"}

PUBLISHER = f"""
import sys, threading, time
from otel_liveview import LiveViewExperiment
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), done.set()), daemon=True).start()
with LiveViewExperiment(name="dash", base_topic={TOPIC!r}) as experiment:
    b = experiment.broadcaster
    for step in range(40):
        b.publish_metric_sync("loss", 1 / (step + 1), step=step, epoch=step // 10, phase="train")
        b.publish_data_sync("sensors", {{"temperature": 20 + step, "arm": {{"x": step}}}})
        time.sleep(0.02)  # let the export thread take each sample off the one-record queue
    b.publish_metric_sync("grad_norm", float("nan"))
    print("published", flush=True)
    while not done.wait(0.05):  # keep overflowing the one-record queue until the test is done
        for _ in range(3):
            b.publish_log_sync("info", "more logs than the queue holds")
"""


def prometheus_targets() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in DASHBOARD["panels"]
        for target in panel.get("targets", [])
        if target["datasource"]["type"] == "prometheus"
    ] + [(f"variable {v['name']}", as_promql(v["query"]["query"])) for v in DASHBOARD["templating"]["list"]]


def as_promql(variable_query: str) -> str:
    """Grafana's label_values(selector, label) is the values of `label` in `group by (label) (selector)`."""
    match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", variable_query)
    assert match, variable_query
    return f"group by ({match.group(2)}) ({match.group(1)})"


def fill(expr: str) -> str:
    return (
        expr.replace("$topic", TOPIC)
        .replace("$metric", ".*")
        .replace("$stream", ".*")
        .replace("$instance", ".*")
    )


@pytest.mark.servers
def test_every_dashboard_query_returns_its_series(push_stack: PushStack, http_receiver: Receiver) -> None:
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": push_stack.otlp_metrics_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": http_receiver.endpoint + "/v1/logs",
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
        "OTEL_BLRP_MAX_QUEUE_SIZE": "1",  # so that the drop-rate panel has something to show
        "OTEL_LIVEVIEW_METRIC_EVENTS": "false",
        "OTEL_SERVICE_NAME": "dashboard-queries",
    }
    publisher = start_python(PUBLISHER, env)
    try:
        assert publisher.stdout and publisher.stdout.readline().strip() == "published"
        # Rates need two samples of a counter; wait for the slowest-filling panel's series.
        wait_for_series(
            push_stack,
            'sum(rate(liveview_dropped_total{job="dashboard-queries"}[1m])) > 0',
            lambda result: result,
            timeout=30,
        )
        wait_for_series(
            push_stack, f'liveview_metric_nonfinite{{topic="{TOPIC}",value="nan"}} == 1', bool, timeout=30
        )
        for title, expr in prometheus_targets():
            result = query(push_stack, fill(expr))
            if title not in MAY_BE_EMPTY:
                assert result, f"{title}: {fill(expr)} returned nothing"
        # The panels show what they claim to show.
        status = query(push_stack, fill(DASHBOARD_QUERY["Experiment status"]))
        assert [(r["metric"]["experiment"], r["metric"]["status"]) for r in status] == [("dash", "running")]
        streams = query(push_stack, fill(DASHBOARD_QUERY["Latest stream values"]))
        latest = {r["metric"]["key"]: float(r["value"][1]) for r in streams}
        assert set(latest) == {"temperature", "arm.x"}  # a one-record queue may drop some samples ...
        assert latest["temperature"] == latest["arm.x"] + 20  # ... but both keys come from one sample
        assert float(query(push_stack, fill(DASHBOARD_QUERY["Step"]))[0]["value"][1]) == 39
        assert float(query(push_stack, fill(DASHBOARD_QUERY["Epoch"]))[0]["value"][1]) == 3
        assert float(query(push_stack, fill(DASHBOARD_QUERY["Processes alive"]))[0]["value"][1]) == 1
        topics = query(push_stack, DASHBOARD_QUERY["variable topic"])
        assert TOPIC in {r["metric"]["topic"] for r in topics}
    finally:
        publisher.kill()
        publisher.wait()


DASHBOARD_QUERY = {title: expr for title, expr in prometheus_targets()}
