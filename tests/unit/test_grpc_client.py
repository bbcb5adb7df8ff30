"""OTLP/gRPC in pure Python (otel_liveview/_internal/grpc_client.py) against grpcio's server: TLS and
client certificates, proxies, flow control, statuses, a server that goes away, and fork."""

from __future__ import annotations

import contextlib
import gzip
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import h2.settings
import hyperframe.frame
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, ResourceMetrics, ScopeMetrics

from otel_liveview._internal import grpc_client
from otel_liveview._internal.grpc_client import CallFailed, GrpcClient, Status
from tests.support.receiver import Receiver, silent_listener, start_grpc, wait_until

METHOD = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


def request(metrics: int = 1, name: str = "m") -> bytes:
    return ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(scope_metrics=[ScopeMetrics(metrics=[Metric(name=name) for _ in range(metrics)])])
        ]
    ).SerializeToString()


def client(url: str, *, secure: bool = False, **tls: str) -> GrpcClient:
    """A client of the metrics service at `url`; with `secure`, over TLS with `tls`'s files."""
    return GrpcClient(url, METHOD, tls=grpc_client.tls_context(**tls) if secure else None)


def call(target: GrpcClient, payload: bytes, timeout: float = 5.0) -> Status:
    """The status of one call, whether the server gave it or the client did (CallFailed)."""
    try:
        return target.call(payload, timeout)
    except CallFailed as failure:
        return failure.status


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.lower().endswith("_proxy"):
            monkeypatch.delenv(var)


# -- calls -------------------------------------------------------------------------------------------------


def test_calls_arrive_with_or_without_gzip_and_their_metadata(grpc_receiver: Receiver) -> None:
    plain = GrpcClient(grpc_receiver.endpoint, METHOD, metadata={"X-Key": "v"})
    assert call(plain, request(name="a")) == Status("OK")
    assert call(plain, request(name="b")) == Status("OK")  # the same connection, the next stream
    gzipped = GrpcClient(grpc_receiver.endpoint.removeprefix("http://"), METHOD, compress=True)
    assert call(gzipped, request(name="c")) == Status("OK")
    names = [
        m.name
        for r in grpc_receiver.metrics
        for rm in r.resource_metrics
        for s in rm.scope_metrics
        for m in s.metrics
    ]
    assert names == ["a", "b", "c"]


@pytest.mark.parametrize("headers", [{"bad key": "v"}, {"x-key": "line\nbreak"}, {"connection": "close"}])
def test_a_header_http2_does_not_allow_is_refused_at_construction(headers: dict[str, str]) -> None:
    # otlp turns the ValueError into an exporter that is off, with one warning line.
    with pytest.raises(ValueError, match="a request header HTTP/2 does not allow"):
        GrpcClient("http://127.0.0.1:4317", METHOD, metadata=headers)


def test_a_message_larger_than_the_flow_control_windows_arrives_whole(grpc_receiver: Receiver) -> None:
    big = request(metrics=80_000, name="x" * 10)  # over 1 MB: many times HTTP/2's initial 64 KiB windows
    assert len(big) > 16 * 65_535
    assert call(client(grpc_receiver.endpoint), big, timeout=20) == Status("OK")
    (received,) = grpc_receiver.metrics
    assert received.SerializeToString() == big


def test_the_servers_status_and_message(grpc_receiver: Receiver) -> None:
    grpc_receiver.status = 503
    assert call(client(grpc_receiver.endpoint), request()) == Status("UNAVAILABLE", "receiver told to fail")


def test_nothing_listening_is_unavailable_at_once() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    status = call(client(f"http://127.0.0.1:{port}"), request(), timeout=5)
    assert status.code == "UNAVAILABLE" and "refused" in status.message.lower()
    assert time.monotonic() - started < 4  # refused, not waited out


def test_a_server_that_never_answers_costs_the_timeout_and_no_more() -> None:
    with silent_listener() as hole:
        target = client(hole.url)
        started = time.monotonic()
        assert call(target, request(), timeout=0.5) == Status("DEADLINE_EXCEEDED", "timed out")
        assert 0.4 < time.monotonic() - started < 3.0
        assert target._socket is None  # the connection is dropped: the next call dials again


