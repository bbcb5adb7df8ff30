"""OTLP/gRPC's one call, `Export`, over HTTP/2 in pure Python (h2): one connection, one call at a time.

Why not grpcio: its C core cannot be forked while a call is in flight. It says "Other threads are
currently calling into gRPC, skipping fork() handlers" and the child crashes in its own first call,
and experiments fork whenever they like (DataLoader workers, multiprocessing), often while a slow
collector holds an export. Here a forked child inherits a socket and nothing else: it closes its copy
without writing to it and dials a connection of its own.

The wire format is gRPC's over HTTP/2 (grpc/doc/PROTOCOL-HTTP2.md): a POST with `te: trailers` and a
`grpc-timeout`, the message behind a 5-byte prefix (compressed flag, length), the status in the
trailers (or in the headers of a trailers-only answer).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import math
import os
import re
import select
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

import certifi
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from otel_liveview._internal import bounded

# grpc/doc/statuscodes.md, by number.
STATUS_NAMES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
_BY_NUMBER = {str(number): name for number, name in enumerate(STATUS_NAMES)}  # grpc-status's text -> name
# The status a client reports for an HTTP answer without one (grpc/doc/http-grpc-status-mapping.md).
_HTTP_STATUS = {"400": "INTERNAL", "401": "UNAUTHENTICATED", "403": "PERMISSION_DENIED", "404": "UNIMPLEMENTED",
                "429": "UNAVAILABLE", "502": "UNAVAILABLE", "503": "UNAVAILABLE", "504": "UNAVAILABLE"}  # fmt: skip
_READ_SIZE = 65_536
_LONGEST = 86_400.0 * 365  # seconds: a longer timeout (inf) would overflow the lock's and socket's
# A stream reset before any status, as gRPC reads its HTTP/2 error code (PROTOCOL-HTTP2.md, "Errors").
_RESET_STATUS = {7: "UNAVAILABLE", 8: "CANCELLED", 11: "RESOURCE_EXHAUSTED", 12: "PERMISSION_DENIED"}
# A field name (RFC 9110 5.1) in lower case, as HTTP/2 wants; a value without NUL, CR or LF.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
_BAD_VALUE = re.compile(r"[\x00\r\n]")
_CONNECTION_SPECIFIC = frozenset(
    ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade")
)
# The request's headers are checked once (`_checked`), not on every call, and of the answer's only
# the status is read (`_Answer`): h2's checks of every header were a fifth of a call's work.
_CONFIGURATION = h2.config.H2Configuration(
    client_side=True,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
)


@dataclass(frozen=True)
class Status:
    """How a call ended: a gRPC status code's name and its message (empty if none)."""

    code: str
    message: str = ""


class CallFailed(Exception):
    """The call ended without a status from the server (no connection, the deadline, TLS)."""

    def __init__(self, status: Status) -> None:
        super().__init__(f"{status.code} {status.message}".strip())
        self.status = status


