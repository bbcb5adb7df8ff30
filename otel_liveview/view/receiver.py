"""A small OTLP receiver: gRPC and HTTP (protobuf or JSON), metrics and logs, handing each decoded
`ExportMetricsServiceRequest` / `ExportLogsServiceRequest` to a sink.

It takes what the Collector's OTLP receiver takes from the SDKs' exporters: HTTP bodies with a
Content-Length or chunked, gzip, deflate or zstd compressed (zstd with Python 3.14's compression.zstd
or the backports.zstd package), and gRPC messages compressed with gzip or deflate. Every body is
bounded as it arrives and as it is decompressed, so neither an endless chunked body nor a zip bomb
is held in memory.

It is what `otel-liveview view` listens with, so it must keep serving whatever arrives: malformed,
oversized or unknown requests are answered with an OTLP-style error (HTTP 400 and a `google.rpc.Status`
body, gRPC INVALID_ARGUMENT) and counted by the sink, never raised. Traces are not accepted: nothing
in the view shows them.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import functools
import importlib
import io
import json
import re
import socket
import threading
import zlib
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

__all__ = ["ListenError", "OtlpReceiver", "Sink", "format_address", "parse_address"]

MetricsRequest = metrics_service_pb2.ExportMetricsServiceRequest
LogsRequest = logs_service_pb2.ExportLogsServiceRequest

MAX_BODY_BYTES = 64 * 1024 * 1024  # as sent and decompressed; a bigger request is refused, not held
_MAX_LINE = 4096  # bytes of a chunk-size line or a trailer field of a chunked body
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_METRICS_SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
_LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


class Sink(Protocol):
    """Where decoded requests go. Called from the servers' threads, concurrently."""

    def add_metrics(self, request: MetricsRequest) -> None: ...

    def add_logs(self, request: LogsRequest) -> None: ...

    def rejected(self, transport: str, reason: str) -> None: ...


class ListenError(Exception):
    """A listening address could not be bound; the message is fit for a user."""

    def __init__(self, server: str, address: str, reason: str) -> None:
        super().__init__(f"cannot listen on {address} ({reason})")
        self.server = server  # "grpc" or "http"
        self.address = address
        self.reason = reason


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """`HOST:PORT`, `[IPV6]:PORT`, `:PORT` or `PORT` -> (host, port); ValueError when it is none of them."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"{text!r} is not HOST:PORT") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"{text!r}: port out of range")
    return host or default_host, number


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reason(error: OSError) -> str:
    if isinstance(error, socket.gaierror):
        return "cannot resolve host"
    return (error.strerror or str(error)).lower()


def _resolve(host: str, port: int) -> tuple[int, tuple[Any, ...]]:
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return family, sockaddr


def _probe(host: str, port: int) -> None:
    """Bind and release the address as gRPC would (SO_REUSEADDR), so a taken port gives a clean
    error here instead of gRPC's own log lines on stderr."""
    family, sockaddr = _resolve(host, port)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(sockaddr)


def _status(code: int, message: str) -> status_pb2.Status:
    return status_pb2.Status(code=code, message=message)


# -- HTTP ---------------------------------------------------------------------------------------------

_PATHS: dict[str, tuple[type[Message], type[Message], str]] = {
    "/v1/metrics": (MetricsRequest, metrics_service_pb2.ExportMetricsServiceResponse, "add_metrics"),
    "/v1/logs": (LogsRequest, logs_service_pb2.ExportLogsServiceResponse, "add_logs"),
}


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _zstd_decompressor() -> Any:
    for module in ("compression.zstd", "backports.zstd"):  # Python 3.14's, or its backport
        with contextlib.suppress(ImportError):
            # The window a frame may ask for stays within the library's default limit (128 MiB).
            return importlib.import_module(module).ZstdDecompressor()
    raise _BadRequest(415, "Content-Encoding 'zstd' needs Python 3.14 or the backports.zstd package")


# What the Collector's confighttp decodes, less snappy and lz4 (no module for them in the standard
# library); "deflate" is the zlib format, as HTTP defines it and the Collector reads it.
_DECOMPRESSORS: dict[str, Callable[[], Any]] = {
    "gzip": functools.partial(zlib.decompressobj, wbits=31),
    "deflate": functools.partial(zlib.decompressobj, wbits=15),
    "zlib": functools.partial(zlib.decompressobj, wbits=15),
    "zstd": _zstd_decompressor,
}