def test_a_server_that_does_not_speak_http2_is_unavailable(tmp_path: Path) -> None:
    from tests.support.receiver import serving_http

    with serving_http() as http1:
        status = call(client(http1.endpoint), request(), timeout=5)
    assert status.code == "UNAVAILABLE"


def test_a_server_restarted_between_calls_costs_no_failed_call() -> None:
    receiver = Receiver()
    server = start_grpc(receiver)
    port = int(receiver.endpoint.rsplit(":", 1)[1])
    target = client(receiver.endpoint)
    assert call(target, request(name="before")) == Status("OK")
    server.stop(None).wait()
    server = start_grpc(receiver, port=port)
    try:
        # The closed connection is seen before the call, which dials again instead of failing.
        assert call(target, request(name="after")) == Status("OK")
    finally:
        server.stop(None)
    assert len(receiver.metrics) == 2


def test_a_connection_on_a_descriptor_above_1023(grpc_receiver: Receiver) -> None:
    """select() refuses such a descriptor; a process with many files open has them."""
    held = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        target = client(grpc_receiver.endpoint)
        assert call(target, request()) == Status("OK")
        assert target._socket is not None and target._socket.fileno() > 1023
        assert call(target, request()) == Status("OK")  # the look between calls, on that descriptor
    finally:
        for descriptor in held:
            os.close(descriptor)
    assert len(grpc_receiver.metrics) == 2


def test_an_unexpected_error_fails_the_call_not_its_caller(
    grpc_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = client(grpc_receiver.endpoint)
    assert call(target, request()) == Status("OK")

    def broken(self: GrpcClient, message: bytes, deadline: float) -> Status:
        raise KeyError("a bug")

    monkeypatch.setattr(GrpcClient, "_call", broken)
    assert call(target, request()) == Status("INTERNAL", "KeyError: 'a bug'")  # not retried: INTERNAL
    assert target._socket is None  # and the connection is dropped
    monkeypatch.undo()
    assert call(target, request()) == Status("OK")


def test_close_ends_a_call_in_flight_at_once() -> None:
    with silent_listener() as hole:
        target = client(hole.url)
        statuses: list[Status] = []
        thread = threading.Thread(target=lambda: statuses.append(call(target, request(), timeout=30)))
        thread.start()
        wait_until(lambda: target._lock.locked() and hole.connections, timeout=10)
        started = time.monotonic()
        target.close()
        thread.join(10)
        assert time.monotonic() - started < 5  # not the call's 30 s
        assert [status.code for status in statuses] == ["UNAVAILABLE"]


# -- on the wire, against a scripted HTTP/2 server ------------------------------------------------------


def answer_ok(connection: h2.connection.H2Connection, stream: int) -> bool:
    connection.send_headers(stream, [(":status", "200"), ("content-type", "application/grpc")])
    connection.send_data(stream, b"\x00\x00\x00\x00\x00")
    connection.send_headers(stream, [("grpc-status", "0")], end_stream=True)
    return True


def answer_ok_then_goaway_and_ping(connection: h2.connection.H2Connection, stream: int) -> bytes:
    """grpc-go's graceful close: the answer, a GOAWAY, then a PING, in one write (h2 itself would
    send nothing after its GOAWAY, so the two frames are made by hand)."""
    answer_ok(connection, stream)
    goaway = hyperframe.frame.GoAwayFrame(0, last_stream_id=2**31 - 1, error_code=0)
    return goaway.serialize() + hyperframe.frame.PingFrame(0, opaque_data=b"12345678").serialize()


def refuse_while_receiving(connection: h2.connection.H2Connection, stream: int) -> bool:
    connection.send_headers(stream, [(":status", "200"), ("content-type", "application/grpc"),
                                     ("grpc-status", "8"), ("grpc-message", "too big")], end_stream=True)  # fmt: skip
    return True


def answer_goaway(connection: h2.connection.H2Connection, stream: int) -> bool:
    connection.close_connection()
    return False  # and hang up


class ScriptedServer:
    """HTTP/2 on a raw socket (h2's server side): keeps each request's headers and body, and answers
    each as `answer` says (True: keep the connection; bytes: send them too, then hang up). With `window`, the client may send that much
    and the server never makes more room; `on_data` then answers a DATA frame that does not end its
    message, instead of the message."""

    def __init__(
        self,
        answer: Callable[[h2.connection.H2Connection, int], bool | bytes] = answer_ok,
        window: int | None = None,
        on_data: Callable[[h2.connection.H2Connection, int], bool] | None = None,
    ) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.connections = 0
        self._answer, self._window, self._on_data = answer, window, on_data
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                sock, _ = self._listener.accept()
                self.connections += 1
                threading.Thread(target=self._converse, args=(sock,), daemon=True).start()

    def _converse(self, sock: socket.socket) -> None:
        with sock, contextlib.suppress(OSError):
            self._answer_all(sock)
            # Hang up gracefully: a FIN, then read to the client's end (closing with bytes unread
            # would reset the connection instead).
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65_536):
                pass

    def _answer_all(self, sock: socket.socket) -> None:
        connection = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        connection.initiate_connection()
        if self._window is not None:
            connection.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self._window})
        sock.sendall(connection.data_to_send())
        headers: dict[int, dict[str, str]] = {}
        bodies: dict[int, bytes] = {}
        while data := sock.recv(65_536):
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    headers[event.stream_id] = dict(event.headers)  # type: ignore[arg-type]
                    bodies[event.stream_id] = b""
                elif isinstance(event, h2.events.DataReceived):
                    bodies[event.stream_id] += event.data
                    partial = event.stream_ended is None  # more of the message is to come
                    if (
                        partial
                        and self._on_data is not None
                        and not self._on_data(connection, event.stream_id)
                    ):
                        sock.sendall(connection.data_to_send())
                        return
                    if self._window is None:
                        connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    self.requests.append((headers[event.stream_id], bodies[event.stream_id]))
                    keep = self._answer(connection, event.stream_id)
                    sock.sendall(connection.data_to_send() + (keep if isinstance(keep, bytes) else b""))
                    if keep is not True:
                        return
            sock.sendall(connection.data_to_send())

    def close(self) -> None:
        self._listener.close()


