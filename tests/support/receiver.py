"""An OTLP receiver inside the test suite (HTTP/protobuf and gRPC), decoding with opentelemetry-proto.

It is a test peer, not a collector: it keeps every request it decodes so tests can assert the exact
names, attributes, bodies and counts the real exporters put on the wire. It can also answer with
errors or delays, and runs as a separate process (`python -m tests.support.receiver`) for tests that kill it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gzip
import json
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

__all__ = [
    "Receiver",
    "decode_any",
    "grpc_receiver",
    "http_receiver",
    "metric_updates",
    "serving_http",
    "start_http",
    "stop_http",
    "wait_until",
]


def wait_until(
    predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def decode_any(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "kvlist_value":
        return {kv.key: decode_any(kv.value) for kv in value.kvlist_value.values}
    if kind == "array_value":
        return [decode_any(v) for v in value.array_value.values]
    return getattr(value, kind)


def decode_attributes(attributes: Iterator[KeyValue]) -> dict[str, Any]:
    return {kv.key: decode_any(kv.value) for kv in attributes}


def metric_updates(events: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """The updates that `liveview.metric` events (body, attributes) carry, one dict per update in
    time order: the event's attributes (the series' labels) and that update's entry of every column,
    the `attributes` columns included."""
    updates = []
    for body, attributes in events:
        columns = {k: v for k, v in body.items() if k not in ("metric", "attributes")}
        columns.update(body.get("attributes", {}))
        labels = {k: v for k, v in attributes.items() if k != "event_name"}
        for i in range(len(body["value"])):
            updates.append({**labels, **{name: column[i] for name, column in columns.items()}})
    return sorted(updates, key=lambda update: update["time"])


@dataclass
class LogRow:
    resource: dict[str, Any]
    scope: str
    scope_version: str
    event_name: str
    body: Any
    attributes: dict[str, Any]
    severity_number: int
    severity_text: str
    time_unix_nano: int


@dataclass
class PointRow:
    resource: dict[str, Any]
    name: str
    kind: str  # gauge / sum
    attributes: dict[str, Any]
    value: float
    time_unix_nano: int
    monotonic: bool = False
    temporality: int = 0


@dataclass
class Receiver:
    """Keeps decoded requests; `respond` may be set to an HTTP status to answer with errors."""

    logs: list[logs_service_pb2.ExportLogsServiceRequest] = field(default_factory=list)
    metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    endpoint: str = ""
    requests: int = 0
    attempts: collections.Counter[str] = field(
        default_factory=collections.Counter
    )  # by path, errors included
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def store(self, request: Message) -> None:
        with self._lock:
            self.requests += 1
            target = (
                self.logs if isinstance(request, logs_service_pb2.ExportLogsServiceRequest) else self.metrics
            )
            target.append(request)

    def clear(self) -> None:
        with self._lock:
            self.logs.clear()
            self.metrics.clear()

    def log_rows(self) -> list[LogRow]:
        with self._lock:
            requests = list(self.logs)
        rows = []
        for request in requests:
            for resource_logs in request.resource_logs:
                resource = decode_attributes(resource_logs.resource.attributes)
                for scope_logs in resource_logs.scope_logs:
                    for record in scope_logs.log_records:
                        rows.append(
                            LogRow(
                                resource,
                                scope_logs.scope.name,
                                scope_logs.scope.version,
                                record.event_name,
                                decode_any(record.body),
                                decode_attributes(record.attributes),
                                record.severity_number,
                                record.severity_text,
                                record.time_unix_nano,
                            )
                        )
        return rows

    def metric_updates(self) -> list[dict[str, Any]]:
        """Every metric update the `liveview.metric` events received so far carry (`metric_updates`)."""
        return metric_updates(
            (row.body, row.attributes) for row in self.log_rows() if row.event_name == "liveview.metric"
        )

    def point_rows(self, name: str | None = None) -> list[PointRow]:
        with self._lock:
            requests = list(self.metrics)
        rows = []
        for request in requests:
            for resource_metrics in request.resource_metrics:
                resource = decode_attributes(resource_metrics.resource.attributes)
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        if name is not None and metric.name != name:
                            continue
                        kind = metric.WhichOneof("data")
                        data = getattr(metric, kind)
                        for point in data.data_points:
                            value = (
                                point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
                            )
                            rows.append(
                                PointRow(
                                    resource,
                                    metric.name,
                                    kind,
                                    decode_attributes(point.attributes),
                                    value,
                                    point.time_unix_nano,
                                    getattr(data, "is_monotonic", False),
                                    getattr(data, "aggregation_temporality", 0),
                                )
                            )
        return rows

    def latest(self, name: str) -> dict[tuple[str, frozenset[tuple[str, Any]]], float]:
        """Last value per (service.instance.id, attribute set) of metric `name`."""
        latest: dict[tuple[str, frozenset[tuple[str, Any]]], tuple[int, float]] = {}
        for row in self.point_rows(name):
            key = (row.resource.get("service.instance.id", ""), frozenset(row.attributes.items()))
            if key not in latest or row.time_unix_nano >= latest[key][0]:
                latest[key] = (row.time_unix_nano, row.value)
        return {key: value for key, (_, value) in latest.items()}


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        payload = self.rfile.read(length)
        if self.headers.get("Content-Encoding") == "gzip":
            payload = gzip.decompress(payload)
        receiver = self.receiver
        with receiver._lock:
            receiver.attempts[self.path] += 1
        if receiver.delay:
            time.sleep(receiver.delay)
        if receiver.status != 200:
            self._answer(receiver.status, b"")
            return
        # Under a prefix too: the Collector's Loki exporter posts to Loki's /otlp/v1/logs.
        if self.path.endswith("/v1/logs"):
            request: Message = logs_service_pb2.ExportLogsServiceRequest()
            reply: Message = logs_service_pb2.ExportLogsServiceResponse()
        elif self.path.endswith("/v1/metrics"):
            request = metrics_service_pb2.ExportMetricsServiceRequest()
            reply = metrics_service_pb2.ExportMetricsServiceResponse()
        else:
            self._answer(404, b"")
            return
        request.ParseFromString(payload)
        receiver.store(request)
        self._answer(200, reply.SerializeToString())

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # exporters that gave up waiting
            super().handle_error(request, client_address)


def stop_http(server: ThreadingHTTPServer) -> None:
    """Stop a server from start_http the way a dead process stops: no more connections accepted, and
    the open (keep-alive) ones cut, so a client cannot go on sending over them."""
    server.shutdown()
    server.server_close()
    if isinstance(server, _Server):
        with server._connections_lock:
            connections = list(server.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def start_http(receiver: Receiver, port: int = 0, tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    """Serve OTLP/HTTP on 127.0.0.1 (HTTPS with `tls`, a server-side SSL context)."""
    handler = type("Handler", (_Handler,), {"receiver": receiver})
    server = _Server(("127.0.0.1", port), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scheme = "https" if tls is not None else "http"
    receiver.endpoint = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    return server


class _Service:
    """The Export method both OTLP gRPC services have."""

    def __init__(self, receiver: Receiver, reply: type[Message]) -> None:
        self.receiver = receiver
        self.reply = reply

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        if self.receiver.status != 200:
            context.abort(grpc.StatusCode.UNAVAILABLE, "receiver told to fail")
        self.receiver.store(request)
        return self.reply()


def start_grpc(receiver: Receiver, port: int = 0, tls: grpc.ServerCredentials | None = None) -> grpc.Server:
    """Serve OTLP/gRPC on 127.0.0.1 (over TLS with `tls`)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    logs = _Service(receiver, logs_service_pb2.ExportLogsServiceResponse)
    metrics = _Service(receiver, metrics_service_pb2.ExportMetricsServiceResponse)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(logs, server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(metrics, server)
    if tls is None:
        bound = server.add_insecure_port(f"127.0.0.1:{port}")
    else:
        bound = server.add_secure_port(f"127.0.0.1:{port}", tls)
    server.start()
    receiver.endpoint = f"{'http' if tls is None else 'https'}://127.0.0.1:{bound}"
    return server


@contextlib.contextmanager
def serving_http(tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """An OTLP/HTTP receiver on a free loopback port for the length of a `with` block."""
    receiver = Receiver()
    server = start_http(receiver, tls=tls)
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_receiver() -> Iterator[Receiver]:
    with serving_http() as receiver:
        yield receiver


@pytest.fixture
def grpc_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    server = start_grpc(receiver)
    yield receiver
    server.stop(grace=None)


@dataclass
class SilentListener:
    """A TCP port that accepts connections, keeps them, and never answers: a hung collector, or a
    port to count connections on."""

    url: str
    connections: list[socket.socket]


@contextlib.contextmanager
def silent_listener() -> Iterator[SilentListener]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)
    listener = SilentListener(f"http://127.0.0.1:{server.getsockname()[1]}", [])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                listener.connections.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        stop.set()
        thread.join()
        for connection in [*listener.connections, server]:
            connection.close()


def main() -> None:
    """Run a receiver as its own process; prints one JSON line per decoded request to stdout."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--protocol", choices=("http", "grpc"), default="http")
    args = parser.parse_args()
    receiver = Receiver()
    original = receiver.store
    printing = threading.Lock()  # one JSON line at a time from the handler threads

    def store_and_report(request: Message) -> None:
        original(request)
        kind = "logs" if isinstance(request, logs_service_pb2.ExportLogsServiceRequest) else "metrics"
        if kind == "logs":
            count = sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs)
        else:
            count = sum(
                len(m.gauge.data_points) + len(m.sum.data_points)
                for r in request.resource_metrics
                for s in r.scope_metrics
                for m in s.metrics
            )
        with printing:
            print(json.dumps({"kind": kind, "count": count}), flush=True)

    receiver.store = store_and_report  # type: ignore[method-assign]
    with printing:  # the endpoint line first, though a publisher may be sending already
        server = (start_http if args.protocol == "http" else start_grpc)(receiver, args.port)
        print(json.dumps({"endpoint": receiver.endpoint}), flush=True)
    threading.Event().wait()
    del server


if __name__ == "__main__":
    sys.exit(main())
