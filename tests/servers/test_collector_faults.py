"""Faults around the real Collector (0.159.0, the shipped config): the Collector killed and restarted
while a publisher runs (also while Prometheus and the Loki side are down, so that its disk queues hold
records), Prometheus 3.14 restarted behind it, and the Loki side (tests/support/receiver.py,
an OTLP receiver standing in for Loki) down for 30 s.

The publisher is tests.support.fault_publisher (a log with a sequence number and metric "seq" = that number,
RATE times a second). Figures are printed (`pytest -s`); the assertions are about behaviour: the
caller is never blocked, publishing resumes, and what is lost is either counted by the library
(liveview_dropped_total / stats()) or accounted for here.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.fault_run import Publisher
from tests.support.receiver import Receiver, serving_http, start_http, stop_http, wait_until
from tests.support.servers import Collector, Server, query, wait_for_series

pytestmark = pytest.mark.servers

BLOCKED_MS = 200  # a publish call that waited on the network would take seconds


def seq_value(prometheus: Server, service: str) -> float:
    result = query(prometheus, f'liveview_metric{{job="{service}",metric="seq"}}')
    return float(result[0]["value"][1]) if result else -1.0


def dropped_in_prometheus(prometheus: Server, service: str) -> dict[str, float]:
    result = query(prometheus, f'liveview_dropped_total{{job="{service}"}}')
    return {f"{s['metric']['kind']}/{s['metric']['reason']}": float(s["value"][1]) for s in result}


def samples(prometheus: Server, service: str, seconds: int) -> list[tuple[float, float]]:
    """Raw (timestamp, value) samples of metric "seq" over the last `seconds`."""
    result = query(prometheus, f'liveview_metric{{job="{service}",metric="seq"}}[{seconds}s]')
    assert len(result) == 1, result
    return [(float(t), float(v)) for t, v in result[0]["values"]]


@pytest.fixture
def publishers() -> Iterator[Callable[..., Publisher]]:
    """publishers(endpoint, rate, seconds, **env) starts a Publisher; any still running at the end is killed."""
    started: list[Publisher] = []

    def start(endpoint: str, rate: int, seconds: float, **env_vars: str) -> Publisher:
        started.append(Publisher(endpoint, rate, seconds, **env_vars))
        return started[-1]

    yield start
    for publisher in started:
        publisher.kill()


@pytest.fixture
def loki() -> Iterator[Receiver]:
    with serving_http() as receiver:
        yield receiver


def the_real_path(
    prometheus_factory: Callable[..., Server], collector_factory: Callable[..., Collector], loki: Receiver
) -> tuple[Server, Collector]:
    """Prometheus 3.14 behind the shipped Collector, whose Loki exporter posts to `loki`."""
    prometheus = prometheus_factory(binary="prometheus-3.14")
    collector = collector_factory(
        remote_write_url=prometheus.url + "/api/v1/write", loki_url=loki.endpoint + "/otlp"
    )
    return prometheus, collector


def test_collector_killed_and_restarted_mid_run(
    prometheus_factory: Callable[..., Server],
    collector_factory: Callable[..., Collector],
    loki: Receiver,
    publishers: Callable[..., Publisher],
) -> None:
    prometheus, collector = the_real_path(prometheus_factory, collector_factory, loki)
    rate, outage = 500, 3.0
    publisher = publishers(collector.otlp_http_endpoint, rate=rate, seconds=14)
    wait_for_series(
        prometheus, f'liveview_metric{{job="{publisher.service}",metric="seq"}} > {rate}', timeout=60
    )
    collector.kill()  # SIGKILL: no flush of what it holds
    killed = time.monotonic()
    at_kill = seq_value(prometheus, publisher.service)
    time.sleep(outage)  # the outage itself: its length is the scenario, there is nothing to wait for
    collector.start_again()
    restarted = time.monotonic()
    # A value published after the restart reaches Prometheus.
    wait_for_series(
        prometheus,
        f'liveview_metric{{job="{publisher.service}",metric="seq"}} > {at_kill + rate * outage}',
        timeout=60,
        interval=0.02,
    )
    recovered = time.monotonic() - restarted
    report = publisher.join()

    published = report["published"]["log"]
    dropped = {key: value for key, value in report["dropped"].items() if value}
    log_dropped = sum(v for k, v in dropped.items() if k.startswith("log/"))
    # The library's own counter reaches Prometheus through the restarted Collector.
    wait_for_series(
        prometheus,
        f'liveview_dropped_total{{job="{publisher.service}"}}',
        lambda r: (
            dropped_in_prometheus(prometheus, publisher.service) == {k: float(v) for k, v in dropped.items()}
        ),
        timeout=60,
    )
    wait_for_series(
        prometheus,
        f'liveview_metric{{job="{publisher.service}",metric="seq"}} == {report["calls"] - 1}',
        timeout=60,
    )
    # The restarted Collector has forwarded everything it accepted: its counters start at 0 again, and
    # what the killed one left in the persistent queue is sent on top, so "at least" and an empty queue.
    wait_until(
        lambda: (
            collector.telemetry("otelcol_exporter_queue_size", exporter="otlp_http/loki") == 0
            and collector.telemetry("otelcol_exporter_sent_log_records_total", exporter="otlp_http/loki")
            >= collector.telemetry("otelcol_receiver_accepted_log_records_total")
        ),
        timeout=30,
        what="the Collector to forward what it accepted",
    )
    seqs = publisher.seqs(loki)
    distinct = set(seqs)
    lost_uncounted = published - log_dropped - len(distinct)
    print(
        f"\nCollector SIGKILLed for {outage:.0f} s (+ restart) at {rate} logs/s: published {published} logs, "
        f"library dropped {dropped} (also in Prometheus' liveview_dropped_total), "
        f"Loki side received {len(distinct)} distinct ({len(seqs) - len(distinct)} repeats), "
        f"lost and not counted: {lost_uncounted}; "
        f"restart -> new values queryable {recovered:.2f} s; Collector down {restarted - killed:.2f} s; "
        f"publish p99 {report['p99_ms']:.2f} ms, max {report['max_ms']:.1f} ms"
    )
    assert report["max_ms"] < BLOCKED_MS
    # The outage was seen and counted, for logs and for the metric exports that failed.
    assert log_dropped > 0
    assert any(k.endswith("/export_failed") and not k.startswith("log/") for k in dropped), dropped
    assert max(distinct) == report["calls"] - 1  # publishing resumed to the end
    # What the Collector had accepted (answered 200) but not forwarded was in its disk queues and
    # was sent after the restart (with in-memory queues and the batch processor, 0-102 were lost).
    assert lost_uncounted == 0


def test_collector_killed_and_restarted_with_a_spool_loses_nothing(
    prometheus_factory: Callable[..., Server],
    collector_factory: Callable[..., Collector],
    loki: Receiver,
    publishers: Callable[..., Publisher],
    tmp_path: Path,
) -> None:
    prometheus, collector = the_real_path(prometheus_factory, collector_factory, loki)
    rate, outage = 500, 3.0
    publisher = publishers(
        collector.otlp_http_endpoint, rate=rate, seconds=14, OTEL_LIVEVIEW_SPOOL_DIR=str(tmp_path)
    )
    wait_for_series(
        prometheus, f'liveview_metric{{job="{publisher.service}",metric="seq"}} > {rate}', timeout=60
    )
    collector.kill()
    time.sleep(outage)  # the outage itself: its length is the scenario, there is nothing to wait for
    collector.start_again()
    report = publisher.join()
    published = report["published"]["log"]
    wait_until(lambda: len(set(publisher.seqs(loki))) >= published, 60, what="every log at the Loki side")
    seqs = publisher.seqs(loki)
    # Every export interval's value of seq, the outage's included, sent late from the spool.
    timeline = samples(prometheus, publisher.service, 60)
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(timeline)]
    print(
        f"\nCollector SIGKILLed for {outage:.0f} s (+ restart) at {rate} logs/s, publisher with a spool: "
        f"published {published} logs, Loki side received {len(set(seqs))} distinct "
        f"({len(seqs) - len(set(seqs))} repeats: requests the Collector took as it was killed), "
        f"library dropped {report['dropped']}; {len(timeline)} samples of seq in Prometheus, "
        f"largest gap {max(gaps):.1f} s; publish max {report['max_ms']:.1f} ms"
    )
    assert report["max_ms"] < BLOCKED_MS
    assert set(seqs) == set(range(published)), "every log arrived"
    assert not any(report["dropped"].values()), "nothing dropped, nothing counted"
    assert max(gaps) <= 1.5, "no export interval missing in Prometheus"
    assert not list(tmp_path.glob("*.seg")), "the spool all sent"


def test_prometheus_restarted_behind_the_collector(
    prometheus_factory: Callable[..., Server],
    collector_factory: Callable[..., Collector],
    loki: Receiver,
    publishers: Callable[..., Publisher],
) -> None:
    prometheus, collector = the_real_path(prometheus_factory, collector_factory, loki)
    # Longer than one remote write's timeout (10 s, one attempt): the queue in front of it retries.
    rate, outage = 200, 10.0
    publisher = publishers(collector.otlp_http_endpoint, rate=rate, seconds=outage + 12)
    wait_for_series(
        prometheus, f'liveview_metric{{job="{publisher.service}",metric="seq"}} > {rate}', timeout=60
    )
    stopped_at = time.time()
    prometheus.stop()
    time.sleep(outage)  # the outage itself
    prometheus.start_again()
    back_at = time.time()
    report = publisher.join()
    wait_for_series(
        prometheus,
        f'liveview_metric{{job="{publisher.service}",metric="seq"}} == {report["calls"] - 1}',
        timeout=90,
    )
    points = samples(prometheus, publisher.service, 120)
    during = [(t, v) for t, v in points if stopped_at <= t <= back_at]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(points)]
    # The remote-write exporter tries once per request and fails while Prometheus is down; the disk
    # queue in front of it (otlp_http/queue) retries, and would count a request it gave up on.
    failed = collector.telemetry(
        "otelcol_exporter_send_failed_metric_points_total", exporter="otlp_http/queue"
    )
    problems = collector.log_lines()
    print(
        f"\nPrometheus down {back_at - stopped_at:.2f} s (stop, {outage:.0f} s, start; WAL replayed) "
        f"at {rate}/s: "
        f"{len(points)} samples of seq over the run, {len(during)} with timestamps inside the outage "
        f"(export every 0.5 s: ~{(back_at - stopped_at) / 0.5:.0f} expected), largest gap {max(gaps):.2f} s; "
        f"Collector send failures {failed:.0f} points, {len(problems)} warn/error log lines; "
        f"library dropped {report['dropped']}"
    )
    for line in problems:
        print("  Collector:", line.split("\t", 4)[-1][:400])
    assert report["max_ms"] < BLOCKED_MS
    # The library never saw the outage: the Collector took every export.
    assert not any(report["dropped"].values()), report["dropped"]
    # The disk queue's retries carried the gap into the restarted Prometheus: nothing failed for
    # good, samples with timestamps inside the outage, no hole longer than a few exports.
    assert failed == 0
    assert len(during) >= (back_at - stopped_at) / 0.5 / 2
    assert max(gaps) < 3.0
    assert [v for _, v in points] == sorted(v for _, v in points)


@pytest.mark.slow
def test_loki_side_down_for_30_seconds(
    prometheus_factory: Callable[..., Server],
    collector_factory: Callable[..., Collector],
    publishers: Callable[..., Publisher],
) -> None:
    """The Loki exporter's sending_queue (5000 requests, on disk) and retry_on_failure (5 s growing
    1.5x to 30 s, with no time limit) should hold 30 s of logs and deliver them when the endpoint is back."""
    loki = Receiver()
    server = start_http(loki)
    port = int(loki.endpoint.rsplit(":", 1)[1])
    try:
        _, collector = the_real_path(prometheus_factory, collector_factory, loki)
        rate, outage = 100, 30.0
        publisher = publishers(collector.otlp_http_endpoint, rate=rate, seconds=outage + 10)
        wait_until(lambda: len(publisher.seqs(loki)) > rate, timeout=60, what="logs before the outage")
        stop_http(server)  # refused, and its keep-alive connections cut
        down_at = time.monotonic()
        before = len(set(publisher.seqs(loki)))
        time.sleep(outage)  # the outage itself
        queued = collector.telemetry("otelcol_exporter_queue_size", exporter="otlp_http/loki")
        server = start_http(loki, port=port)
        back_at = time.monotonic()
        report = publisher.join()
        published = report["published"]["log"]
        wait_until(
            lambda: len(set(publisher.seqs(loki))) >= published, timeout=180, interval=0.2, what="every log"
        )
        complete = time.monotonic() - back_at
        seqs = publisher.seqs(loki)
        repeats = Counter(seqs)
        telemetry = {
            name: collector.telemetry(f"otelcol_exporter_{name}_log_records_total", exporter="otlp_http/loki")
            for name in ("sent", "send_failed", "enqueue_failed")
        }
        print(
            f"\nLoki side down {back_at - down_at:.1f} s at {rate} logs/s: published {published}, "
            f"received {len(set(seqs))} distinct ({len(seqs) - len(repeats)} repeats; {before} before the "
            f"outage), library dropped {report['dropped']}; Collector queue at the end of the outage "
            f"{queued:.0f} requests, exporter {telemetry}; endpoint back -> every record delivered {complete:.1f} s"
        )
        assert report["max_ms"] < BLOCKED_MS
        assert not any(report["dropped"].values())  # the Collector took everything: nothing to count
        assert set(seqs) == set(range(published))  # the sending queue delivered the whole gap
        assert queued > 0
        assert telemetry["enqueue_failed"] == 0
    finally:
        stop_http(server)


def test_collector_killed_while_the_backends_are_down_keeps_what_it_accepted(
    prometheus_factory: Callable[..., Server],
    collector_factory: Callable[..., Collector],
    publishers: Callable[..., Publisher],
) -> None:
    """Prometheus and the Loki stand-in go down, so the Collector holds what it accepts in its disk
    queues; it is SIGKILLed and started again on the same storage folder; then the backends come
    back. Every record the library did not count as dropped reaches the Loki stand-in, and every
    metric export the killed Collector had accepted reaches Prometheus."""
    loki = Receiver()
    server = start_http(loki)
    port = int(loki.endpoint.rsplit(":", 1)[1])
    try:
        prometheus, collector = the_real_path(prometheus_factory, collector_factory, loki)
        rate = 300
        publisher = publishers(collector.otlp_http_endpoint, rate=rate, seconds=24)
        wait_until(lambda: len(publisher.seqs(loki)) > rate, timeout=60, what="logs before the outage")
        wait_for_series(prometheus, f'liveview_metric{{job="{publisher.service}",metric="seq"}}', timeout=60)
        prometheus.stop()
        stop_http(server)
        down_at = time.time()
        time.sleep(5)  # the Collector takes the records and queues them on disk
        held = collector.telemetry("otelcol_exporter_queue_size")
        collector.kill()
        killed_at = time.time()
        collector.start_again()  # same command line, same storage folder
        time.sleep(3)  # the restarted Collector takes new records, into the same queues
        prometheus.start_again()
        server = start_http(loki, port=port)
        back_at = time.time()
        report = publisher.join()
        published = report["published"]["log"]
        dropped = {key: value for key, value in report["dropped"].items() if value}
        log_dropped = sum(v for k, v in dropped.items() if k.startswith("log/"))
        wait_until(
            lambda: len(set(publisher.seqs(loki))) >= published - log_dropped,
            timeout=120,
            interval=0.2,
            what="every record the library did not count",
        )
        wait_for_series(
            prometheus,
            f'liveview_metric{{job="{publisher.service}",metric="seq"}} == {report["calls"] - 1}',
            timeout=120,
        )
        seqs = publisher.seqs(loki)
        distinct = set(seqs)
        points = samples(prometheus, publisher.service, 120)
        held_points = [t for t, _ in points if down_at <= t <= killed_at]
        gaps = [b - a for a, b in itertools.pairwise([down_at, *held_points, killed_at])]
        lost_uncounted = published - log_dropped - len(distinct)
        print(
            f"\nBackends down {back_at - down_at:.1f} s, the Collector SIGKILLed {killed_at - down_at:.1f} s into it "
            f"holding {held:.0f} requests, restarted on its storage: published {published} logs at {rate}/s, "
            f"library dropped {dropped}, Loki side received {len(distinct)} distinct "
            f"({len(seqs) - len(distinct)} repeats), lost and not counted: {lost_uncounted}; "
            f"{len(held_points)} samples of seq from before the kill in Prometheus "
            f"(export every 0.5 s), largest gap {max(gaps):.2f} s"
        )
        assert held > 0  # the queues held requests when the Collector died
        assert lost_uncounted == 0
        assert distinct <= set(range(published))
        # What the killed Collector had queued reached Prometheus after its restart: a sample for
        # every export between the outage and the kill.
        assert max(gaps) < 1.5, gaps
        assert report["max_ms"] < BLOCKED_MS
    finally:
        stop_http(server)