def test_the_request_on_the_wire() -> None:
    server = ScriptedServer()
    try:
        plain = GrpcClient(server.url, METHOD, metadata={"X-Key": "v"})
        assert call(plain, b"message", timeout=3) == Status("OK")
        assert call(GrpcClient(server.url, METHOD, compress=True), b"message") == Status("OK")
    finally:
        server.close()
    (headers, body), (gzipped_headers, gzipped_body) = server.requests
    timeout = headers.pop("grpc-timeout")
    assert timeout.endswith("m") and 2000 < int(timeout[:-1]) <= 3000  # the call's own timeout
    assert headers == {
        ":method": "POST",
        ":scheme": "http",
        ":path": METHOD,
        ":authority": server.url.removeprefix("http://"),
        "te": "trailers",
        "content-type": "application/grpc",
        "user-agent": "otel-liveview",
        "x-key": "v",
    }
    assert body == b"\x00" + (7).to_bytes(4, "big") + b"message"  # uncompressed, its length, the message
    assert gzipped_headers["grpc-encoding"] == "gzip" and "grpc-encoding" not in headers
    assert gzipped_body[:1] == b"\x01" and int.from_bytes(gzipped_body[1:5], "big") == len(gzipped_body) - 5
    assert gzip.decompress(gzipped_body[5:]) == b"message"


def test_over_tls_the_scheme_is_https_and_the_port_443_unless_given() -> None:
    secure = GrpcClient("collector.example", METHOD, tls=grpc_client.tls_context())
    plain = GrpcClient("collector.example", METHOD)
    assert (secure._port, plain._port) == (443, 80)
    assert (b":scheme", b"https") in secure._request_headers
    assert (b":scheme", b"http") in plain._request_headers
    with pytest.raises(ValueError, match="no host in 'http://:4317'"):
        GrpcClient("http://:4317", METHOD)


