"""The view's receiver (otel_liveview/view/receiver.py) serving in this process: a live OtlpReceiver on
free ports taking OTLP/HTTP (protobuf and JSON, compressed, chunked) and gRPC, its answers to what it
refuses, and the addresses it listens on."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)

try:
    from compression import zstd  # Python 3.14
except ImportError:
    from backports import zstd

from otel_liveview.view import receiver as rx
from otel_liveview.view.receiver import ListenError, OtlpReceiver, format_address, parse_address
from tests.support import free_port, unavailable

METRICS = ExportMetricsServiceRequest(
    resource_metrics=[
        ResourceMetrics(
            scope_metrics=[
                ScopeMetrics(
                    metrics=[
                        Metric(
                            name="loss",
                            gauge=Gauge(
                                data_points=[
                                    NumberDataPoint(
                                        as_double=0.5,
                                        time_unix_nano=7,
                                        attributes=[KeyValue(key="k", value=AnyValue(string_value="v"))],
                                    )
                                ]
                            ),
                        )
                    ]
                )
            ]
        )
    ]
)
LOGS = ExportLogsServiceRequest(
    resource_logs=[
        ResourceLogs(
            scope_logs=[
                ScopeLogs(
                    log_records=[
                        LogRecord(
                            body=AnyValue(string_value="hello"),
                            trace_id=bytes(range(16)),
                            span_id=bytes(range(8)),
                            severity_number=9,
                        )
                    ]
                )
            ]
        )
    ]
)
LOGS_JSON = {
    "resourceLogs": [
        {
            "scopeLogs": [
                {
                    "logRecords": [
                        {
                            "body": {"stringValue": "hello"},
                            "traceId": bytes(range(16)).hex(),
                            "spanId": bytes(range(8)).hex(),
                            "severityNumber": 9,
                            "unknownField": 1,
                        }
                    ]
                }
            ]
        }
    ]
}


class Recorder:
    def __init__(self) -> None:
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.logs: list[ExportLogsServiceRequest] = []
        self.rejections: list[tuple[str, str]] = []
        self.fail: Exception | None = None
        self.threads: list[str] = []  # where add_metrics ran
        self._lock = threading.Lock()

    def add_metrics(self, request: ExportMetricsServiceRequest) -> None:
        self.threads.append(threading.current_thread().name)
        if self.fail is not None:
            raise self.fail
        with self._lock:
            self.metrics.append(request)

    def add_logs(self, request: ExportLogsServiceRequest) -> None:
        if self.fail is not None:
            raise self.fail
        with self._lock:
            self.logs.append(request)

    def rejected(self, transport: str, reason: str) -> None:
        with self._lock:
            self.rejections.append((transport, reason))

    def reset(self) -> None:
        with self._lock:
            self.metrics.clear()
            self.logs.clear()
            self.rejections.clear()
            self.threads.clear()
        self.fail = None
        self.__dict__.pop("rejected", None)  # a test's replacement


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[Recorder, OtlpReceiver]]:
    """One receiver for the module's tests (started and stopped once: the tests stay fast)."""
    recorder = Recorder()
    with OtlpReceiver(
        recorder, grpc_address="127.0.0.1:0", http_address="127.0.0.1:0", max_body_bytes=4096
    ) as receiver:
        yield recorder, receiver


@pytest.fixture
def sink(shared: tuple[Recorder, OtlpReceiver]) -> Iterator[Recorder]:
    recorder = shared[0]
    recorder.reset()
    yield recorder
    recorder.reset()


@pytest.fixture
def served(shared: tuple[Recorder, OtlpReceiver], sink: Recorder) -> OtlpReceiver:
    return shared[1]


