"""A backend down for minutes behind the shipped Collector: what arrives once it is back, what is lost.

    python -m benchmarks.outage --backend loki --minutes 10         # the Loki side (a stand-in) down 10 minutes
    python -m benchmarks.outage --backend prometheus --minutes 10   # Prometheus 3.14 down 10 minutes
    python -m benchmarks.outage --minutes 0.5                       # both, 30 s each: a quick run

The real Collector (0.159.0, the shipped configuration, its sending queues on disk) forwards to
Prometheus 3.14 and to an OTLP receiver of the test suite standing in for Loki (no Loki runs here).
tests/support/fault_publisher publishes a log with a sequence number and metric `seq` = that number
`--rate` times a second, from before the outage to after it. The backend is stopped for `--minutes`
and started again; then the run waits until everything published has arrived (or `--patience`
seconds pass) and prints what was published, delivered, repeated, lost, and counted by the library.
tests/servers/test_collector_faults.py asserts the same behaviour for outages of seconds.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.support.fault_run import Publisher
from tests.support.receiver import Receiver, start_http, stop_http
from tests.support.servers import Collector, Server, query, start_collector, start_prometheus

BEFORE, AFTER = 10.0, 10.0  # seconds published before the outage and after it
EXPORT_INTERVAL = 0.5  # the publisher's OTEL_METRIC_EXPORT_INTERVAL


def seq_samples(prometheus: Server, service: str, seconds: float) -> list[tuple[float, float]]:
    result = query(prometheus, f'liveview_metric{{job="{service}",metric="seq"}}[{int(seconds) + 1}s]')
    return [(float(t), float(v)) for t, v in result[0]["values"]] if result else []


def loki_down(minutes: float, rate: int, patience: float, workdir: Path) -> None:
    loki = Receiver()
    server = start_http(loki)
    port = int(loki.endpoint.rsplit(":", 1)[1])
    prometheus = start_prometheus(workdir / "prometheus", binary="prometheus-3.14")
    collector = start_collector(
        workdir / "collector",
        remote_write_url=prometheus.url + "/api/v1/write",
        loki_url=loki.endpoint + "/otlp",
    )
    outage = minutes * 60
    publisher = Publisher(collector.otlp_http_endpoint, rate=rate, seconds=BEFORE + outage + AFTER)
    try:
        time.sleep(BEFORE)
        stop_http(server)  # refused, and its keep-alive connections cut
        time.sleep(outage)  # the outage itself
        queued = collector.telemetry("otelcol_exporter_queue_size", exporter="otlp_http/loki")
        server = start_http(loki, port=port)
        back = time.monotonic()
        report = publisher.join(timeout=outage + 300)
        published = report["published"]["log"]
        while len(set(publisher.seqs(loki))) < published and time.monotonic() - back < patience:
            time.sleep(1.0)  # a benchmark: a poll once a second is plenty
        delivered_after = time.monotonic() - back
        seqs = publisher.seqs(loki)
        repeats = sum(count - 1 for count in Counter(seqs).values())
        lost = published - len(set(seqs)) - sum(report["dropped"].values())
        print(
            f"Loki side (stand-in) down {minutes:g} min at {rate} logs/s: published {published}, "
            f"delivered {len(set(seqs))} distinct ({repeats} repeats), counted by the library "
            f"{report['dropped'] or 'nothing'}, lost uncounted {lost}; the Collector's queue held "
            f"{queued:.0f} requests at the end of the outage, {_failures(collector, 'otlp_http/loki', 'log_records')}; "
            f"everything delivered {delivered_after:.0f} s after the endpoint was back; longest publish call "
            f"{report['max_ms']:.1f} ms"
        )
    finally:
        publisher.kill()
        stop_http(server)
        collector.stop()
        prometheus.stop()


def prometheus_down(minutes: float, rate: int, patience: float, workdir: Path) -> None:
    with_loki = Receiver()
    server = start_http(with_loki)
    prometheus = start_prometheus(workdir / "prometheus", binary="prometheus-3.14")
    collector = start_collector(
        workdir / "collector",
        remote_write_url=prometheus.url + "/api/v1/write",
        loki_url=with_loki.endpoint + "/otlp",
    )
    outage = minutes * 60
    publisher = Publisher(collector.otlp_http_endpoint, rate=rate, seconds=BEFORE + outage + AFTER)
    try:
        started = time.time()
        time.sleep(BEFORE)
        down = time.time()
        prometheus.stop()
        time.sleep(outage)  # the outage itself
        prometheus.start_again()
        up = time.time()
        report = publisher.join(timeout=outage + 300)
        last = report["calls"] - 1
        window = time.time() - started + 5
        # Done once the last value is in and the disk queue in front of the remote write is empty
        # (its consumers send in parallel: the last request to arrive need not be the outage's last).
        while time.time() - up < patience:
            points = seq_samples(prometheus, publisher.service, window)
            queued = collector.telemetry("otelcol_exporter_queue_size", exporter="otlp_http/queue")
            if points and points[-1][1] >= last and queued == 0:
                break
            time.sleep(1.0)
        points = seq_samples(prometheus, publisher.service, time.time() - started + 5)
        inside = _inside(points, down, up)
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(points)]
        print(
            f"Prometheus 3.14 down {minutes:g} min at {rate}/s: {len(inside)} samples of seq with timestamps "
            f"inside the outage of ~{(up - down) / EXPORT_INTERVAL:.0f} exported (one per {EXPORT_INTERVAL} s), "
            f"largest gap {max(gaps, default=0.0):.1f} s, {_failures(collector, 'otlp_http/queue', 'metric_points')}; "
            f"counted by the library {report['dropped'] or 'nothing'}; longest publish call {report['max_ms']:.1f} ms"
        )
    finally:
        publisher.kill()
        stop_http(server)
        collector.stop()
        prometheus.stop()


def _inside(points: list[tuple[float, float]], start: float, end: float) -> list[tuple[float, float]]:
    return [(t, v) for t, v in points if start <= t <= end]


def _failures(collector: Collector, exporter: str, unit: str) -> str:
    failed = collector.telemetry(f"otelcol_exporter_send_failed_{unit}_total", exporter=exporter)
    refused = collector.telemetry(f"otelcol_exporter_enqueue_failed_{unit}_total", exporter=exporter)
    return f"Collector send failures {failed:.0f}, enqueue failures {refused:.0f} ({unit.replace('_', ' ')})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=("loki", "prometheus", "both"), default="both")
    parser.add_argument("--minutes", type=float, default=0.5, help="how long the backend is down")
    parser.add_argument("--rate", type=int, default=100, help="logs (and metric updates) a second")
    parser.add_argument(
        "--patience", type=float, default=600, help="seconds to wait for the backlog once back"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="otel-liveview-outage-") as folder:
        if args.backend in ("loki", "both"):
            loki_down(args.minutes, args.rate, args.patience, Path(folder, "loki"))
        if args.backend in ("prometheus", "both"):
            prometheus_down(args.minutes, args.rate, args.patience, Path(folder, "prometheus"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