def test_a_goaway_instead_of_an_answer_is_unavailable_and_the_next_call_dials_again() -> None:
    server = ScriptedServer(answer=answer_goaway)
    try:
        target = GrpcClient(server.url, METHOD)
        failed = Status("UNAVAILABLE", "the server ended the connection (GOAWAY)")
        assert call(target, request()) == failed
        assert call(target, request()) == failed
    finally:
        server.close()
    assert server.connections == 2 and len(server.requests) == 2


def test_a_goaway_while_the_client_waits_for_room_to_send() -> None:
    server = ScriptedServer(window=1_000, on_data=answer_goaway)  # room for 1,000 bytes, then GOAWAY
    try:
        target = GrpcClient(server.url, METHOD)
        assert call(target, b"small") == Status("OK")  # now the client knows the window
        status = call(target, b"x" * 5_000, timeout=5)
    finally:
        server.close()
    assert status == Status("UNAVAILABLE", "the server ended the connection (GOAWAY)")


def test_an_answer_followed_by_goaway_and_ping_in_one_segment_is_the_answer() -> None:
    server = ScriptedServer(answer=answer_ok_then_goaway_and_ping)
    try:
        target = GrpcClient(server.url, METHOD)
        assert call(target, request()) == Status("OK")  # not UNAVAILABLE (and so not sent twice)
        assert target._socket is None  # the server said it takes no more: the next call dials again
        assert call(target, request()) == Status("OK")
    finally:
        server.close()
    assert server.connections == 2 and len(server.requests) == 2


def test_a_refusal_before_the_whole_message_is_taken_ends_the_call_at_once() -> None:
    server = ScriptedServer(window=1_000, on_data=refuse_while_receiving)  # room for 1,000 bytes, then no
    try:
        target = GrpcClient(server.url, METHOD)
        assert call(target, b"small") == Status("OK")  # now the client knows the window
        started = time.monotonic()
        assert call(target, b"x" * 5_000, timeout=10) == Status("RESOURCE_EXHAUSTED", "too big")
        assert time.monotonic() - started < 5  # the answer, not the deadline
        assert call(target, b"small", timeout=5) == Status("OK")  # the connection carries on
    finally:
        server.close()
    assert server.connections == 1


def test_the_servers_first_bytes_behind_a_proxy_are_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    server = ScriptedServer(window=1_000)  # a SETTINGS frame the client must apply
    proxy = ConnectProxy(forward_first_bytes=True)  # its answer and the server's SETTINGS in one segment
    monkeypatch.setenv("grpc_proxy", proxy.url)
    try:
        target = GrpcClient(server.url, METHOD)
        assert call(target, b"small") == Status("OK")
        assert target._h2 is not None and target._h2.remote_settings.initial_window_size == 1_000
    finally:
        proxy.close()
        server.close()
    assert len(proxy.heads) == 1


def test_a_server_that_hangs_up_without_an_answer() -> None:
    server = ScriptedServer(answer=lambda connection, stream: False)
    try:
        status = call(GrpcClient(server.url, METHOD), request())
    finally:
        server.close()
    assert status == Status("UNAVAILABLE", "the server closed the connection")


def test_a_failed_call_says_its_status() -> None:
    assert str(CallFailed(Status("UNAVAILABLE", "refused"))) == "UNAVAILABLE refused"
    assert str(CallFailed(Status("DEADLINE_EXCEEDED"))) == "DEADLINE_EXCEEDED"


# -- the answer and the deadline header ----------------------------------------------------------------


def event(kind: type[Any], **fields: Any) -> Any:
    return kind(stream_id=1, **fields)