def _decompress(payload: bytes, encoding: str, limit: int) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return payload
    new_decompressor = _DECOMPRESSORS.get(encoding)
    if new_decompressor is None:
        raise _BadRequest(415, f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or zstd")
    # Member after member (gzip) or frame after frame (zstd), never producing more than the limit
    # allows: a few KiB of gzip must not become gigabytes in memory.
    data = bytearray()
    while True:
        decompressor = new_decompressor()
        try:
            data += decompressor.decompress(payload, limit + 1 - len(data))
        except Exception as error:  # zlib.error, zstd.ZstdError: the body is not what it says
            raise _BadRequest(400, f"body is not valid {encoding}: {error}") from None
        if len(data) > limit:
            raise _BadRequest(413, f"decompressed body exceeds {limit} bytes")
        if not decompressor.eof:
            raise _BadRequest(400, f"truncated {encoding} body")
        payload = decompressor.unused_data
        if not payload:
            return bytes(data)


class _ChunkedBody:
    """A chunked request body (RFC 9112, section 7.1). Every byte read, framing included, counts
    against the limit, so an endless body is refused as soon as it passes it."""

    def __init__(self, stream: io.BufferedIOBase, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._received = 0

    def read(self) -> bytes:
        body = bytearray()
        while size := self._chunk_size():
            self._count(size + 2)
            chunk = self._stream.read(size)
            if len(chunk) < size or self._stream.read(2) != b"\r\n":
                raise _BadRequest(400, "malformed or truncated chunked body")
            body += chunk
        while self._line().strip():
            pass  # trailer fields: nothing in them matters here
        return bytes(body)

    def _chunk_size(self) -> int:
        size = self._line().split(b";", 1)[0].strip()  # chunk extensions ignored
        if not _CHUNK_SIZE.fullmatch(size):
            raise _BadRequest(400, f"malformed chunk size {size[:20]!r}")
        return int(size, 16)

    def _line(self) -> bytes:
        line = self._stream.readline(_MAX_LINE + 1)
        self._count(len(line))
        if not line.endswith(b"\n"):
            raise _BadRequest(400, "malformed or truncated chunked body")
        return line

    def _count(self, size: int) -> None:
        self._received += size
        if self._received > self._limit:
            raise _BadRequest(413, f"chunked body exceeds {self._limit} bytes")


def _hex_ids_to_base64(node: Any) -> None:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON reader expects base64."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId") and isinstance(value, str):
                with contextlib.suppress(ValueError):  # not hex: left for the parser to report
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode()
            else:
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)


def _parse(kind: type[Message], payload: bytes, is_json: bool) -> Message:
    request = kind()
    try:
        if is_json:
            document = json.loads(payload)
            _hex_ids_to_base64(document)
            json_format.ParseDict(document, request, ignore_unknown_fields=True)
        else:
            request.ParseFromString(payload)
    except (DecodeError, json_format.ParseError, ValueError, TypeError, RecursionError) as error:
        raise _BadRequest(400, f"cannot decode {kind.DESCRIPTOR.name}: {error}") from None
    return request


class _Handler(BaseHTTPRequestHandler):
    sink: Sink
    max_body: int
    protocol_version = "HTTP/1.1"
    server_version = "otel-liveview"
    timeout = 30  # seconds a connection may stall (or idle between requests) before it is closed

    def do_POST(self) -> None:
        is_json = self.headers.get("Content-Type", "").split(";")[0].strip().lower() == "application/json"
        try:
            payload = self._read_body()
            target = _PATHS.get(self.path.split("?")[0])
            if target is None:
                raise _BadRequest(404, f"unknown path {self.path!r}; use /v1/metrics or /v1/logs")
            content_type = self.headers.get("Content-Type", "application/x-protobuf").split(";")[0].strip()
            if content_type.lower() not in ("application/x-protobuf", "application/json"):
                raise _BadRequest(415, f"unsupported Content-Type {content_type!r}")
            kind, reply, method = target
            payload = _decompress(payload, self.headers.get("Content-Encoding", ""), self.max_body)
            request = _parse(kind, payload, is_json)
        except _BadRequest as error:
            self.sink.rejected("http", str(error))
            self._answer(error.status, _status(code_pb2.INVALID_ARGUMENT, str(error)), is_json)
            return
        try:
            getattr(self.sink, method)(request)
        except Exception as error:  # a bug in the sink: answer it, keep serving
            message = f"cannot process request: {type(error).__name__}: {error}"
            with contextlib.suppress(Exception):
                self.sink.rejected("http", message)
            self._answer(500, _status(code_pb2.INTERNAL, message), is_json)
            return
        self._answer(200, reply(), is_json)

    def _read_body(self) -> bytes:
        try:
            return self._body()
        except _BadRequest:
            self.close_connection = True  # the rest of the body stays unread: the connection is spent
            raise

    def _body(self) -> bytes:
        transfer = self.headers.get("Transfer-Encoding")
        if transfer is not None:  # it overrides any Content-Length (RFC 9112, section 6.3)
            if transfer.strip().lower() != "chunked":
                raise _BadRequest(501, f"unsupported Transfer-Encoding {transfer!r}; use chunked")
            return _ChunkedBody(self.rfile, self.max_body).read()
        try:
            length = int(self.headers.get("Content-Length", "0"))  # neither: no body
        except ValueError:
            raise _BadRequest(400, "Content-Length is not a number") from None
        if length < 0 or length > self.max_body:
            raise _BadRequest(413, f"body of {length} bytes exceeds {self.max_body}")
        payload = self.rfile.read(length)
        if len(payload) < length:
            raise _BadRequest(400, f"body ended after {len(payload)} of {length} bytes")
        return payload

    def do_GET(self) -> None:
        self._refuse(405, "use POST")

    do_PUT = do_DELETE = do_PATCH = do_GET

    def _refuse(self, status: int, message: str) -> None:
        self.sink.rejected("http", message)
        self.close_connection = True
        self._answer(status, _status(code_pb2.INVALID_ARGUMENT, message), False)

    def _answer(self, status: int, message: Message, is_json: bool) -> None:
        if is_json:
            body = json_format.MessageToJson(message, indent=None).encode()
            content_type = "application/json"
        else:
            body = message.SerializeToString()
            content_type = "application/x-protobuf"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a request log would scroll the view away


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up mid-request is its own business; keep serving the others