def post(
    receiver: OtlpReceiver, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    host, port = parse_address(receiver.http_bound or "")
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("POST", path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def raw(receiver: OtlpReceiver, wire: bytes) -> bytes:
    """Send `wire` as is, half-close, and read the whole answer."""
    host, port = parse_address(receiver.http_bound or "")
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(wire)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def status_of(body: bytes) -> tuple[int, str]:
    status = status_pb2.Status.FromString(body)
    return status.code, status.message


# -- addresses ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost:4317", ("localhost", 4317)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
        ("[::1]:4318", ("::1", 4318)),
        (":4318", ("127.0.0.1", 4318)),
        ("4318", ("127.0.0.1", 4318)),
        ("  10.0.0.1:0  ", ("10.0.0.1", 0)),
        ("h:65535", ("h", 65535)),
    ],
)
def test_addresses_parse_to_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


def test_a_missing_host_is_the_default_host() -> None:
    assert parse_address(":9", default_host="0.0.0.0") == ("0.0.0.0", 9)
    assert parse_address("9", default_host="::") == ("::", 9)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("host", "'host' is not HOST:PORT"),
        ("host:port", "'host:port' is not HOST:PORT"),
        ("", "'' is not HOST:PORT"),
        ("h:65536", "'h:65536': port out of range"),
        ("-1", "'-1': port out of range"),
    ],
)
def test_what_is_not_an_address_is_a_value_error(text: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_address(text)
    assert str(error.value) == message


def test_ipv6_hosts_are_bracketed_when_formatted() -> None:
    assert format_address("::1", 4317) == "[::1]:4317"
    assert format_address("127.0.0.1", 4317) == "127.0.0.1:4317"
    assert format_address("localhost", 0) == "localhost:0"


def test_reasons_for_a_user() -> None:
    assert rx._reason(socket.gaierror(-2, "Name or service not known")) == "cannot resolve host"
    assert rx._reason(OSError(98, "Address Already In Use")) == "address already in use"
    assert rx._reason(OSError("Something Odd")) == "something odd"


# -- decoding ---------------------------------------------------------------------------------------------


def test_hex_ids_become_base64_wherever_they_are_and_other_strings_stay() -> None:
    document: Any = {
        "a": [{"traceId": "0001", "spanId": "ff", "name": "0001"}, {"b": {"spanId": "zz"}}],
        "traceId": 5,
    }
    rx._hex_ids_to_base64(document)
    assert document == {
        "a": [{"traceId": "AAE=", "spanId": "/w==", "name": "0001"}, {"b": {"spanId": "zz"}}],
        "traceId": 5,
    }


def test_json_bodies_parse_with_hex_ids_and_unknown_fields_ignored() -> None:
    request = rx._parse(ExportLogsServiceRequest, json.dumps(LOGS_JSON).encode(), True)
    assert request == LOGS


def test_protobuf_bodies_parse() -> None:
    assert rx._parse(ExportMetricsServiceRequest, METRICS.SerializeToString(), False) == METRICS


@pytest.mark.parametrize(
    ("payload", "is_json"),
    [
        (b"\xff\xff\xff", False),
        (b"{not json", True),
        (b'{"resourceLogs": 5}', True),
        (b"[1, 2]", True),
    ],
)
def test_undecodable_bodies_are_400_naming_the_message(payload: bytes, is_json: bool) -> None:
    with pytest.raises(rx._BadRequest) as error:
        rx._parse(ExportLogsServiceRequest, payload, is_json)
    assert error.value.status == 400
    assert str(error.value).startswith("cannot decode ExportLogsServiceRequest: ")


def test_a_deeply_nested_json_body_is_400_not_a_crash() -> None:
    deep = '{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": ' + '{"arrayValue": {"values": [' * 200
    deep += "{}" + "]}}" * 200 + "}]}]}]}"
    with pytest.raises(rx._BadRequest) as error:
        rx._parse(ExportLogsServiceRequest, deep.encode(), True)
    assert error.value.status == 400


# -- HTTP -------------------------------------------------------------------------------------------------


def test_protobuf_metrics_and_logs_are_delivered_and_answered_in_protobuf(
    served: OtlpReceiver, sink: Recorder
) -> None:
    status, headers, body = post(served, "/v1/metrics", METRICS.SerializeToString())
    assert (status, headers["content-type"], body) == (200, "application/x-protobuf", b"")
    assert headers["content-length"] == "0" and "connection" not in headers
    assert ExportMetricsServiceResponse.FromString(body) == ExportMetricsServiceResponse()
    status, _, _ = post(
        served, "/v1/logs?x=1", LOGS.SerializeToString(), {"Content-Type": "application/x-protobuf"}
    )
    assert status == 200
    assert sink.metrics == [METRICS] and sink.logs == [LOGS] and sink.rejections == []


def test_json_is_answered_in_json(served: OtlpReceiver, sink: Recorder) -> None:
    headers = {"Content-Type": "Application/JSON; charset=utf-8"}
    status, answer, body = post(served, "/v1/logs", json.dumps(LOGS_JSON).encode(), headers)
    assert (status, answer["content-type"], json.loads(body)) == (200, "application/json", {})
    assert sink.logs == [LOGS]


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("zstd", zstd.compress), ("identity", bytes)],
)
def test_compressed_bodies_are_decoded(
    served: OtlpReceiver, sink: Recorder, encoding: str, compress: Any
) -> None:
    body = compress(METRICS.SerializeToString())
    assert post(served, "/v1/metrics", body, {"Content-Encoding": encoding})[0] == 200
    assert sink.metrics == [METRICS]