@pytest.mark.parametrize(
    ("events", "status"),
    [
        # a trailers-only answer: the status in the headers
        (
            [event(h2.events.ResponseReceived, headers=[(b":status", b"200"), (b"grpc-status", b"14")]),
             event(h2.events.StreamEnded)],
            Status("UNAVAILABLE"),
        ),
        (
            [event(h2.events.ResponseReceived, headers=[(b":status", b"200")]),
             event(h2.events.TrailersReceived, headers=[(b"grpc-status", b"3"), (b"grpc-message", b"bad%20field%25")]),
             event(h2.events.StreamEnded)],
            Status("INVALID_ARGUMENT", "bad field%"),
        ),
        (
            [event(h2.events.ResponseReceived, headers=[(b":status", b"503")]), event(h2.events.StreamEnded)],
            Status("UNAVAILABLE", "HTTP 503 without a gRPC status"),
        ),
        (
            [event(h2.events.ResponseReceived, headers=[(b":status", b"200")]), event(h2.events.StreamEnded)],
            Status("UNKNOWN", "HTTP 200 without a gRPC status"),
        ),
        (
            [event(h2.events.TrailersReceived, headers=[(b"grpc-status", b"99")]), event(h2.events.StreamEnded)],
            Status("UNKNOWN"),
        ),
        ([event(h2.events.StreamReset, error_code=7)], Status("UNAVAILABLE", "stream reset by the server (HTTP/2 error 7)")),
        ([event(h2.events.StreamReset, error_code=8)], Status("CANCELLED", "stream reset by the server (HTTP/2 error 8)")),
        ([event(h2.events.StreamReset, error_code=2)], Status("INTERNAL", "stream reset by the server (HTTP/2 error 2)")),
    ],
)  # fmt: skip
def test_the_status_of_an_answer(events: list[Any], status: Status) -> None:
    answer = grpc_client._Answer()
    answer.take(events)
    assert answer.ended
    assert answer.status() == status


def test_an_answer_still_coming_has_not_ended() -> None:
    answer = grpc_client._Answer()
    answer.take([event(h2.events.ResponseReceived, headers=[(b":status", b"200")])])
    assert not answer.ended


@pytest.mark.parametrize(
    ("seconds", "header"),
    [(0.0001, "1m"), (2.5, "2500m"), (99_999.999, "99999999m"), (100_000.0, "100000S"), (1e12, "99999999S")],
)
def test_the_grpc_timeout_header(seconds: float, header: str) -> None:
    assert grpc_client._grpc_timeout(seconds) == header


def test_the_status_names_are_grpcs() -> None:
    assert [code.name for code in sorted(grpc.StatusCode, key=lambda c: c.value[0])] == list(
        grpc_client.STATUS_NAMES
    )


# -- TLS ----------------------------------------------------------------------------------------------------


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@contextlib.contextmanager
def tls_server(credentials: grpc.ServerCredentials) -> Iterator[Receiver]:
    receiver = Receiver()
    server = start_grpc(receiver, tls=credentials)
    try:
        yield receiver
    finally:
        server.stop(None)


def test_tls_with_the_servers_certificate_and_not_without(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "server")
    with tls_server(grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])) as receiver:
        assert receiver.endpoint.startswith("https://")
        assert call(client(receiver.endpoint, secure=True, certificate=str(cert)), request()) == Status("OK")
        unknown = call(client(receiver.endpoint, secure=True), request())
        assert unknown.code == "UNAVAILABLE" and "TLS error" in unknown.message
        plaintext = call(client(receiver.endpoint), request(), timeout=2)
        assert plaintext.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED")
    assert len(receiver.metrics) == 1


def test_a_client_certificate_when_the_server_asks_for_one(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "server")
    client_cert, client_key = self_signed(tmp_path, "client")
    credentials = grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=client_cert.read_bytes(),
        require_client_auth=True,
    )
    with tls_server(credentials) as receiver:
        without = call(client(receiver.endpoint, secure=True, certificate=str(cert)), request(), timeout=3)
        assert without.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED")
        mutual = client(
            receiver.endpoint,
            secure=True,
            certificate=str(cert),
            client_certificate=str(client_cert),
            client_key=str(client_key),
        )
        assert call(mutual, request()) == Status("OK")
    assert len(receiver.metrics) == 1