def _http_server(host: str, port: int, sink: Sink, max_body: int) -> _HTTPServer:
    family, sockaddr = _resolve(host, port)
    handler = type("Handler", (_Handler,), {"sink": sink, "max_body": max_body})
    server_class = type("Server", (_HTTPServer,), {"address_family": family})
    server: _HTTPServer = server_class(sockaddr[:2], handler)
    return server


# -- gRPC ---------------------------------------------------------------------------------------------


def _grpc_handler(
    kind: type[Message], reply: type[Message], deliver: Callable[[Any], None], sink: Sink
) -> grpc.RpcMethodHandler:
    # The request arrives as raw bytes (no deserializer): grpc's own decoding would answer a bad
    # message with INTERNAL, and OTLP asks for INVALID_ARGUMENT.
    def export(payload: bytes, context: grpc.ServicerContext) -> Message:
        request = kind()
        try:
            request.ParseFromString(payload)
        except (DecodeError, RecursionError) as error:
            message = f"cannot decode {kind.DESCRIPTOR.name}: {error}"
            sink.rejected("grpc", message)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
        try:
            deliver(request)
        except Exception as error:  # a bug in the sink: answer it, keep serving
            message = f"cannot process request: {type(error).__name__}: {error}"
            with contextlib.suppress(Exception):
                sink.rejected("grpc", message)
            context.abort(grpc.StatusCode.INTERNAL, message)
        return reply()

    return grpc.unary_unary_rpc_method_handler(export, response_serializer=lambda m: m.SerializeToString())


def _grpc_server(host: str, port: int, sink: Sink, workers: int, max_body: int) -> tuple[grpc.Server, int]:
    _probe(host, port)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-grpc"),
        handlers=[
            grpc.method_handlers_generic_handler(
                _METRICS_SERVICE,
                {
                    "Export": _grpc_handler(
                        MetricsRequest,
                        metrics_service_pb2.ExportMetricsServiceResponse,
                        sink.add_metrics,
                        sink,
                    )
                },
            ),
            grpc.method_handlers_generic_handler(
                _LOGS_SERVICE,
                {
                    "Export": _grpc_handler(
                        LogsRequest, logs_service_pb2.ExportLogsServiceResponse, sink.add_logs, sink
                    )
                },
            ),
        ],
        # Without so_reuseport 0, a second receiver could share the port with the first and silently
        # get half of the traffic. gRPC decompresses gzip and deflate messages itself and applies
        # the receive limit to the decompressed message (RESOURCE_EXHAUSTED, before any handler).
        options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", max_body)],
    )
    try:
        bound = server.add_insecure_port(format_address(host, port))
    except RuntimeError:
        bound = 0
    if not bound:
        server.stop(None)
        raise OSError(errno.EADDRINUSE, "address already in use")
    return server, bound


@dataclass
class OtlpReceiver:
    """Both servers; `start()` binds them (raising ListenError), `stop()` ends them."""

    sink: Sink
    grpc_address: str | None = "127.0.0.1:4317"  # None: no gRPC server
    http_address: str | None = "127.0.0.1:4318"  # None: no HTTP server
    grpc_workers: int = 8
    max_body_bytes: int = MAX_BODY_BYTES  # a request's size, as sent and decompressed

    def __post_init__(self) -> None:
        self._grpc: grpc.Server | None = None
        self._http: _HTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self.grpc_bound: str | None = None  # the address actually bound (port 0 picks one)
        self.http_bound: str | None = None

    def start(self) -> OtlpReceiver:
        try:
            if self.grpc_address is not None:
                host, port = parse_address(self.grpc_address)
                try:
                    self._grpc, bound = _grpc_server(
                        host, port, self.sink, self.grpc_workers, self.max_body_bytes
                    )
                except OSError as error:
                    raise ListenError("grpc", format_address(host, port), _reason(error)) from None
                self._grpc.start()
                self.grpc_bound = format_address(host, bound)
            if self.http_address is not None:
                host, port = parse_address(self.http_address)
                try:
                    self._http = _http_server(host, port, self.sink, self.max_body_bytes)
                except OSError as error:
                    raise ListenError("http", format_address(host, port), _reason(error)) from None
                self.http_bound = format_address(host, self._http.server_address[1])
                self._http_thread = threading.Thread(
                    target=self._http.serve_forever,
                    kwargs={"poll_interval": 0.2},
                    name="otlp-http",
                    daemon=True,
                )
                self._http_thread.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=0.5).wait(2)
            self._grpc = None
        if self._http is not None:
            if self._http_thread is not None:
                self._http.shutdown()
                self._http_thread = None
            self._http.server_close()
            self._http = None

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