def test_a_chunked_body_is_read_and_the_connection_kept_for_the_next_request(
    served: OtlpReceiver, sink: Recorder
) -> None:
    payload = gzip.compress(METRICS.SerializeToString())
    half = len(payload) // 2
    chunks = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (
        half,
        payload[:half],
        len(payload) - half,
        payload[half:],
    )
    request = (
        b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Encoding: gzip\r\n\r\n" + chunks
    )
    answer = raw(served, request + request)
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert sink.metrics == [METRICS, METRICS]


@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "message"),
    [
        ("/v1/traces", {}, b"", 404, "unknown path '/v1/traces'; use /v1/metrics or /v1/logs"),
        ("/v1/metrics", {"Content-Type": "text/plain"}, b"", 415, "unsupported Content-Type 'text/plain'"),
        (
            "/v1/metrics",
            {"Content-Encoding": "br"},
            b"x",
            415,
            "unsupported Content-Encoding 'br'; use gzip, deflate or zstd",
        ),
        ("/v1/metrics", {"Content-Encoding": "gzip"}, b"not gzip", 400, "body is not valid gzip: "),
        ("/v1/metrics", {}, b"\xff\xff", 400, "cannot decode ExportMetricsServiceRequest: "),
        (
            "/v1/logs",
            {"Content-Type": "application/json"},
            b"{",
            400,
            "cannot decode ExportLogsServiceRequest: ",
        ),
        (
            "/v1/metrics",
            {"Content-Encoding": "gzip"},
            gzip.compress(bytes(5000)),
            413,
            "decompressed body exceeds 4096 bytes",
        ),
    ],
)
def test_refused_requests_are_answered_with_a_status_and_counted(
    served: OtlpReceiver,
    sink: Recorder,
    path: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
    message: str,
) -> None:
    code, answer, reply = post(served, path, body, headers)
    assert code == status
    is_json = headers.get("Content-Type") == "application/json"
    if is_json:
        assert answer["content-type"] == "application/json"
        document = json.loads(reply)
        assert document["code"] == code_pb2.INVALID_ARGUMENT and document["message"].startswith(message)
    else:
        assert answer["content-type"] == "application/x-protobuf"
        reply_code, reply_message = status_of(reply)
        assert reply_code == code_pb2.INVALID_ARGUMENT and reply_message.startswith(message)
    assert answer["content-length"] == str(len(reply))
    assert len(sink.rejections) == 1
    transport, reason = sink.rejections[0]
    assert transport == "http" and reason.startswith(message)
    assert sink.metrics == [] and sink.logs == []


