"""Every Prometheus query of the LiveView dashboard, its variables resolved as Grafana resolves them
(tests/grafana.py: each variable query run against Prometheus' label values API, regexes applied,
datasource variables on their provisioned defaults), against a real Prometheus fed by a publishing
experiment through the push path (library -> vmagent -> Prometheus), next to another service
publishing to the same topic."""

from __future__ import annotations

import os
import time

import pytest

from tests import grafana
from tests.processes import run_python, start_python
from tests.receiver import Receiver
from tests.servers import PushStack, query, wait_for_series

DASHBOARD = grafana.load()
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


OTHER = f"""
import time
from otel_liveview import ExperimentBroadcaster, flush
b = ExperimentBroadcaster(base_topic={TOPIC!r})
for _ in range(3):
    b.publish_metric_sync("loss", 99.0, step=1000, epoch=100, phase="train")
    b.publish_data_sync("sensors", {{"temperature": -1}})
    time.sleep(0.3)
flush()
"""


def prometheus_targets(values: dict[str, str]) -> list[tuple[str, str]]:
    return [
        (title, grafana.interpolate(target["expr"], values))
        for title, target in grafana.targets(DASHBOARD, "prometheus")
    ]


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
        "OTEL_RESOURCE_ATTRIBUTES": "service.namespace=research",
    }
    # Another service publishing to the same topic: the dashboard must not mix it in.
    run_python(OTHER, {**env, "OTEL_SERVICE_NAME": "dashboard-queries-other", "OTEL_RESOURCE_ATTRIBUTES": ""})
    publisher = start_python(PUBLISHER, env)
    try:
        assert publisher.stdout and publisher.stdout.readline().strip() == "published"
        # Rates need two samples of a counter; wait for the slowest-filling panel's series.
        wait_for_series(
            push_stack,
            'sum(rate(liveview_dropped_total{job="research/dashboard-queries"}[1m])) > 0',
            lambda result: result,
            timeout=30,
        )
        wait_for_series(
            push_stack, f'liveview_metric_nonfinite{{topic="{TOPIC}",value="nan"}} == 1', bool, timeout=30
        )
        wait_for_series(push_stack, 'liveview_metric{job="dashboard-queries-other"}', bool, timeout=30)
        # The variables as Grafana resolves them on load, the user having picked the service.
        options: dict[str, list[str]] = {}
        now = time.time()

        def fetch(selector: str | None, label: str) -> list[str]:
            found = grafana.label_values(push_stack.prometheus.url, selector, label, now - 900, now)
            options[f"{label} of {selector}"] = found
            return found

        values = grafana.resolve(DASHBOARD, fetch, {"service": SERVICE, "topic": TOPIC})
        assert values["prometheus"] == "liveview-prometheus" and values["loki"] == "liveview-loki"
        assert (values["service_name"], values["service_namespace"]) == ("dashboard-queries", "research")
        assert values["metric"] == values["stream"] == values["instance"] == ".*"
        assert all(options.values()), options  # every variable query found values
        assert options[f'topic of {{job="{SERVICE}",topic!=""}}'] == [TOPIC]
        assert len(options[f'instance of liveview_published_total{{job="{SERVICE}"}}']) == 1
        assert set(options[f'metric of liveview_metric{{job="{SERVICE}",topic="{TOPIC}"}}']) == {"loss"}

        queries = dict(prometheus_targets(values))
        for title, expr in prometheus_targets(values):
            result = query(push_stack, expr)
            if title not in MAY_BE_EMPTY:
                assert result, f"{title}: {expr} returned nothing"
            assert {r["metric"].get("job", SERVICE) for r in result} == ({SERVICE} if result else set()), (
                title
            )
        # The panels show what they claim to show, for this service alone.
        status = query(push_stack, queries["Experiment status"])
        assert [(r["metric"]["experiment"], r["metric"]["status"]) for r in status] == [("dash", "running")]
        streams = query(push_stack, queries["Latest stream values"])
        latest = {r["metric"]["key"]: float(r["value"][1]) for r in streams}
        assert set(latest) == {"temperature", "arm.x"}  # a one-record queue may drop some samples ...
        assert latest["temperature"] == latest["arm.x"] + 20  # ... but both keys come from one sample
        assert float(query(push_stack, queries["Step"])[0]["value"][1]) == 39  # not the other's 1000
        assert float(query(push_stack, queries["Epoch"])[0]["value"][1]) == 3
        assert float(query(push_stack, queries["Processes alive"])[0]["value"][1]) == 1
        # Without the service, the same topic mixes both services: the narrowing is what keeps them apart.
        unnarrowed = queries["Step"].replace(f'job="{SERVICE}",', "")
        assert float(query(push_stack, unnarrowed)[0]["value"][1]) == 1000
    finally:
        publisher.kill()
        publisher.wait()


SERVICE = "research/dashboard-queries"  # job: service.namespace/service.name
