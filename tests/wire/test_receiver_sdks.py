"""The view takes what the Collector's OTLP receiver takes: the OpenTelemetry SDK exporters of Go,
Node.js and Java (tests/support/sdks, built on demand) and the Python SDK's gRPC exporter with gzip publish to a
running view and its Board shows their metric and log; hand-made requests check chunked bodies,
compression and the size limit applied to the body as sent and as decompressed.

The Go, Node.js and Java cases are marked `sdks` (`pytest -m "not sdks"` leaves them out): they need
`go`, `node`/`npm` and `mvn`/a JDK, and a first run builds the publishers (minutes).
"""

from __future__ import annotations

import gzip
import http.client
import io
import re
import socket
import subprocess
import threading
from collections.abc import Iterator

import grpc
import pytest

try:
    from compression import zstd  # Python 3.14
except ImportError:
    from backports import zstd
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)

from otel_liveview.view import session as view
from otel_liveview.view.board import Board, Snapshot
from otel_liveview.view.receiver import OtlpReceiver
from otel_liveview.view.session import ViewSession
from tests.support.processes import publisher_env
from tests.support.sdks import go_publisher, java_publisher, node_publisher

pytestmark = pytest.mark.timeout(1500)  # a first run builds the publishers

LIMIT = 1024 * 1024
PROTOBUF = {"Content-Type": "application/x-protobuf"}


