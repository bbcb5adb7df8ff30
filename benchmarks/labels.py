"""What the launch labels cost a metric export: the run, rank and node on every point.

    python -m benchmarks.labels            # 10,000 series, the median of 9 exports each way

The same tables encoded by the library's metric encoder without and with a launch's identity
(liveview.run.id, liveview.rank, liveview.node.name), in the same run: bytes per point and CPU per
export, and the ratio. The publish call does not change (the labels are added when an export is
encoded, from attributes cached per series), so it is not measured here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from otel_liveview._internal import encoding
from otel_liveview._internal.encoding import MetricPoints

IDENTITY = {"liveview.run.id": "1408630785", "liveview.rank": "17", "liveview.node.name": "gpu-node-07"}


def measure(series: int, runs: int, identity: dict[str, str]) -> tuple[float, int]:
    """(median seconds per export, bytes) of `series` points, each with its metric and topic."""
    points = [
        ((("metric", f"layer{i}.grad_norm"), ("topic", "experiment:updates:root")), 0.5)
        for i in range(series)
    ]
    metrics = [MetricPoints("liveview.metric", "", points)]
    encoder = encoding.MetricsEncoder(
        encoding.resource({"service.name": "bench"}), encoding.scope("otel_liveview", "0"), identity=identity
    )
    size = len(encoder.encode(metrics, 1))  # the first export learns every series' attributes
    durations = []
    for _ in range(runs):
        started = time.process_time()
        encoder.encode(metrics, 1)
        durations.append(time.process_time() - started)
    return statistics.median(durations), size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args(argv)
    plain, plain_bytes = measure(args.series, args.runs, {})
    launched, launched_bytes = measure(args.series, args.runs, IDENTITY)
    print(f"{args.series:,} series, median of {args.runs} exports")
    print(
        f"without launch labels: {plain * 1000:.2f} ms CPU, {plain_bytes / args.series:.0f} bytes per point"
    )
    print(
        f"with launch labels:    {launched * 1000:.2f} ms CPU, {launched_bytes / args.series:.0f} bytes per point"
    )
    print(
        f"ratio: {launched / plain:.2f}x CPU, +{(launched_bytes - plain_bytes) / args.series:.0f} bytes per point"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
