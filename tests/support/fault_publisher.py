"""A publisher for the fault tests, run as its own process:

    python -m tests.support.fault_publisher RATE SECONDS

publishes a log (with a sequence number) and a metric RATE times a second for SECONDS, timing every
call, and prints one JSON line: call latencies (p50/p99/max in ms), RSS growth in MB after the
first second, and this process's published/dropped counts.
"""

from __future__ import annotations

import json
import sys
import time

import otel_liveview


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main(rate: int, seconds: float) -> None:
    broadcaster = otel_liveview.ExperimentBroadcaster(base_topic="faults")
    latencies = []
    started = time.monotonic()
    baseline = None
    seq = 0
    while (elapsed := time.monotonic() - started) < seconds:
        if baseline is None and elapsed > 1.0:
            baseline = rss_mb()
        ahead = started + seq / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        t0 = time.perf_counter()
        broadcaster.publish_log_sync("info", "tick", seq=seq)
        broadcaster.publish_metric_sync("seq", seq)
        latencies.append(time.perf_counter() - t0)
        seq += 1
    grown = rss_mb() - (baseline or rss_mb())
    flushed = otel_liveview.flush(10)
    latencies.sort()
    print(
        json.dumps(
            {
                "calls": len(latencies),
                "p50_ms": latencies[len(latencies) // 2] * 1000,
                "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
                "max_ms": latencies[-1] * 1000,
                "rss_growth_mb": grown,
                "flushed": flushed,
                **otel_liveview.stats(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]))