class RecordingProxy:
    """A TCP relay in front of one of the view's ports that keeps every byte clients send, to see
    how an SDK frames its requests (and how many bytes it needs)."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._sent = bytearray()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def sent(self) -> bytes:
        with self._lock:
            return bytes(self._sent)

    def http_heads(self) -> list[dict[str, str]]:
        """The path and header fields (names in lower case) of every request sent."""
        heads = re.findall(rb"POST (/v1/\w+) HTTP/1\.1\r\n((?:[^\r\n]+\r\n)*)\r\n", self.sent)
        return [
            {"path": path.decode()}
            | {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines)
            }
            for path, lines in ((path, block.decode().splitlines()) for path, block in heads)
        ]

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        try:
            while data := source.recv(65536):
                if record:
                    with self._lock:
                        self._sent += data
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for open_socket in self._sockets:
                open_socket.close()


@pytest.fixture
def session() -> Iterator[ViewSession]:
    """A running view (receivers and renderer) on free ports, drawing plain frames nobody reads."""
    running = view.start(grpc="127.0.0.1:0", http="127.0.0.1:0", plain=True, refresh=3600, out=io.StringIO())
    yield running
    running.stop()


def shown(snapshot: Snapshot, metric: str, value: float, sdk: str) -> None:
    """The Board has the SDK's gauge with its value and its log line with its attribute, and refused
    nothing."""
    rows = [(row.name, row.value, row.kind) for row in snapshot.metrics]
    assert (metric, value, "gauge") in rows, rows
    lines = [(line.severity, line.body, line.attributes) for line in snapshot.logs]
    assert ("INFO", metric, (("sdk", sdk),)) in lines, lines
    assert snapshot.totals.get("rejected", 0) == 0, snapshot.rejections


# -- other languages' SDKs ------------------------------------------------------------------------------

# How each pinned exporter frames its OTLP/HTTP requests (seen through the proxy): Node.js always
# streams its body (chunked), Go and Java send a Content-Length unless they compress. Java's
# autoconfiguration has no http/json.
SDK_CASES = [
    ("go", "http/protobuf", "none", "content-length"),
    ("go", "http/protobuf", "gzip", "chunked"),
    ("go", "grpc", "none", None),
    ("go", "grpc", "gzip", None),
    ("node", "http/protobuf", "none", "chunked"),
    ("node", "http/protobuf", "gzip", "chunked"),
    ("node", "http/json", "none", "chunked"),
    ("node", "http/json", "gzip", "chunked"),
    ("node", "grpc", "none", None),
    ("node", "grpc", "gzip", None),
    ("java", "http/protobuf", "none", "content-length"),
    ("java", "http/protobuf", "gzip", "chunked"),
    ("java", "grpc", "none", None),
    ("java", "grpc", "gzip", None),
]
PUBLISHERS = {"go": go_publisher, "node": node_publisher, "java": java_publisher}


def run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.sdks
@pytest.mark.parametrize(("sdk", "protocol", "compression", "framing"), SDK_CASES)
def test_another_languages_sdk_exporters_show_their_metric_and_log(
    session: ViewSession, sdk: str, protocol: str, compression: str, framing: str | None
) -> None:
    port = session.receiver.grpc_bound if protocol == "grpc" else session.receiver.http_bound
    assert port is not None
    proxy = RecordingProxy(port)
    try:
        metric = f"{sdk}_{protocol.replace('/', '_')}_{compression}"
        env = publisher_env(
            f"http://{proxy.address}",
            protocol=protocol,
            OTEL_EXPORTER_OTLP_COMPRESSION=compression,
            OTEL_EXPORTER_OTLP_TIMEOUT="20000",
        )
        run([*PUBLISHERS[sdk](), metric, "42", metric], env)
        heads = proxy.http_heads()
    finally:
        proxy.close()
    shown(session.board.snapshot(), metric, 42.0, sdk)
    if framing is None:  # gRPC: HTTP/2 frames, no HTTP/1.1 heads to look at
        assert heads == []
        return
    assert {head["path"] for head in heads} == {"/v1/metrics", "/v1/logs"}, heads
    for head in heads:
        assert ("transfer-encoding" if framing == "chunked" else "content-length") in head, head
        assert head.get("content-encoding") == (None if compression == "none" else compression), head


# -- the Python SDK's gRPC exporter with gzip -----------------------------------------------------------


def test_python_sdk_grpc_exporter_with_gzip_compression(
    session: ViewSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    assert session.receiver.grpc_bound is not None
    proxy = RecordingProxy(session.receiver.grpc_bound)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{proxy.address}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    try:
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=600_000)
        meters = MeterProvider(metric_readers=[reader])
        meters.get_meter("grpc-gzip").create_gauge("python_grpc_gzip").set(42.0)
        meters.shutdown()
        loggers = LoggerProvider()
        loggers.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter()))
        big = "python_grpc_gzip " * 20_000  # 340 kB that gzip shrinks to a few kB
        loggers.get_logger("grpc-gzip").emit(body=big, severity_number=SeverityNumber.INFO)
        loggers.get_logger("grpc-gzip").emit(
            body="python_grpc_gzip", severity_number=SeverityNumber.INFO, attributes={"sdk": "python"}
        )
        loggers.shutdown()
        sent = len(proxy.sent)
    finally:
        proxy.close()
    shown(session.board.snapshot(), "python_grpc_gzip", 42.0, "python")
    assert sent < len(big) / 10, sent  # the messages went compressed and the view inflated them


# -- hand-made requests ---------------------------------------------------------------------------------


def gauge(name: str, value: float) -> ExportMetricsServiceRequest:
    point = NumberDataPoint(as_double=value)
    metric = Metric(name=name, gauge=Gauge(data_points=[point]))
    return ExportMetricsServiceRequest(
        resource_metrics=[ResourceMetrics(scope_metrics=[ScopeMetrics(metrics=[metric])])]
    )


def log(body: str) -> ExportLogsServiceRequest:
    record = LogRecord(body=AnyValue(string_value=body), severity_number=9)
    return ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[record])])]
    )


def pieces(data: bytes, size: int = 100) -> Iterator[bytes]:
    """An iterable body: http.client sends it chunked, one chunk per piece."""
    return (data[start : start + size] for start in range(0, len(data), size))


@pytest.fixture
def bounded() -> Iterator[tuple[Board, http.client.HTTPConnection, str]]:
    """A Board behind a receiver whose limit is 1 MiB, one HTTP connection to it and its gRPC address."""
    board = Board()
    with OtlpReceiver(board, "127.0.0.1:0", "127.0.0.1:0", max_body_bytes=LIMIT) as receiver:
        assert receiver.http_bound and receiver.grpc_bound
        host, port = receiver.http_bound.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        yield board, connection, receiver.grpc_bound
        connection.close()


def post(
    connection: http.client.HTTPConnection, path: str, body: object, **headers: str
) -> tuple[int, bytes]:
    connection.request("POST", path, body=body, headers={**PROTOBUF, **headers})  # type: ignore[arg-type]
    response = connection.getresponse()
    return response.status, response.read()


def test_chunked_bodies_from_http_client_on_one_kept_alive_connection(
    bounded: tuple[Board, http.client.HTTPConnection, str],
) -> None:
    board, connection, _ = bounded
    assert post(connection, "/v1/metrics", pieces(gauge("chunked_plain", 1.5).SerializeToString())) == (
        200,
        b"",
    )
    compressed = gzip.compress(log("chunked gzip log").SerializeToString())
    assert post(connection, "/v1/logs", pieces(compressed, 7), **{"Content-Encoding": "gzip"})[0] == 200
    document = b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"chunked_json","gauge":{"dataPoints":[{"asDouble":2.5}]}}]}]}]}'
    status, reply = post(
        connection, "/v1/metrics", pieces(document, 10), **{"Content-Type": "application/json"}
    )
    assert (status, reply) == (200, b"{}")
    zstd_body = zstd.compress(gauge("chunked_zstd", 3.5).SerializeToString())
    assert post(connection, "/v1/metrics", pieces(zstd_body, 5), **{"Content-Encoding": "zstd"})[0] == 200
    snapshot = board.snapshot()
    values = {row.name: row.value for row in snapshot.metrics}
    assert values == {"chunked_plain": 1.5, "chunked_json": 2.5, "chunked_zstd": 3.5}
    assert [line.body for line in snapshot.logs] == ["chunked gzip log"]
    assert snapshot.totals["metric requests"] == 3 and snapshot.totals.get("rejected", 0) == 0


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_a_zip_bomb_is_413_and_the_connection_stays_usable(
    bounded: tuple[Board, http.client.HTTPConnection, str], encoding: str
) -> None:
    board, connection, _ = bounded
    bomb = (gzip.compress if encoding == "gzip" else zstd.compress)(bytes(8 * LIMIT))
    assert len(bomb) < LIMIT / 10
    status, reply = post(connection, "/v1/metrics", bomb, **{"Content-Encoding": encoding})
    assert status == 413
    assert status_pb2.Status.FromString(reply).message == f"decompressed body exceeds {LIMIT} bytes"
    assert post(connection, "/v1/metrics", gauge("after_bomb", 1.0).SerializeToString())[0] == 200
    snapshot = board.snapshot()
    assert snapshot.rejections == (f"http: decompressed body exceeds {LIMIT} bytes",)
    assert [row.name for row in snapshot.metrics] == ["after_bomb"]


def test_an_endless_chunked_body_is_refused_once_past_the_limit(
    bounded: tuple[Board, http.client.HTTPConnection, str],
) -> None:
    board, connection, _ = bounded
    connection.connect()
    assert connection.sock is not None
    sock = connection.sock
    sock.sendall(b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"10000\r\n" + bytes(0x10000) + b"\r\n"
    sent = 0
    with pytest.raises(OSError):  # the view hangs up: sending fails long before 1 GiB
        while sent < 1024 * LIMIT:
            sock.sendall(chunk)
            sent += len(chunk)
    assert sent < 64 * LIMIT, sent
    assert board.snapshot().rejections == (f"http: chunked body exceeds {LIMIT} bytes",)


def test_length_and_transfer_encoding_headers_as_http_1_1_defines_them(
    bounded: tuple[Board, http.client.HTTPConnection, str],
) -> None:
    board, connection, _ = bounded
    # No Content-Length and no Transfer-Encoding: a request without a body (an empty export).
    connection.putrequest("POST", "/v1/logs")
    connection.putheader("Content-Type", "application/x-protobuf")
    connection.endheaders()
    response = connection.getresponse()
    assert (response.status, response.read()) == (200, b"")

    for headers, status, message in [
        ({"Transfer-Encoding": "gzip, chunked"}, 501, "unsupported Transfer-Encoding 'gzip, chunked'"),
        ({"Content-Length": "many"}, 400, "Content-Length is not a number"),
        ({"Content-Length": str(LIMIT + 1)}, 413, f"body of {LIMIT + 1} bytes exceeds {LIMIT}"),
    ]:
        connection.close()
        connection.putrequest("POST", "/v1/logs", skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == status and response.getheader("Connection") == "close"
        assert message in status_pb2.Status.FromString(response.read()).message
    assert board.snapshot().totals["rejected"] == 3


@pytest.mark.parametrize("compression", [grpc.Compression.Gzip, grpc.Compression.Deflate])
def test_grpc_messages_are_inflated_and_bounded_after_inflating(
    bounded: tuple[Board, http.client.HTTPConnection, str], compression: grpc.Compression
) -> None:
    board, _, address = bounded
    with grpc.insecure_channel(address, compression=compression) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export")
        export(gauge("grpc_compressed", 4.5).SerializeToString(), timeout=30)
        bomb = ExportMetricsServiceRequest(resource_metrics=[ResourceMetrics(schema_url="0" * 8 * LIMIT)])
        with pytest.raises(grpc.RpcError) as error:
            export(bomb.SerializeToString(), timeout=30)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "Decompressed message larger than max" in (error.value.details() or "")
    assert [(row.name, row.value) for row in board.snapshot().metrics] == [("grpc_compressed", 4.5)]
