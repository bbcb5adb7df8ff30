"""Publish cost of otel-liveview against the raw SDK it wraps, measured in one run.

    python -m benchmarks.run            # the full table (a few minutes)
    python -m benchmarks.run --quick    # tiny sizes: a smoke run

Every case runs in a fresh interpreter that exports over OTLP/HTTP to a receiver process (the test
suite's, `tests.support.receiver`), so encoding and sending are paid by the process measured and decoding
is not. Two figures per call: the caller's median and p99 latency (each call timed with
perf_counter_ns, the cost of the timer itself subtracted), and the process's CPU time per item,
publish plus flush, all threads included (work moved to a background thread still counts).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ATTRS = {"metric": "loss", "topic": "bench", "phase": "train"}
DATA = {f"sensor_{i}": i * 0.5 for i in range(10)}


# -- the cases (each runs in its own process) -------------------------------------------------------


def _raw_meter() -> tuple[Any, Callable[[], None]]:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=1000)
    provider = MeterProvider(metric_readers=[reader])
    return provider.get_meter("bench"), lambda: provider.force_flush()


def _raw_logger() -> tuple[Any, Callable[[], None]]:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider()
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(), max_queue_size=1_000_000))
    return provider.get_logger("bench"), lambda: provider.force_flush()


def case(name: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    """(publish(i), flush) for a case name."""
    if name == "raw Gauge.set":
        meter, flush = _raw_meter()
        gauge = meter.create_gauge("liveview.metric")
        return (lambda i: gauge.set(0.5, ATTRS)), flush
    if name == "raw Logger.emit":
        logger, flush = _raw_logger()
        return (
            lambda i: logger.emit(
                timestamp=time.time_ns(), body={"metric": "loss", "value": 0.5, "step": i}, attributes=ATTRS
            )
        ), flush
    if name == "prometheus-client set":
        import prometheus_client

        gauge = prometheus_client.Gauge("bench_metric", "bench", ["metric", "topic", "phase"])
        return (lambda i: gauge.labels("loss", "bench", "train").set(0.5)), (lambda: None)

    import otel_liveview

    otel_liveview.configure(metric_events=name != "publish_metric_sync, events off", max_queue_size=1_000_000)
    broadcaster = otel_liveview.ExperimentBroadcaster(base_topic="bench")
    flush = lambda: otel_liveview.flush(60)  # noqa: E731
    if name.startswith("publish_metric_sync"):
        return (lambda i: broadcaster.publish_metric_sync("loss", 0.5, step=i, phase="train")), flush
    if name == "publish_log_sync":
        return (lambda i: broadcaster.publish_log_sync("info", "step done", step=i)), flush
    if name == "publish_data_sync, 10 keys":
        return (lambda i: broadcaster.publish_data_sync("sensors", DATA)), flush
    raise SystemExit(f"unknown case {name!r}")


def measure(name: str, count: int) -> dict[str, float]:
    publish, flush = case(name)
    for i in range(min(1000, count)):  # warm up: first-call imports and caches
        publish(i)
    flush()
    clock = time.perf_counter_ns
    timer_cost = statistics.median(-(clock() - clock()) for _ in range(10_000))
    samples = []
    cpu_started = time.process_time()
    for i in range(count):
        started = clock()
        publish(i)
        samples.append(clock() - started)
    flush()
    cpu = time.process_time() - cpu_started
    samples.sort()
    return {
        "median_us": max(0.0, samples[len(samples) // 2] - timer_cost) / 1000,
        "p99_us": max(0.0, samples[int(len(samples) * 0.99)] - timer_cost) / 1000,
        "cpu_us": cpu / count * 1e6,
    }


# -- load: processes x threads ----------------------------------------------------------------------


def load_worker(threads: int, per_thread: int) -> dict[str, Any]:
    import threading

    import otel_liveview

    broadcaster = otel_liveview.ExperimentBroadcaster(base_topic="bench:load")

    def publish() -> None:
        for i in range(per_thread):
            broadcaster.publish_log_sync("info", "load", i=i)

    workers = [threading.Thread(target=publish) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    otel_liveview.flush(120)
    return otel_liveview.stats()


def load(receiver: Receiver, processes: int, threads: int, total: int) -> dict[str, Any]:
    per_thread = total // (processes * threads)
    receiver.reset()
    started = time.perf_counter()
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.run", "--load-worker", str(threads), str(per_thread)],
            cwd=ROOT,
            env=receiver.env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    stats = [json.loads(worker.communicate()[0].strip().splitlines()[-1]) for worker in workers]
    elapsed = time.perf_counter() - started
    published = sum(s["published"].get("log", 0) for s in stats)
    dropped = sum(sum(s["dropped"].values()) for s in stats)
    arrived = receiver.wait_for_logs(published - dropped, timeout=60)
    return {
        "sent": per_thread * processes * threads,
        "published": published,
        "dropped": dropped,
        "arrived": arrived,
        "seconds": elapsed,
    }


# -- memory per series --------------------------------------------------------------------------------


def memory(series: int) -> float:
    """Bytes of Python memory per distinct metric series (tracemalloc), tables and key caches included."""
    import tracemalloc

    import otel_liveview

    otel_liveview.configure(metric_events=False, max_series=series + 10)
    broadcaster = otel_liveview.ExperimentBroadcaster(base_topic="bench:memory")
    broadcaster.publish_metric_sync("warm", 1.0)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(series):
        broadcaster.publish_metric_sync(f"metric_{i}", float(i), step=i)
    after = tracemalloc.take_snapshot()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return grown / series


# -- the receiver process -------------------------------------------------------------------------------


class Receiver:
    """tests.support.receiver in its own process; counts what it decodes."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "tests.support.receiver", "--protocol", "http"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout
        self.endpoint = json.loads(self.process.stdout.readline())["endpoint"]
        self.logs = 0
        import threading

        threading.Thread(target=self._count, daemon=True).start()

    def _count(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:
            report = json.loads(line)
            if report.get("kind") == "logs":
                self.logs += report["count"]

    def reset(self) -> None:
        self.logs = 0

    def wait_for_logs(self, expected: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.logs < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.logs

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        }

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


# (ours, baseline, target ratio or None, figure): the publish-cost targets, plus the CPU
# figures of the event paths for information.
CASES = [
    ("publish_metric_sync, events off", "raw Gauge.set", 0.5, "median"),
    ("publish_metric_sync, events off", "raw Gauge.set", 1.0, "cpu"),
    ("publish_metric_sync, events off", "prometheus-client set", 4.0, "median"),
    ("publish_metric_sync, events on", "raw Logger.emit", 1.5, "median"),
    ("publish_log_sync", "raw Logger.emit", 1.2, "median"),
    ("publish_data_sync, 10 keys", "raw Logger.emit", 2.0, "median"),
    ("publish_metric_sync, events on", "raw Logger.emit", None, "cpu"),
    ("publish_log_sync", "raw Logger.emit", None, "cpu"),
    ("publish_data_sync, 10 keys", "raw Logger.emit", None, "cpu"),
]


def run_case(receiver: Receiver, name: str, count: int) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--case", name, str(count)],
        cwd=ROOT,
        env=receiver.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--case", nargs=2, metavar=("NAME", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--load-worker", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--memory", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(measure(args.case[0], int(args.case[1]))), flush=True)  # os._exit flushes nothing
        os._exit(0)  # measured already; skip exit-time export of leftovers
    if args.load_worker:
        print(json.dumps(load_worker(*args.load_worker)))
        return 0
    if args.memory:
        print(json.dumps(memory(args.memory)), flush=True)
        os._exit(0)

    count = 2_000 if args.quick else 200_000
    total = 16_000 if args.quick else 250_000
    series = 1_000 if args.quick else 10_000
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    receiver = Receiver()
    try:
        names = sorted({name for pair in CASES for name in pair[:2]})
        results = {name: run_case(receiver, name, count) for name in names}
        print(
            f"\n{count} calls per case; latency in µs per call (caller), CPU in µs per item (whole process)"
        )
        print(f"{'call':34} {'median':>8} {'p99':>8} {'CPU':>8}")
        for name in names:
            r = results[name]
            print(f"{name:34} {r['median_us']:8.2f} {r['p99_us']:8.2f} {r['cpu_us']:8.2f}")
        print(f"\n{'ratio':72} {'value':>6} {'target':>7}")
        for ours, baseline, target, figure in CASES:
            key = "cpu_us" if figure == "cpu" else "median_us"
            ratio = results[ours][key] / results[baseline][key]
            label = f"{ours} / {baseline} ({figure})"
            if target is None:
                print(f"{label:72} {ratio:6.2f} {'-':>7}")
            else:
                verdict = "ok" if ratio <= target else "MISSED"
                print(f"{label:72} {ratio:6.2f} {'<= ' + str(target):>7} {verdict}")
        outcome = load(receiver, 4, 4, total)
        complete = outcome["arrived"] + outcome["dropped"] == outcome["sent"]
        print(
            f"\n4 processes x 4 threads, {outcome['sent']} logs: {outcome['arrived']} arrived, "
            f"{outcome['dropped']} dropped (counted), {outcome['seconds']:.1f} s; "
            f"arrived + dropped == sent: {complete}"
        )
        per_series = json.loads(
            subprocess.run(
                [sys.executable, "-m", "benchmarks.run", "--memory", str(series)],
                cwd=ROOT,
                env=receiver.env(),
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        print(
            f"memory: {per_series:.0f} bytes per distinct metric series ({series} series; {per_series * 10_000 / 1e6:.1f} MB per 10k)"
        )
        print(
            "publish-to-queryable latency in Prometheus: see tests/servers/test_e2e_prometheus.py (printed with -s)"
        )
    finally:
        receiver.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
