"""The view's receiver beside the real Collector (0.159.0, the shipped deploy/otel-collector/config.yaml):
every request shape below is sent to both, the Collector's OTLP receiver takes each, and so does the
view, whose Board then shows the request's metric.

The view is more lenient in two places the Collector refuses with 400 (an upper-case
`Content-Encoding` and `identity`), and answers an encoding it does not know with 415 where the
Collector says 400; snappy and lz4, which the Collector also takes, are refused (docs/view.md).
"""

from __future__ import annotations

import gzip
import http.client
import socket
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

try:
    from compression import zstd  # Python 3.14
except ImportError:
    from backports import zstd

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)

from otel_liveview.view.board import Board
from otel_liveview.view.receiver import OtlpReceiver
from tests.support import free_port
from tests.support.servers import Collector, start_collector

pytestmark = [pytest.mark.servers, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    """The Collector with the shipped configuration; its exporters point at a closed port (its OTLP
    receiver answers once the batch processor has the data, whatever becomes of it after)."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    server = start_collector(
        Path(tmp_path_factory.mktemp("otelcol")),
        remote_write_url=f"{nowhere}/api/v1/write",
        loki_url=f"{nowhere}/otlp",
    )
    yield server
    server.stop()


@pytest.fixture
def view_receiver() -> Iterator[tuple[Board, OtlpReceiver]]:
    board = Board()
    with OtlpReceiver(board, "127.0.0.1:0", "127.0.0.1:0") as receiver:
        yield board, receiver


def gauge(name: str) -> bytes:
    metric = Metric(name=name, gauge=Gauge(data_points=[NumberDataPoint(as_double=1.0)]))
    request = ExportMetricsServiceRequest(
        resource_metrics=[ResourceMetrics(scope_metrics=[ScopeMetrics(metrics=[metric])])]
    )
    return request.SerializeToString()


def halves(data: bytes) -> list[bytes]:
    return [data[: len(data) // 2], data[len(data) // 2 :]]


def json_gauge(name: str) -> bytes:
    return (
        b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"%s","gauge":{"dataPoints":'
        b'[{"asDouble":1.0}]}}]}]}]}' % name.encode()
    )


# name -> (body for a metric name, extra headers, chunked): what the SDKs' exporters send, and more.
SHAPES: dict[str, tuple[Callable[[str], bytes], dict[str, str], bool]] = {
    "protobuf": (gauge, {}, False),
    "protobuf_chunked": (gauge, {}, True),
    "json_chunked": (json_gauge, {"Content-Type": "application/json; charset=utf-8"}, True),
    "gzip": (lambda name: gzip.compress(gauge(name)), {"Content-Encoding": "gzip"}, False),
    "gzip_chunked": (lambda name: gzip.compress(gauge(name)), {"Content-Encoding": "gzip"}, True),
    "gzip_two_members": (
        lambda name: b"".join(gzip.compress(half) for half in halves(gauge(name))),
        {"Content-Encoding": "gzip"},
        False,
    ),
    "deflate": (lambda name: zlib.compress(gauge(name)), {"Content-Encoding": "deflate"}, False),
    "zlib": (lambda name: zlib.compress(gauge(name)), {"Content-Encoding": "zlib"}, False),
    "zstd": (lambda name: zstd.compress(gauge(name)), {"Content-Encoding": "zstd"}, False),
    "zstd_two_frames_chunked": (
        lambda name: b"".join(zstd.compress(half) for half in halves(gauge(name))),
        {"Content-Encoding": "zstd"},
        True,
    ),
}


def post(address: str, body: bytes, headers: dict[str, str], *, chunked: bool) -> int:
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        # An iterable body goes chunked (http.client adds Transfer-Encoding), bytes with a length.
        payload: bytes | Iterator[bytes] = iter(halves(body)) if chunked else body
        connection.request(
            "POST", "/v1/metrics", body=payload, headers={"Content-Type": "application/x-protobuf", **headers}
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.parametrize("shape", list(SHAPES))
def test_what_the_collector_takes_over_http_the_view_takes(
    collector: Collector, view_receiver: tuple[Board, OtlpReceiver], shape: str
) -> None:
    board, receiver = view_receiver
    assert receiver.http_bound is not None
    make_body, headers, chunked = SHAPES[shape]
    body = make_body(shape)
    address = collector.otlp_http_endpoint.removeprefix("http://")
    assert post(address, body, headers, chunked=chunked) == 200
    assert post(receiver.http_bound, body, headers, chunked=chunked) == 200
    snapshot = board.snapshot()
    assert [row.name for row in snapshot.metrics] == [shape]
    assert snapshot.totals.get("rejected", 0) == 0, snapshot.rejections


def test_a_transfer_encoding_other_than_chunked_is_501_from_both(
    collector: Collector, view_receiver: tuple[Board, OtlpReceiver]
) -> None:
    _, receiver = view_receiver
    assert receiver.http_bound is not None
    head = b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    for address in (collector.otlp_http_endpoint.removeprefix("http://"), receiver.http_bound):
        host, port = address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(head)
            assert sock.makefile("rb").readline().startswith(b"HTTP/1.1 501 "), address


def test_grpc_with_gzip_compression_is_taken_by_both(
    collector: Collector, view_receiver: tuple[Board, OtlpReceiver]
) -> None:
    board, receiver = view_receiver
    assert receiver.grpc_bound is not None
    for address in (collector.otlp_grpc_endpoint.removeprefix("http://"), receiver.grpc_bound):
        with grpc.insecure_channel(address, compression=grpc.Compression.Gzip) as channel:
            export = channel.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export")
            export(gauge("grpc_gzip"), timeout=30)
    assert [row.name for row in board.snapshot().metrics] == ["grpc_gzip"]