def answer_of(wire: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = wire.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    ("head", "body", "status", "message"),
    [
        (b"Content-Length: ten\r\n", b"", 400, "Content-Length is not a number"),
        (b"Content-Length: 5000\r\n", b"", 413, "body of 5000 bytes exceeds 4096"),
        (b"Content-Length: -1\r\n", b"", 413, "body of -1 bytes exceeds 4096"),
        (b"Content-Length: 10\r\n", b"abc", 400, "body ended after 3 of 10 bytes"),
        (b"Transfer-Encoding: gzip\r\n", b"", 501, "unsupported Transfer-Encoding 'gzip'; use chunked"),
        (b"Transfer-Encoding: chunked\r\n", b"zz\r\n", 400, "malformed chunk size b'zz'"),
        (b"Transfer-Encoding: chunked\r\n", b"2000\r\n", 413, "chunked body exceeds 4096 bytes"),
    ],
)
def test_a_body_that_cannot_be_read_closes_the_connection(
    served: OtlpReceiver, sink: Recorder, head: bytes, body: bytes, status: int, message: str
) -> None:
    wire = b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n" + body
    code, headers, reply = answer_of(raw(served, wire))
    assert (code, headers["connection"]) == (status, "close")
    assert status_of(reply) == (code_pb2.INVALID_ARGUMENT, message)
    assert sink.rejections == [("http", message)]