class GrpcClient:
    """Makes unary calls to one method of one server, over one HTTP/2 connection (plaintext or TLS)
    that is dialled on first use and again after any failure, through the proxy the environment
    names (`grpc_proxy`, `https_proxy`, `http_proxy`; `no_grpc_proxy`, `no_proxy`), as grpcio does.

    Thread-safe: calls take turns on the connection, each waiting no longer than its own deadline.
    """

    def __init__(
        self,
        target: str,
        method: str,
        *,
        tls: ssl.SSLContext | None = None,
        metadata: Mapping[str, str] | None = None,
        compress: bool = False,
    ) -> None:
        """`target`: host:port, or a URL whose scheme is ignored (`tls` decides); `metadata`: sent
        with every call; `compress`: gzip the messages."""
        parts = urlsplit(target if "://" in target else f"//{target}")
        if parts.hostname is None:
            raise ValueError(f"no host in {target!r}")
        self._host = parts.hostname
        self._port = parts.port or (80 if tls is None else 443)
        self._tls = tls
        self._proxy = _proxy_for(self._host)
        self._request_headers = _checked([
            (":method", "POST"),
            (":scheme", "http" if tls is None else "https"),
            (":path", method),
            (":authority", parts.netloc.rpartition("@")[2]),
            ("te", "trailers"),
            ("content-type", "application/grpc"),
            ("user-agent", "otel-liveview"),
            *((("grpc-encoding", "gzip"),) if compress else ()),
            *((key.lower(), value) for key, value in (metadata or {}).items()),
        ])  # fmt: skip
        self._compress = compress
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._socket: socket.socket | None = None
        self._h2: h2.connection.H2Connection | None = None
        self._goaway = False  # the server said it takes no more calls on this connection
        self._spoken = False  # the server's first bytes on this connection were HTTP/2's
        self._unread = b""  # bytes read from the socket and not yet a whole frame

    def call(self, message: bytes, timeout: float) -> Status:
        """Send `message`; the status the server gave, or `CallFailed` if it gave none in `timeout` s."""
        deadline = time.monotonic() + min(timeout, _LONGEST)
        self._forget_parent()
        if not bounded.acquire(self._lock, deadline):
            raise CallFailed(Status("DEADLINE_EXCEEDED", "another call held the connection"))
        try:
            status = self._call(message, deadline)
            if self._goaway:
                self._drop()
            return status
        except CallFailed:
            self._drop()
            raise
        except TimeoutError:
            self._drop()
            raise CallFailed(Status("DEADLINE_EXCEEDED", "timed out")) from None
        except ssl.SSLError as error:  # before OSError: its subclass
            self._drop()
            raise CallFailed(Status("UNAVAILABLE", f"TLS error: {error.reason or error}")) from None
        except (OSError, h2.exceptions.ProtocolError) as error:
            self._drop()
            raise CallFailed(Status("UNAVAILABLE", str(error) or type(error).__name__)) from None
        except Exception as error:  # a fault of this client's own: the call fails, never the export thread
            self._drop()
            raise CallFailed(Status("INTERNAL", f"{type(error).__name__}: {error}")) from None
        except BaseException:  # KeyboardInterrupt mid-send: a frame may be half written
            self._drop()
            raise
        finally:
            self._lock.release()

    def close(self) -> None:
        """End the connection; a call still in flight ends at once (UNAVAILABLE), as grpcio's does."""
        self._forget_parent()
        if not bounded.acquire(self._lock, time.monotonic() + 0.1):
            with contextlib.suppress(OSError, AttributeError):  # the call may drop it meanwhile
                self._socket.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
            return
        try:
            if self._h2 is not None and self._socket is not None:
                with contextlib.suppress(OSError, h2.exceptions.ProtocolError):
                    self._h2.close_connection()  # a polite end (GOAWAY); a dead peer is not waited for
                    self._socket.settimeout(0.1)
                    self._socket.sendall(self._h2.data_to_send())
            self._drop()
        finally:
            self._lock.release()

    # -- one call --------------------------------------------------------------------------------------

    def _call(self, message: bytes, deadline: float) -> Status:
        if self._h2 is not None and self._peer_left(deadline):
            self._drop()  # a collector restarted, or an idle connection closed: dial again, lose nothing
        if self._h2 is None:
            self._connect(deadline)
        connection = self._h2
        assert connection is not None
        stream = connection.get_next_available_stream_id()
        if self._compress:
            message = gzip.compress(message, compresslevel=6)
        headers = [
            *self._request_headers,
            (b"grpc-timeout", _grpc_timeout(deadline - time.monotonic()).encode()),
        ]
        connection.send_headers(stream, headers)
        body = memoryview(
            b"".join((b"\x01" if self._compress else b"\x00", len(message).to_bytes(4, "big"), message))
        )
        answer = _Answer()
        while body:
            room = min(connection.local_flow_control_window(stream), connection.max_outbound_frame_size)
            if room <= 0:  # the server has not made room yet: send what is ready, read its WINDOW_UPDATE
                self._send(deadline)
                answer.take(self._read(stream, deadline))
                if answer.ended:  # it answered (a refusal) before taking the whole message
                    if answer.reset is None:
                        connection.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
                        self._send(deadline)
                    return answer.status()
                if self._goaway:
                    raise CallFailed(Status("UNAVAILABLE", "the server ended the connection (GOAWAY)"))
                continue
            connection.send_data(stream, body[:room], end_stream=len(body) <= room)
            body = body[room:]
        self._send(deadline)
        while not answer.ended:
            if self._goaway:
                raise CallFailed(Status("UNAVAILABLE", "the server ended the connection (GOAWAY)"))
            answer.take(self._read(stream, deadline))
        return answer.status()

    def _read(self, stream: int, deadline: float) -> list[h2.events.Event]:
        """The events of one read from the socket that concern `stream` (acknowledging its data)."""
        assert self._socket is not None
        self._socket.settimeout(_remaining(deadline))
        data = self._socket.recv(_READ_SIZE)
        if not data:
            raise CallFailed(Status("UNAVAILABLE", "the server closed the connection"))
        events = [event for event in self._take(data) if getattr(event, "stream_id", None) == stream]
        if not self._goaway:
            self._send(deadline)  # acknowledgements of settings, pings and data
        return events

    def _take(self, data: bytes) -> list[h2.events.Event]:
        """`data` given to h2 a whole frame at a time, up to a GOAWAY: h2 refuses any frame after one,
        and would lose with it the answer that came before (grpc-go closes with GOAWAY, then PING)."""
        assert self._h2 is not None
        self._unread += data
        if not self._spoken and len(self._unread) >= 4:
            _check_preface(self._unread)
            self._spoken = True
        events: list[h2.events.Event] = []
        while not self._goaway and len(self._unread) >= 9:
            end = 9 + int.from_bytes(self._unread[:3], "big")
            if len(self._unread) < end:
                break
            frame, self._unread = self._unread[:end], self._unread[end:]
            for event in self._h2.receive_data(frame):
                if isinstance(event, h2.events.ConnectionTerminated):
                    self._goaway = True  # what came before it still counts
                elif isinstance(event, h2.events.DataReceived):
                    self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                events.append(event)
        return events

    def _peer_left(self, deadline: float) -> bool:
        """Whether the server closed the connection or sent GOAWAY since the last call (a look at
        what is waiting on the socket, without blocking)."""
        assert self._socket is not None and self._h2 is not None
        try:
            while _readable(self._socket):
                self._socket.settimeout(_remaining(deadline))
                data = self._socket.recv(_READ_SIZE)
                if not data:
                    return True
                self._take(data)
                if self._goaway:
                    return True
                self._socket.sendall(self._h2.data_to_send())
        except (OSError, h2.exceptions.ProtocolError, CallFailed):
            return True
        return False

    def _send(self, deadline: float) -> None:
        assert self._socket is not None and self._h2 is not None
        data = self._h2.data_to_send()
        if data:
            self._socket.settimeout(_remaining(deadline))
            self._socket.sendall(data)

    # -- the connection -----------------------------------------------------------------------------------

    def _connect(self, deadline: float) -> None:
        host, port = self._host, self._port
        if self._proxy is not None:
            host, port = self._proxy.hostname or "", self._proxy.port or 80
        sock = _dial(host, port, deadline)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._proxy is not None:
                target = f"[{self._host}]:{self._port}" if ":" in self._host else f"{self._host}:{self._port}"
                self._unread = _tunnel(sock, self._proxy, target, deadline)  # the server may speak first
            if self._tls is not None:
                sock.settimeout(_remaining(deadline))
                sock = self._tls.wrap_socket(sock, server_hostname=self._host)
            if self._tls is not None and sock.selected_alpn_protocol() not in (None, "h2"):  # type: ignore[attr-defined]
                raise CallFailed(
                    Status("UNAVAILABLE", "TLS error: the server chose another protocol than h2")
                )
            connection = h2.connection.H2Connection(_CONFIGURATION)
            connection.initiate_connection()
            self._socket, self._h2 = sock, connection
        except BaseException:
            sock.close()
            raise

    def _drop(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._socket = self._h2 = None
        self._goaway = self._spoken = False
        self._unread = b""

    def _forget_parent(self) -> None:
        """In a forked child: close the inherited socket, never writing to it (the parent's connection
        lives on), and take a lock of its own (a parent's thread may have held it at the fork)."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._lock = threading.Lock()
            self._drop()


class _Answer:
    """What the server has said so far about one call."""

    def __init__(self) -> None:
        self.http_status = ""
        self.fields: dict[str, str] = {}
        self.ended = False
        self.reset: int | None = None

    def take(self, events: list[h2.events.Event]) -> None:
        for event in events:
            if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                for name, value in event.headers:
                    key, text = _text(name), _text(value)
                    if key == ":status":
                        self.http_status = text
                    else:
                        self.fields[key] = text
            elif isinstance(event, h2.events.StreamEnded):
                self.ended = True
            elif isinstance(event, h2.events.StreamReset):
                self.ended, self.reset = True, int(event.error_code)

    def status(self) -> Status:
        if self.reset is not None and "grpc-status" not in self.fields:
            code = _RESET_STATUS.get(self.reset, "INTERNAL")
            return Status(code, f"stream reset by the server (HTTP/2 error {self.reset})")
        raw = self.fields.get("grpc-status")
        if raw is None:
            code = _HTTP_STATUS.get(self.http_status, "UNKNOWN")
            return Status(code, f"HTTP {self.http_status or '?'} without a gRPC status")
        return Status(_BY_NUMBER.get(raw, "UNKNOWN"), unquote(self.fields.get("grpc-message", "")))


def _checked(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """The request's headers as bytes, checked once against what HTTP/2 allows (RFC 9113 8.2), so that
    a header no server may receive turns the exporter off at its start rather than failing each call."""
    for name, value in headers:
        if name.startswith(":"):
            continue  # the pseudo-headers, which this module writes
        if (
            not _TOKEN.fullmatch(name)
            or name in _CONNECTION_SPECIFIC
            or (name == "te" and value != "trailers")
        ):
            raise ValueError(f"a request header HTTP/2 does not allow: {name!r}")
        if _BAD_VALUE.search(value) or value != value.strip(" \t"):
            raise ValueError(f"a request header HTTP/2 does not allow: the value of {name!r}")
    return [(name.encode(), value.encode()) for name, value in headers]


def _check_preface(data: bytes) -> None:
    """An HTTP/2 server speaks first with a SETTINGS frame (type 4, the frame header's fourth byte);
    anything else is another protocol on the port, said as such rather than as a framing error."""
    if len(data) >= 4 and data[3] == 4:
        return
    if data[:16].isascii():
        raise CallFailed(Status("UNAVAILABLE", "an HTTP/1 server answered, not HTTP/2"))
    raise CallFailed(Status("UNAVAILABLE", f"not an HTTP/2 server (it began with {data[:8]!r})"))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _dial(host: str, port: int, deadline: float) -> socket.socket:
    """A TCP connection to `host`, trying its addresses in turn within one deadline (create_connection
    would give each address the whole timeout)."""
    error: OSError = OSError(f"{host} has no address")
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect(address)
            return sock
        except OSError as failure:
            sock.close()
            error = failure
            if isinstance(failure, TimeoutError):
                break
    raise error


def _readable(sock: socket.socket) -> bool:
    """Whether a read would not block. poll, not select: select refuses a descriptor above 1023,
    and a process with many files open (data loaders, checkpoints) has those."""
    if not hasattr(select, "poll"):  # Windows, where select has no such limit
        return bool(select.select([sock], [], [], 0)[0])
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _grpc_timeout(seconds: float) -> str:
    """The `grpc-timeout` header: at most 8 digits and a unit."""
    millis = max(1, math.ceil(seconds * 1000))
    return f"{millis}m" if millis < 100_000_000 else f"{min(math.ceil(seconds), 99_999_999)}S"


def tls_context(
    certificate: str | None = None, client_certificate: str | None = None, client_key: str | None = None
) -> ssl.SSLContext:
    """The server verified against `certificate` (OTEL_EXPORTER_OTLP_CERTIFICATE), else
    GRPC_DEFAULT_SSL_ROOTS_FILE_PATH (what grpcio reads), else certifi's bundle; the client's own
    certificate if one is given."""
    roots = certificate or os.environ.get("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH") or certifi.where()
    for path in (roots, client_certificate, client_key):
        if path:
            open(path, "rb").close()  # ssl's own error would not name the file
    context = ssl.create_default_context(cafile=roots)
    if client_certificate:
        context.load_cert_chain(client_certificate, client_key)
    context.set_alpn_protocols(["h2"])
    return context


def _proxy_for(host: str) -> SplitResult | None:
    """The HTTP proxy grpcio would take to `host`: `grpc_proxy`, else `https_proxy`, else `http_proxy`,
    unless `no_grpc_proxy` or `no_proxy` names the host (grpc reads these names in lower case)."""
    no_grpc_proxy = [name.strip().lstrip(".") for name in os.environ.get("no_grpc_proxy", "").split(",")]  # noqa: SIM112
    if any(name == "*" or host == name or host.endswith(f".{name}") for name in no_grpc_proxy if name):
        return None
    if urllib.request.proxy_bypass(host):
        return None
    proxies = urllib.request.getproxies()
    proxy = os.environ.get("grpc_proxy") or proxies.get("https") or proxies.get("http")  # noqa: SIM112
    return urlsplit(proxy if "://" in proxy else f"http://{proxy}") if proxy else None


def _tunnel(sock: socket.socket, proxy: SplitResult, target: str, deadline: float) -> bytes:
    """HTTP CONNECT through `proxy` to `target`, with the proxy URL's credentials as Basic auth; what
    came after the proxy's answer (the server's first bytes)."""
    request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if proxy.username:
        credentials = unquote(f"{proxy.username}:{proxy.password or ''}").encode()
        request += f"Proxy-Authorization: Basic {base64.b64encode(credentials).decode()}\r\n"
    sock.settimeout(_remaining(deadline))
    sock.sendall(f"{request}\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(4096)
        if not chunk or len(answer) > 65_536:
            raise CallFailed(Status("UNAVAILABLE", f"the proxy {proxy.hostname} closed the connection"))
        answer += chunk
    status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
    if status_line.split()[1:2] != ["200"]:
        raise CallFailed(Status("UNAVAILABLE", f"the proxy {proxy.hostname} answered {status_line!r}"))
    return answer.partition(b"\r\n\r\n")[2]
