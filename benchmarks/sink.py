"""A counting OTLP/HTTP sink for the export benchmarks: `python -m benchmarks.sink [--port N]`.

The test suite's receiver (`tests.support.receiver`) keeps every decoded request and prints a JSON line per
request; over a benchmark run of a million records that is memory that only grows and a pipe the
reader must keep up with. This sink keeps counts only, so it stays cheap at tens of thousands of
records per second: it decodes each request with opentelemetry-proto (the records really arrived
and parse), counts log records and requests and the metric updates that `liveview.metric` events
carry, and for metrics remembers the data points per metric name of the latest request (how many
series one export delivered). `GET /counts` returns the
totals as JSON, with the sink's own CPU time so a run can show that the sink was not the bottleneck.
The first line on standard output is `{"endpoint": ...}`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

OVERFLOW = "otel.metric.overflow"  # the SDK's attribute for points beyond its cardinality limit


class Counts:
    """What arrived so far; every field is a running total except the latest metric request's points."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log_requests = 0
        self.log_records = 0
        self.metric_updates = 0  # the points `liveview.metric` events carry (one column entry each)
        self.metric_requests = 0
        self.latest_points: dict[str, int] = {}  # metric name -> data points in the latest request
        self.latest_overflow: list[str] = []  # metric names whose latest points include an overflow one

    def add_logs(self, payload: bytes) -> None:
        request = ExportLogsServiceRequest.FromString(payload)
        records = updates = 0
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                records += len(scope_logs.log_records)
                for record in scope_logs.log_records:
                    if record.event_name == "liveview.metric":
                        updates += sum(
                            len(kv.value.array_value.values)
                            for kv in record.body.kvlist_value.values
                            if kv.key == "value"
                        )
        with self.lock:
            self.log_requests += 1
            self.log_records += records
            self.metric_updates += updates

    def add_metrics(self, payload: bytes) -> None:
        request = ExportMetricsServiceRequest.FromString(payload)
        points: dict[str, int] = {}
        overflow = []
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    data = getattr(metric, metric.WhichOneof("data"))
                    points[metric.name] = points.get(metric.name, 0) + len(data.data_points)
                    if any(kv.key == OVERFLOW for p in data.data_points for kv in p.attributes):
                        overflow.append(metric.name)
        with self.lock:
            self.metric_requests += 1
            self.latest_points = points
            self.latest_overflow = overflow

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "log_requests": self.log_requests,
                "log_records": self.log_records,
                "metric_updates": self.metric_updates,
                "metric_requests": self.metric_requests,
                "latest_points": self.latest_points,
                "latest_overflow": self.latest_overflow,
                "cpu_seconds": time.process_time(),
            }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as both exporters expect
    counts: Counts

    def do_POST(self) -> None:
        payload = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            payload = gzip.decompress(payload)
        if self.path.endswith("/v1/logs"):
            self.counts.add_logs(payload)
        elif self.path.endswith("/v1/metrics"):
            self.counts.add_metrics(payload)
        else:
            self._answer(404, b"")
            return
        self._answer(200, b"")  # an empty Export*ServiceResponse: full success

    def do_GET(self) -> None:
        if self.path != "/counts":
            self._answer(404, b"")
            return
        self._answer(200, json.dumps(self.counts.snapshot()).encode(), "application/json")

    def _answer(self, status: int, body: bytes, content_type: str = "application/x-protobuf") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a sender that exits mid-connection (each benchmark child ends with os._exit)


def serve(port: int = 0) -> ThreadingHTTPServer:
    """Serve on 127.0.0.1:`port` (0: a free port) in a background thread."""
    handler = type("Handler", (_Handler,), {"counts": Counts()})
    server = _Server(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=0)
    server = serve(parser.parse_args().port)
    print(json.dumps({"endpoint": f"http://127.0.0.1:{server.server_address[1]}"}), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
