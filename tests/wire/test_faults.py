"""Faults the library must ride out without breaking the experiment it observes.

Each scenario runs tests.support.fault_publisher (publishing at a fixed rate, timing every call) against a
receiver that is dead, killed and restarted, slow, or answering errors. Latency figures are
printed; the assertions are about behaviour: never raise, never block on the network, bounded
memory, resume after an outage, and every item either arrives or is counted as dropped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from tests.support import ROOT, free_port
from tests.support.processes import publisher_env, run_module, run_python
from tests.support.receiver import Receiver, wait_until

BLOCKED_MS = 200  # a call that waited on the network would take seconds


def publish(endpoint: str, rate: int, seconds: float, **env: str) -> dict[str, Any]:
    defaults = {
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2000",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_LIVEVIEW_EXIT_TIMEOUT": "1",
    }
    environment = publisher_env(endpoint, **{**defaults, **env})
    out = run_module(
        "tests.support.fault_publisher", str(rate), str(seconds), env=environment, timeout=seconds + 60
    )
    report = json.loads(out.strip().splitlines()[-1])
    print(f"\n{rate}/s for {seconds} s: {report}")
    return report


def test_dead_collector_from_the_start_costs_the_caller_nothing() -> None:
    report = publish(f"http://127.0.0.1:{free_port()}", rate=5_000, seconds=4)
    assert report["calls"] >= 15_000
    assert report["max_ms"] < BLOCKED_MS
    assert report["flushed"] is False
    dropped = report["dropped"]
    assert dropped["log/export_failed"] > 0  # counted after the exporter's retries ran out (2 s)
    assert dropped["points/export_failed"] > 0


@pytest.mark.slow
def test_memory_stays_bounded_for_a_minute_at_10k_per_second_with_a_dead_collector() -> None:
    report = publish(f"http://127.0.0.1:{free_port()}", rate=10_000, seconds=60)
    assert report["calls"] >= 500_000
    assert report["rss_growth_mb"] < 50
    assert report["max_ms"] < BLOCKED_MS
    assert report["dropped"]["log/queue_full"] > 0


class ReceiverProcess:
    """tests.support.receiver in its own process on a fixed port, so it can be killed and started again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seqs: list[int] = []
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "tests.support.receiver", "--port", str(self.port)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout
        json.loads(self.process.stdout.readline())
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout
        for line in process.stdout:
            report = json.loads(line)
            if report.get("kind") == "logs":
                self.seqs.append(report["count"])

    def kill(self) -> None:
        assert self.process
        self.process.kill()
        self.process.wait()

    @property
    def logs(self) -> int:
        return sum(self.seqs)


def test_collector_killed_and_restarted_publishing_resumes_and_drops_are_counted() -> None:
    receiver = ReceiverProcess(free_port())
    receiver.start()
    outcome: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: outcome.update(publish(f"http://127.0.0.1:{receiver.port}", rate=2_000, seconds=9))
    )
    worker.start()
    try:
        wait_until(lambda: receiver.logs > 1000, timeout=10, what="logs before the outage")
        receiver.kill()
        down_at = receiver.logs
        time.sleep(3)  # the outage itself: nothing to poll for
        receiver.start()
        wait_until(lambda: receiver.logs > down_at + 1000, timeout=15, what="logs after the restart")
        worker.join(60)
    finally:
        receiver.kill()
    assert outcome["max_ms"] < BLOCKED_MS
    published = outcome["published"]["log"]
    dropped = sum(v for k, v in outcome["dropped"].items() if k.startswith("log/"))
    # Whatever the receiver took in before dying may be sent again (it never answered), so it can
    # see more than was published, never fewer than published minus what was counted as dropped.
    assert receiver.logs >= published - dropped
    assert receiver.logs > down_at + 1000


RETRY_SCRIPT = """
import json, time, otel_liveview
broadcaster = otel_liveview.ExperimentBroadcaster("faults")
for seq in range(50):  # one batch: the export thread wakes when the 50th record is queued
    broadcaster.publish_log_sync("info", "tick", seq=seq)
deadline = time.monotonic() + 20
while otel_liveview.stats()["dropped"].get("log/export_failed", 0) < 50 and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps(otel_liveview.stats()))
"""


@pytest.mark.parametrize(("status", "retried"), [(503, True), (429, True), (500, False), (400, False)])
def test_error_answers_follow_the_otlp_retry_rules(
    http_receiver: Receiver, status: int, retried: bool
) -> None:
    http_receiver.status = status
    env = publisher_env(
        http_receiver.endpoint,
        OTEL_METRICS_EXPORTER="none",
        OTEL_BLRP_SCHEDULE_DELAY="60000",
        OTEL_BLRP_MAX_EXPORT_BATCH_SIZE="50",
        OTEL_EXPORTER_OTLP_TIMEOUT="2000",  # the export thread's retry window for the batch
    )
    stats = json.loads(run_python(RETRY_SCRIPT, env).splitlines()[-1])
    attempts = http_receiver.attempts["/v1/logs"]
    if retried:  # OTLP/HTTP: 429, 502, 503 and 504 are retried with backoff (1 s, 2 s, ...)
        assert attempts == 2  # at 0 s and 0.8-1.2 s; the next (2.4 s or later) is past the window
    else:  # every other error is final: no retry
        assert attempts == 1
    assert stats["dropped"]["log/export_failed"] == stats["published"]["log"] == 50


