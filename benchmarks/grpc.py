"""OTLP/gRPC client cost: the library's pure-Python client (h2) against grpcio's, per request.

    .venv/bin/python -m benchmarks.grpc [--requests N]

Both send the same serialized requests, one call at a time, to one grpcio server in another process
(`--serve`, which answers every Export with an empty response and decodes nothing), so the measured
process pays only for the client. CPU is `process_time()` of the client process over N calls (all
threads: grpcio does its I/O on threads of its own), divided by N; latency is the median wall time of
one call. Two requests: a batch of 512 log records (what the export thread sends) and a small
metric export.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent import futures

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)

from otel_liveview._internal.grpc_client import GrpcClient

LOGS = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
METRICS = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


def logs_request(records: int = 512) -> bytes:
    def record(i: int) -> LogRecord:
        attributes = [
            KeyValue(key="step", value=AnyValue(int_value=i)),
            KeyValue(key="topic", value=AnyValue(string_value="bench:grpc")),
        ]
        return LogRecord(time_unix_nano=1_700_000_000_000_000_000 + i, severity_number=9, severity_text="INFO",
                         body=AnyValue(string_value=f"step {i} done, loss {1 / (i + 1):.6f}"), attributes=attributes)  # fmt: skip

    logs = [record(i) for i in range(records)]
    return ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=logs)])]
    ).SerializeToString()


def metrics_request(points: int = 20) -> bytes:
    metrics = [
        Metric(
            name=f"liveview.metric.m{i}",
            gauge=Gauge(data_points=[NumberDataPoint(as_double=i, time_unix_nano=1)]),
        )
        for i in range(points)
    ]
    return ExportMetricsServiceRequest(
        resource_metrics=[ResourceMetrics(scope_metrics=[ScopeMetrics(metrics=metrics)])]
    ).SerializeToString()


def serve() -> None:
    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(
        lambda payload, context: b"", response_serializer=lambda b: b
    )
    for service in (
        "opentelemetry.proto.collector.logs.v1.LogsService",
        "opentelemetry.proto.collector.metrics.v1.MetricsService",
    ):
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, {"Export": handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()  # until the benchmark closes the pipe
    server.stop(None)


def call_ok(client: GrpcClient, payload: bytes) -> None:
    status = client.call(payload, 10)
    if status.code != "OK":  # grpcio's call raises on its own
        raise RuntimeError(f"the call failed: {status}")


def measure(send: Callable[[bytes], None], payload: bytes, requests: int) -> tuple[float, float]:
    """(CPU µs per call, median wall µs per call) over `requests` calls, after a warm-up."""
    for _ in range(20):
        send(payload)
    walls = []
    cpu = time.process_time()
    for _ in range(requests):
        started = time.perf_counter()
        send(payload)
        walls.append(time.perf_counter() - started)
    return (time.process_time() - cpu) / requests * 1e6, statistics.median(walls) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    import grpc

    server = subprocess.Popen([sys.executable, "-m", "benchmarks.grpc", "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert server.stdout is not None
        target = f"127.0.0.1:{server.stdout.readline().strip()}"
        channel = grpc.insecure_channel(target)
        print(
            f"{'request':<22} {'bytes':>8} {'grpcio CPU µs':>14} {'h2 CPU µs':>10} {'ratio':>6} {'grpcio wall µs':>15} {'h2 wall µs':>11}"
        )
        for name, method, payload in (
            ("512 log records", LOGS, logs_request()),
            ("metric export", METRICS, metrics_request()),
        ):
            call = channel.unary_unary(
                method, request_serializer=lambda b: b, response_deserializer=lambda b: b
            )
            client = GrpcClient(target, method)
            grpcio_cpu, grpcio_wall = measure(functools.partial(call, timeout=10), payload, args.requests)
            h2_cpu, h2_wall = measure(functools.partial(call_ok, client), payload, args.requests)
            client.close()
            print(
                f"{name:<22} {len(payload):>8} {grpcio_cpu:>14.1f} {h2_cpu:>10.1f} {h2_cpu / grpcio_cpu:>6.2f} {grpcio_wall:>15.1f} {h2_wall:>11.1f}"
            )
        channel.close()
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(10)


if __name__ == "__main__":
    main()
