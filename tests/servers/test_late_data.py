"""Late data lands: samples taken an hour ago, sent now through the real Collector (0.159.0, the
shipped config) into Prometheus 3.14 with the shipped prometheus.yml (its out_of_order_time_window),
are all there at their own timestamps - also for a series that already has a newer sample, the
case a replayed spool meets when its process published live before.

The OTLP requests are made with the OpenTelemetry protobuf classes, as a replay sends them: a gauge
`liveview.metric` {metric} with one point per second and the timestamps of an hour ago.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.support.servers import Collector, Server, collector_into_prometheus_3, query

pytestmark = pytest.mark.servers

_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))
AGO = 3600.0  # seconds
POINTS = 120  # one a second


def request(service: str, metric: str, stamps: list[float], first_value: float = 0.0) -> bytes:
    """An OTLP metrics export: gauge liveview.metric {metric=`metric`}, one point per timestamp
    (seconds), values first_value, first_value + 1, ..."""
    export = ExportMetricsServiceRequest()
    resource = export.resource_metrics.add()
    resource.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    gauge = resource.scope_metrics.add().metrics.add()
    gauge.name = "liveview.metric"
    for index, stamp in enumerate(stamps):
        point = gauge.gauge.data_points.add()
        point.time_unix_nano = round(stamp * 1000) * 1_000_000  # whole milliseconds, as Prometheus keeps them
        point.as_double = first_value + index
        point.attributes.append(KeyValue(key="metric", value=AnyValue(string_value=metric)))
    return bytes(export.SerializeToString())


def post(collector: Collector, body: bytes) -> None:
    sent = urllib.request.Request(
        collector.otlp_http_endpoint + "/v1/metrics",
        data=body,
        headers={"Content-Type": "application/x-protobuf"},
    )
    with _http.open(sent, timeout=10) as response:
        assert response.status == 200


@pytest.fixture
def path(tmp_path: Path) -> Iterator[tuple[Server, Collector]]:
    with collector_into_prometheus_3(tmp_path, rule_files=[]) as servers:
        yield servers


def samples_at(prometheus: Server, selector: str, start: float, end: float) -> list[tuple[float, float]]:
    """The raw samples of `selector` with timestamps in (start, end]."""
    result = query(prometheus, f"{selector}[{round((end - start) * 1000)}ms]", at=end)
    return [(float(t), float(v)) for series in result for t, v in series["values"]]


def wait_for_samples(
    prometheus: Server, selector: str, start: float, end: float, count: int, timeout: float = 30.0
) -> list[tuple[float, float]]:
    deadline = time.monotonic() + timeout
    while True:
        found = samples_at(prometheus, selector, start, end)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_an_hour_old_run_lands_at_its_own_timestamps(path: tuple[Server, Collector]) -> None:
    prometheus, collector = path
    service = f"late-{uuid.uuid4().hex[:8]}"
    now = round(time.time(), 3)  # Prometheus keeps milliseconds
    # Live data first: Prometheus' newest sample is now, so the old ones are out of order for the
    # database, and for series "replayed", which has a sample of now as well.
    post(collector, request(service, "live", [now]))
    post(collector, request(service, "replayed", [now], first_value=-1))
    live = f'liveview_metric{{job="{service}",metric="live"}}'
    assert wait_for_samples(prometheus, live, now - 1, now + 1, 1), "the live sample did not arrive"
    start = round(now - AGO)
    stamps = [float(start + second) for second in range(POINTS)]
    for metric in ("old", "replayed"):
        for chunk in range(0, POINTS, 30):  # a replay sends a run in several requests
            post(collector, request(service, metric, stamps[chunk : chunk + 30], first_value=chunk))
    for metric in ("old", "replayed"):
        selector = f'liveview_metric{{job="{service}",metric="{metric}"}}'
        found = wait_for_samples(prometheus, selector, start - 1, start + POINTS, POINTS)
        print(f"\n{metric}: {len(found)} of {POINTS} samples from {AGO / 60:.0f} minutes ago")
        assert found == [(float(t), float(i)) for i, t in enumerate(stamps)], found[:5]
        counted = query(prometheus, f"count_over_time({selector}[{POINTS}s])", at=start + POINTS - 0.5)
        assert [float(series["value"][1]) for series in counted] == [float(POINTS)]
    # The series that had a newer sample keeps it, after the old ones.
    replayed = f'liveview_metric{{job="{service}",metric="replayed"}}'
    assert samples_at(prometheus, replayed, now - 1, now + 1) == [(round(now, 3), -1.0)]
    assert collector.telemetry("otelcol_exporter_send_failed_metric_points_total") == 0
