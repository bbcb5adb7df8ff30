"""An offline run replayed into the shipped metrics path (the Collector remote-writing into Prometheus
3.14): replayed twice, Prometheus holds each sample once; replayed a day after it ran (its timestamps
shifted back 24 hours), every sample lands at its own time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from tests.support import ROOT
from tests.support.processes import publisher_env, run_python
from tests.support.receiver import wait_until
from tests.support.servers import collector_into_prometheus_3, query

pytestmark = pytest.mark.servers

RUN = """
import time
import otel_liveview
broadcaster = otel_liveview.ExperimentBroadcaster(base_topic="offline")
for step in range(150):
    broadcaster.publish_metric_sync("loss", 1.0 / (step + 1), step=step)
    time.sleep(0.02)
"""
EXPORTER = "prometheus_remote_write"


def spooled_loss_samples(directory: Path) -> set[int]:
    """The millisecond timestamps of the `loss` gauge's points in the spool (what Prometheus should hold)."""
    from otel_liveview._internal.spool import METRICS, Record, claim, directory_segments, read_record

    found = set()
    for path in directory_segments(str(directory)):
        segment = claim(path)
        assert segment is not None
        offset = 0
        while isinstance(record := read_record(segment, offset), Record):
            offset = record.end
            if record.kind != METRICS:
                continue
            request = ExportMetricsServiceRequest.FromString(record.payload)
            for resource in request.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        if metric.name == "liveview.metric":
                            found.update(p.time_unix_nano // 1_000_000 for p in metric.gauge.data_points)
        segment.close()
    return found


def replay(directory: Path, endpoint: str) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "otel_liveview.cli",
            "replay",
            str(directory),
            "--endpoint",
            endpoint,
            "--keep",
        ],
        cwd=ROOT,
        env=publisher_env(endpoint),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def offline_run(spool: Path) -> Path:
    """RUN with no network: everything it publishes is in `spool`."""
    env = publisher_env(
        "http://127.0.0.1:9",  # never used: offline
        OTEL_LIVEVIEW_OFFLINE="true",
        OTEL_LIVEVIEW_SPOOL_DIR=str(spool),
        OTEL_METRIC_EXPORT_INTERVAL="100",
    )
    run_python(RUN, env)
    return spool


def test_an_offline_run_replayed_twice_is_in_prometheus_once(tmp_path: Path) -> None:
    spool = offline_run(tmp_path / "spool")
    expected = spooled_loss_samples(spool)
    assert len(expected) >= 20
    samples = 'count_over_time(liveview_metric{metric="loss"}[10m])'
    with collector_into_prometheus_3(tmp_path / "stack") as (prometheus, collector):

        def forwarded() -> float:
            return collector.telemetry(
                "otelcol_exporter_sent_metric_points_total", exporter=EXPORTER
            ) + collector.telemetry("otelcol_exporter_send_failed_metric_points_total", exporter=EXPORTER)

        first = replay(spool, collector.otlp_http_endpoint)
        wait_until(
            lambda: (
                query(prometheus, samples) and int(query(prometheus, samples)[0]["value"][1]) >= len(expected)
            ),
            30,
            what="the first replay in Prometheus",
        )
        after_first = forwarded()
        second = replay(spool, collector.otlp_http_endpoint)
        assert second.split(" to ")[0] == first.split(" to ")[0], "the same requests again"
        # Everything the second replay carried has left the Collector for Prometheus...
        wait_until(lambda: forwarded() >= 2 * after_first, 30, what="the second replay forwarded")
        held = int(query(prometheus, samples)[0]["value"][1])
        sent = collector.telemetry("otelcol_exporter_sent_metric_points_total", exporter=EXPORTER)
        failed = collector.telemetry("otelcol_exporter_send_failed_metric_points_total", exporter=EXPORTER)
        timestamps = query(prometheus, 'timestamp(liveview_metric{metric="loss"})')
    # ...and Prometheus holds each sample once: the same series, timestamp and value is a duplicate.
    print(f"\n{len(expected)} samples spooled, {held} in Prometheus after two replays ({first.strip()});")
    print(f"the Collector's remote write: {sent:.0f} points sent, {failed:.0f} failed")
    assert held == len(expected)
    assert timestamps, "the series is there"


DAY_NS = 86_400 * 10**9


def shifted_back_a_day(source: Path, target: Path) -> None:
    """A copy of `source`'s spool as if its run had ended a day ago: every metric point's and log record's time
    24 hours earlier, the segments otherwise as the library wrote them."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from otel_liveview._internal.spool import LOGS, Record, claim, directory_segments, frame, read_record

    target.mkdir()
    for path in directory_segments(str(source)):
        segment = claim(path)
        assert segment is not None
        out, offset = bytearray(), 0
        while isinstance(record := read_record(segment, offset), Record):
            offset = record.end
            if record.kind == LOGS:
                logs = ExportLogsServiceRequest.FromString(record.payload)
                for resource_logs in logs.resource_logs:
                    for scope_logs in resource_logs.scope_logs:
                        for log in scope_logs.log_records:
                            log.time_unix_nano -= DAY_NS
                            log.observed_time_unix_nano -= DAY_NS
                out += frame(record.kind, logs.SerializeToString())
                continue
            metrics = ExportMetricsServiceRequest.FromString(record.payload)
            for resource_metrics in metrics.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        for point in getattr(metric, metric.WhichOneof("data")).data_points:
                            point.time_unix_nano -= DAY_NS
                            if point.start_time_unix_nano:
                                point.start_time_unix_nano -= DAY_NS
            out += frame(record.kind, metrics.SerializeToString())
        segment.close()
        (target / Path(path).name).write_bytes(bytes(out))


def test_an_offline_run_replayed_a_day_later_lands_at_its_own_times(tmp_path: Path) -> None:
    spool = offline_run(tmp_path / "spool")
    expected = {stamp - DAY_NS // 1_000_000 for stamp in spooled_loss_samples(spool)}
    assert len(expected) >= 20
    shifted_back_a_day(spool, tmp_path / "a-day-ago")
    at = max(expected) / 1000 + 1  # just after the run's last sample, a day ago
    samples = 'count_over_time(liveview_metric{metric="loss"}[10m])'
    with collector_into_prometheus_3(tmp_path / "stack") as (prometheus, collector):
        # The run as it was, first: Prometheus now holds samples of today, so the day-old ones are
        # out of order (without the shipped out_of_order_time_window they are refused as too old).
        replay(spool, collector.otlp_http_endpoint)
        wait_until(lambda: query(prometheus, samples), 30, what="today's samples in Prometheus")
        summary = replay(tmp_path / "a-day-ago", collector.otlp_http_endpoint)
        wait_until(
            lambda: (
                query(prometheus, samples, at=at)
                and int(query(prometheus, samples, at=at)[0]["value"][1]) >= len(expected)
            ),
            30,
            what="the day-old samples in Prometheus",
        )
        raw = query(prometheus, 'liveview_metric{metric="loss"}[10m]', at=at)
        failed = collector.telemetry("otelcol_exporter_send_failed_metric_points_total", exporter=EXPORTER)
    held = {round(float(stamp) * 1000) for stamp, _ in raw[0]["values"]}
    print(
        f"\n{len(expected)} samples of a run a day old replayed ({summary.strip()}): {len(held)} in Prometheus"
    )
    assert held == expected  # every sample, at its own time a day ago
    assert failed == 0