def test_slow_collector_never_slows_the_caller(http_receiver: Receiver) -> None:
    http_receiver.delay = 1.5
    report = publish(http_receiver.endpoint, rate=2_000, seconds=3, OTEL_EXPORTER_OTLP_TIMEOUT="5000")
    assert report["max_ms"] < BLOCKED_MS
    wait_until(lambda: http_receiver.log_rows(), timeout=10, what="the slow collector's first batch")


FORK_SCRIPT = """
import os, sys, threading, time
import otel_liveview
b = otel_liveview.ExperimentBroadcaster("faults:fork")
stop = threading.Event()
def publish(name):
    seq = 0
    while not stop.is_set():
        b.publish_log_sync("info", name, origin=name, seq=seq)
        seq += 1
        time.sleep(0.0005)
threads = [threading.Thread(target=publish, args=(f"thread{i}",)) for i in range(2)]
for t in threads:
    t.start()
children = []
for how in ("exit", "flush-then-os-exit", "os-exit"):
    time.sleep(0.3)
    pid = os.fork()  # while both threads publish and the export thread ships
    if pid == 0:
        for seq in range(100):
            b.publish_log_sync("info", how, origin=how, seq=seq)
        if how == "exit":
            sys.exit(0)  # normal exit: the exit hook ships what is queued
        if how == "flush-then-os-exit":
            otel_liveview.flush(10)
        os._exit(0)
    children.append(pid)
for pid in children:
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
time.sleep(0.3)
stop.set()
for t in threads:
    t.join()
print(otel_liveview.flush(20), otel_liveview.stats()["published"]["log"], flush=True)
"""


def test_fork_mid_run_with_threads_publishing(http_receiver: Receiver) -> None:
    flushed, parent_published = run_python(FORK_SCRIPT, publisher_env(http_receiver.endpoint)).split()
    assert flushed == "True"
    rows = [row for row in http_receiver.log_rows() if row.attributes.get("topic") == "faults:fork"]
    seen = [(row.attributes["origin"], row.attributes["seq"], row.resource["process.pid"]) for row in rows]
    assert len(seen) == len(set(seen)), "duplicated records"
    by_origin: dict[str, set[int]] = {}
    for origin, seq, _ in seen:
        by_origin.setdefault(origin, set()).add(seq)
    parent = sum(len(by_origin[f"thread{i}"]) for i in range(2))
    assert parent == int(parent_published)  # every parent record once, none lost to the forks
    assert by_origin["exit"] == by_origin["flush-then-os-exit"] == set(range(100))
    # os._exit without a flush loses what was queued, by definition; it must not deadlock or duplicate.
    assert len({pid for _, _, pid in seen}) >= 3


def test_grpc_unavailable_is_retried_then_counted(grpc_receiver: Receiver) -> None:
    grpc_receiver.status = 503  # the gRPC receiver answers UNAVAILABLE
    report = publish(
        grpc_receiver.endpoint,
        rate=200,
        seconds=1,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_INSECURE="true",
    )
    assert report["dropped"]["log/export_failed"] == report["published"]["log"]
    assert report["max_ms"] < BLOCKED_MS


def test_cardinality_bomb_is_capped_counted_and_fast(http_receiver: Receiver) -> None:
    script = """
import time, otel_liveview
b = otel_liveview.ExperimentBroadcaster("faults:bomb")
started = time.perf_counter()
for i in range(20_000):
    b.publish_metric_sync(f"metric_{i}", i)
for i in range(500):
    b.publish_data_sync(f"stream_{i % 5}", {f"key_{i}": i})
elapsed = time.perf_counter() - started
print(otel_liveview.flush(20), round(elapsed, 2), otel_liveview.stats()["dropped"], flush=True)
"""
    flushed, elapsed, dropped = run_python(script, publisher_env(http_receiver.endpoint)).split(maxsplit=2)
    print(f"\n20,000 metric names + 500 stream keys published in {elapsed} s")
    assert flushed == "True"
    counts = json.loads(dropped.replace("'", '"'))
    assert counts["metric/cardinality"] == 20_000 - 2_000  # OTEL_LIVEVIEW_MAX_SERIES default
    assert counts["data/cardinality"] == 500 - 5 * 64  # 64 numeric keys per stream
    metrics = {dict(k[1])["metric"] for k in http_receiver.latest("liveview.metric")}
    assert len(metrics) == 2_000


@pytest.mark.parametrize("series", [10_000, 50_000])
def test_every_series_below_the_cap_is_exported(http_receiver: Receiver, series: int) -> None:
    """Above the SDK's default of 2,000 series per instrument nothing folds into an overflow point
    (the library exports its tables itself; before, it had to raise the SDK's limit)."""
    script = f"""
import otel_liveview
b = otel_liveview.ExperimentBroadcaster("faults:series")
for i in range({series}):
    b.publish_metric_sync(f"metric_{{i}}", i)
print(otel_liveview.flush(60), otel_liveview.stats()["dropped"], flush=True)
"""
    env = publisher_env(
        http_receiver.endpoint,
        OTEL_LIVEVIEW_MAX_SERIES=str(series),
        OTEL_LIVEVIEW_METRIC_EVENTS="false",
        OTEL_METRIC_EXPORT_INTERVAL="600000",  # only the flush exports
    )
    flushed, dropped = run_python(script, env).split(maxsplit=1)
    assert flushed == "True"
    assert dropped.strip() == "{}"  # nothing counted as dropped: nothing was
    points = http_receiver.latest("liveview.metric")
    assert {dict(key[1])["metric"] for key in points} == {f"metric_{i}" for i in range(series)}
    assert not any("otel.metric.overflow" in dict(key[1]) for key in points)
    assert sorted(points.values()) == [float(i) for i in range(series)]