def test_no_body_at_all_is_an_empty_request(served: OtlpReceiver, sink: Recorder) -> None:
    code, _, _ = answer_of(raw(served, b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert code == 200
    assert sink.metrics == [ExportMetricsServiceRequest()]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(served: OtlpReceiver, sink: Recorder, method: str) -> None:
    wire = f"{method} /v1/metrics HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    code, headers, reply = answer_of(raw(served, wire))
    assert (code, headers["connection"], headers["content-type"]) == (405, "close", "application/x-protobuf")
    assert status_of(reply) == (code_pb2.INVALID_ARGUMENT, "use POST")
    assert sink.rejections == [("http", "use POST")]
    assert headers["server"].startswith("otel-liveview")


def test_a_failing_sink_is_answered_500_and_the_receiver_keeps_serving(
    served: OtlpReceiver, sink: Recorder
) -> None:
    sink.fail = RuntimeError("boom")
    code, _, reply = post(served, "/v1/metrics", METRICS.SerializeToString())
    message = "cannot process request: RuntimeError: boom"
    assert (code, status_of(reply)) == (500, (code_pb2.INTERNAL, message))
    code, answer, reply = post(served, "/v1/logs", b"{}", {"Content-Type": "application/json"})
    assert (code, answer["content-type"], json.loads(reply)["code"]) == (
        500,
        "application/json",
        code_pb2.INTERNAL,
    )
    assert sink.rejections == [("http", message), ("http", message)]
    sink.fail = None
    assert post(served, "/v1/metrics", METRICS.SerializeToString())[0] == 200


def test_a_sink_that_fails_to_count_a_failure_still_gets_an_answer(
    served: OtlpReceiver, sink: Recorder
) -> None:
    sink.fail = ValueError("bad")

    def broken(transport: str, reason: str) -> None:
        raise RuntimeError("worse")

    sink.rejected = broken  # type: ignore[method-assign]
    assert post(served, "/v1/metrics", b"")[0] == 500


# -- gRPC -------------------------------------------------------------------------------------------------


def grpc_call(receiver: OtlpReceiver, service: str, payload: bytes, **options: Any) -> bytes:
    with grpc.insecure_channel(receiver.grpc_bound or "") as channel:
        call = channel.unary_unary(
            f"/opentelemetry.proto.collector.{service}/Export",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        return bytes(call(payload, timeout=10, **options))


def test_grpc_metrics_and_logs_are_delivered(served: OtlpReceiver, sink: Recorder) -> None:
    reply = grpc_call(served, "metrics.v1.MetricsService", METRICS.SerializeToString())
    assert ExportMetricsServiceResponse.FromString(reply) == ExportMetricsServiceResponse()
    reply = grpc_call(
        served, "logs.v1.LogsService", LOGS.SerializeToString(), compression=grpc.Compression.Gzip
    )
    assert ExportLogsServiceResponse.FromString(reply) == ExportLogsServiceResponse()
    assert sink.metrics == [METRICS] and sink.logs == [LOGS] and sink.rejections == []


def test_an_undecodable_grpc_message_is_invalid_argument(served: OtlpReceiver, sink: Recorder) -> None:
    with pytest.raises(grpc.RpcError) as error:
        grpc_call(served, "logs.v1.LogsService", b"\xff\xff")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("cannot decode ExportLogsServiceRequest: ")
    assert [(t, r == error.value.details()) for t, r in sink.rejections] == [("grpc", True)]
    assert sink.logs == []


def test_a_failing_sink_over_grpc_is_internal(served: OtlpReceiver, sink: Recorder) -> None:
    sink.fail = RuntimeError("boom")
    with pytest.raises(grpc.RpcError) as error:
        grpc_call(served, "metrics.v1.MetricsService", METRICS.SerializeToString())
    message = "cannot process request: RuntimeError: boom"
    assert (error.value.code(), error.value.details()) == (grpc.StatusCode.INTERNAL, message)
    assert sink.rejections == [("grpc", message)]


def test_a_grpc_message_over_the_limit_is_refused(served: OtlpReceiver, sink: Recorder) -> None:
    big = ExportMetricsServiceRequest(
        resource_metrics=[ResourceMetrics(scope_metrics=[ScopeMetrics(metrics=[Metric(name="m" * 5000)])])]
    )
    with pytest.raises(grpc.RpcError) as error:
        grpc_call(served, "metrics.v1.MetricsService", big.SerializeToString())
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert sink.metrics == []


# -- listening ------------------------------------------------------------------------------------------------


def test_the_bound_addresses_are_the_ports_picked_and_stop_frees_them(sink: Recorder) -> None:
    receiver = OtlpReceiver(sink, grpc_address="127.0.0.1:0", http_address=":0").start()
    try:
        grpc_host, grpc_port = parse_address(receiver.grpc_bound or "")
        http_host, http_port = parse_address(receiver.http_bound or "")
        assert (grpc_host, http_host) == ("127.0.0.1", "127.0.0.1")
        assert grpc_port > 0 and http_port > 0
        assert receiver._http_thread is not None and receiver._http_thread.name == "otlp-http"
        assert receiver._http_thread.daemon
    finally:
        receiver.stop()
    for port in (grpc_port, http_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    receiver.stop()  # twice: nothing left to stop


def test_either_server_can_be_left_out(sink: Recorder) -> None:
    with OtlpReceiver(sink, grpc_address=None, http_address="127.0.0.1:0") as receiver:
        assert receiver.grpc_bound is None and receiver._grpc is None
        assert post(receiver, "/v1/metrics", b"")[0] == 200
    with OtlpReceiver(sink, grpc_address="127.0.0.1:0", http_address=None) as receiver:
        assert receiver.http_bound is None and receiver._http is None
        grpc_call(receiver, "metrics.v1.MetricsService", b"")


def test_the_defaults_are_the_otlp_ports_on_loopback(sink: Recorder) -> None:
    receiver = OtlpReceiver(sink)
    assert (receiver.grpc_address, receiver.http_address) == ("127.0.0.1:4317", "127.0.0.1:4318")
    assert (receiver.grpc_workers, receiver.max_body_bytes) == (8, 64 * 1024 * 1024)
    assert rx._Handler.timeout == 30 and rx._Handler.protocol_version == "HTTP/1.1"


@pytest.mark.parametrize("server", ["grpc", "http"])
def test_a_taken_port_is_a_listen_error_and_nothing_is_left_listening(sink: Recorder, server: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = free_port()
        addresses = {"grpc": f"127.0.0.1:{port}", "http": f"127.0.0.1:{other}"}
        if server == "http":
            addresses = {"grpc": f"127.0.0.1:{other}", "http": f"127.0.0.1:{port}"}
        receiver = OtlpReceiver(sink, grpc_address=addresses["grpc"], http_address=addresses["http"])
        with pytest.raises(ListenError) as error:
            receiver.start()
    assert (error.value.server, error.value.address) == (server, f"127.0.0.1:{port}")
    assert error.value.reason == "address already in use"
    assert str(error.value) == f"cannot listen on 127.0.0.1:{port} (address already in use)"
    assert receiver._grpc is None and receiver._http is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", other), timeout=5).close()


def test_an_unresolvable_host_is_a_listen_error(sink: Recorder) -> None:
    receiver = OtlpReceiver(sink, grpc_address=None, http_address="no-such-host.invalid:0")
    with pytest.raises(ListenError) as error:
        receiver.start()
    assert (error.value.server, error.value.reason) == ("http", "cannot resolve host")


def test_ipv6_loopback_is_served_and_reported_bracketed(sink: Recorder) -> None:
    if not socket.has_ipv6:
        unavailable("this Python has no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        unavailable("no IPv6 loopback (::1) on this machine")
    with OtlpReceiver(sink, grpc_address="[::1]:0", http_address="[::1]:0") as receiver:
        assert (receiver.http_bound or "").startswith("[::1]:")
        assert (receiver.grpc_bound or "").startswith("[::1]:")
        assert post(receiver, "/v1/metrics", METRICS.SerializeToString())[0] == 200
        grpc_call(receiver, "metrics.v1.MetricsService", METRICS.SerializeToString())
    assert sink.metrics == [METRICS, METRICS]


def test_a_body_of_exactly_the_limit_is_taken(served: OtlpReceiver, sink: Recorder) -> None:
    request = ExportMetricsServiceRequest(
        resource_metrics=[ResourceMetrics(scope_metrics=[ScopeMetrics(metrics=[Metric(name="m")])])]
    )
    padding = 4096 - request.ByteSize()
    name = "m" * (1 + padding)
    while True:  # the name's length prefix grows with it
        request.resource_metrics[0].scope_metrics[0].metrics[0].name = name
        if request.ByteSize() <= 4096:
            break
        name = name[:-1]
    assert request.ByteSize() == 4096
    assert post(served, "/v1/metrics", request.SerializeToString())[0] == 200
    assert sink.metrics == [request]


def test_json_answers_are_one_line(served: OtlpReceiver) -> None:
    _, _, reply = post(served, "/v1/traces", b"{}", {"Content-Type": "application/json"})
    assert reply == b'{"code": 3, "message": "unknown path \'/v1/traces\'; use /v1/metrics or /v1/logs"}'


def test_a_sink_that_fails_to_count_a_grpc_failure_still_gets_internal(
    served: OtlpReceiver, sink: Recorder
) -> None:
    sink.fail = ValueError("bad")

    def broken(transport: str, reason: str) -> None:
        raise RuntimeError("worse")

    sink.rejected = broken  # type: ignore[method-assign]
    with pytest.raises(grpc.RpcError) as error:
        grpc_call(served, "metrics.v1.MetricsService", b"")
    assert (error.value.code(), error.value.details()) == (
        grpc.StatusCode.INTERNAL,
        "cannot process request: ValueError: bad",
    )


def test_grpc_requests_are_handled_on_the_receiver_s_named_threads(
    served: OtlpReceiver, sink: Recorder
) -> None:
    grpc_call(served, "metrics.v1.MetricsService", b"")
    (name,) = sink.threads
    assert name.startswith("otlp-grpc_"), name


def test_a_taken_grpc_port_is_refused_before_grpc_logs_about_it(
    sink: Recorder, capfd: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        capfd.readouterr()
        with pytest.raises(ListenError):
            OtlpReceiver(sink, grpc_address=f"127.0.0.1:{port}", http_address=None).start()
        assert capfd.readouterr().err == ""


def test_a_port_grpc_cannot_bind_is_a_listen_error_without_the_probe(
    sink: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rx, "_probe", lambda host, port: None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError) as error:
            OtlpReceiver(sink, grpc_address=f"127.0.0.1:{port}", http_address=None).start()
    assert (error.value.server, error.value.reason) == ("grpc", "address already in use")