def test_tls_files_that_cannot_be_read_fail_at_construction(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        client("https://127.0.0.1:1", secure=True, certificate=str(tmp_path / "missing.pem"))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(OSError):  # ssl.SSLError
        client("https://127.0.0.1:1", secure=True, certificate=str(tmp_path / "junk.pem"))


# -- proxies --------------------------------------------------------------------------------------------------


class ConnectProxy:
    """A forward proxy for CONNECT: it keeps each request's head and relays the bytes both ways."""

    def __init__(
        self,
        answer: bytes = b"HTTP/1.1 200 Connection established\r\n\r\n",
        forward_first_bytes: bool = False,
    ) -> None:
        self.heads: list[str] = []
        self._answer = answer
        self._forward_first_bytes = forward_first_bytes  # the server's first bytes sent with the answer
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                downstream, _ = self._server.accept()
                threading.Thread(target=self._tunnel, args=(downstream,), daemon=True).start()

    def _tunnel(self, downstream: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += downstream.recv(4096)
        self.heads.append(head.decode())
        if not self._answer.startswith(b"HTTP/1.1 200"):
            downstream.sendall(self._answer)
            downstream.close()
            return
        host, port = head.split()[1].decode().rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        first = upstream.recv(65_536) if self._forward_first_bytes else b""
        downstream.sendall(self._answer + first)
        for source, sink in ((downstream, upstream), (upstream, downstream)):
            threading.Thread(target=self._relay, args=(source, sink), daemon=True).start()

    @staticmethod
    def _relay(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65_536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    running = ConnectProxy()
    yield running
    running.close()


def test_grpc_proxy_is_tunnelled_through_with_its_credentials(
    grpc_receiver: Receiver, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("grpc_proxy", proxy.url.replace("http://", "http://us%20er:pa%3Ass@"))
    assert call(client(grpc_receiver.endpoint), request()) == Status("OK")
    (head,) = proxy.heads
    target = grpc_receiver.endpoint.removeprefix("http://")
    assert head.startswith(f"CONNECT {target} HTTP/1.1\r\n")
    assert "Proxy-Authorization: Basic dXMgZXI6cGE6c3M=\r\n" in head  # base64 of "us er:pa:ss"
    assert len(grpc_receiver.metrics) == 1


def test_https_proxy_serves_when_grpc_proxy_is_not_set_and_no_proxy_skips_it(
    grpc_receiver: Receiver, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("https_proxy", proxy.url)
    assert call(client(grpc_receiver.endpoint), request()) == Status("OK")
    assert len(proxy.heads) == 1
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    assert call(client(grpc_receiver.endpoint), request()) == Status("OK")
    monkeypatch.delenv("no_proxy")
    monkeypatch.setenv("no_grpc_proxy", "localhost, 127.0.0.1")
    assert call(client(grpc_receiver.endpoint), request()) == Status("OK")
    assert len(proxy.heads) == 1  # both went straight to the server
    assert len(grpc_receiver.metrics) == 3


def test_a_proxy_that_refuses_is_unavailable(
    grpc_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusing = ConnectProxy(answer=b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
    monkeypatch.setenv("grpc_proxy", refusing.url)
    try:
        status = call(client(grpc_receiver.endpoint), request())
    finally:
        refusing.close()
    assert status.code == "UNAVAILABLE" and "407" in status.message
    assert grpc_receiver.metrics == []


# -- fork ------------------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_dials_its_own_connection_while_the_parents_call_is_in_flight(
    grpc_receiver: Receiver,
) -> None:
    shared = client(grpc_receiver.endpoint)
    assert call(shared, request(name="parent")) == Status("OK")
    parents_socket = shared._socket
    with silent_listener() as hole:
        hung = client(hole.url)
        in_flight = threading.Thread(target=call, args=(hung, request(), 3.0))
        in_flight.start()
        wait_until(lambda: hung._lock.locked() and hole.connections, timeout=10)
        pid = os.fork()
        if pid == 0:  # the child: no thread holds its lock, its calls are its own
            code = 0
            try:
                if call(hung, request(), timeout=0.3).code != "DEADLINE_EXCEEDED":
                    code = 1
                elif call(shared, request(name="child")) != Status("OK"):
                    code = 2
            except BaseException:
                code = 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        in_flight.join(10)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's connection lives on, untouched by the child that closed its copy.
    assert shared._socket is parents_socket
    assert call(shared, request(name="parent again")) == Status("OK")
    names = [rm.scope_metrics[0].metrics[0].name for r in grpc_receiver.metrics for rm in r.resource_metrics]
    assert names == ["parent", "child", "parent again"]
