"""The view's receiver (otel_liveview/view/receiver.py) decoding HTTP bodies in-process: chunked framing,
Content-Encoding, and the size limit applied to the body as sent and as decompressed."""

from __future__ import annotations

import gzip
import io
import sys
import tracemalloc
import zlib
from collections.abc import Callable

import pytest

try:
    from compression import zstd  # Python 3.14
except ImportError:
    from backports import zstd

from otel_liveview.view.receiver import _BadRequest, _ChunkedBody, _decompress

LIMIT = 1024 * 1024
PAYLOAD = bytes(range(256)) * 1000  # 256 kB that compress well but not to nothing


def chunked(*chunks: bytes, trailer: bytes = b"") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n" + trailer + b"\r\n"


def read_chunked(wire: bytes, limit: int = LIMIT) -> bytes:
    stream = io.BufferedReader(io.BytesIO(wire))  # type: ignore[arg-type]
    return _ChunkedBody(stream, limit).read()


def refusal(call: Callable[..., object], *args: object) -> tuple[int, str]:
    with pytest.raises(_BadRequest) as error:
        call(*args)
    return error.value.status, str(error.value)


# -- chunked bodies -------------------------------------------------------------------------------------


def test_chunks_are_joined_with_extensions_and_trailers_ignored() -> None:
    wire = b"4;name=value\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n"
    assert read_chunked(wire) == b"Wikipedia in\r\n\r\nchunks."
    assert read_chunked(chunked(b"x" * 0xAB, b"y")) == b"x" * 0xAB + b"y"
    assert read_chunked(b"A\r\n0123456789\r\n0\r\n\r\n") == b"0123456789"  # upper-case hex
    assert read_chunked(chunked()) == b""


def test_the_stream_is_left_at_the_end_of_the_body_for_the_next_request() -> None:
    stream = io.BufferedReader(io.BytesIO(chunked(b"first", trailer=b"X: 1\r\n") + b"POST /next"))  # type: ignore[arg-type]
    assert _ChunkedBody(stream, LIMIT).read() == b"first"
    assert stream.read() == b"POST /next"


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"zz\r\nabc\r\n0\r\n\r\n", "malformed chunk size b'zz'"),
        (b"-1\r\n", "malformed chunk size"),
        (b"0x3\r\nabc\r\n0\r\n\r\n", "malformed chunk size"),
        (b"\r\n", "malformed chunk size b''"),
        (b"5\r\nabc", "malformed or truncated"),  # the connection ended inside a chunk
        (b"3\r\nabcX\r\n0\r\n\r\n", "malformed or truncated"),  # no CRLF after the data
        (b"3\r\nabc\r\n", "malformed or truncated"),  # no last chunk
        (b"0\r\nTrailer: x\r\n", "malformed or truncated"),  # no empty line after the trailers
        (b"1" + b" " * 5000 + b"\r\n", "malformed or truncated"),  # a size line past 4 KiB
    ],
)
def test_malformed_chunked_bodies_are_400(wire: bytes, reason: str) -> None:
    status, message = refusal(read_chunked, wire)
    assert status == 400 and reason in message


def test_the_limit_counts_the_chunks_as_sent() -> None:
    assert len(read_chunked(chunked(b"a" * 1000), limit=1000 + 20)) == 1000
    assert refusal(read_chunked, chunked(b"a" * 1000), 1000) == (413, "chunked body exceeds 1000 bytes")
    # A chunk announcing more than the limit is refused before any of it is read.
    assert refusal(read_chunked, b"fffffffffffffff\r\n", LIMIT)[0] == 413


class EndlessChunks(io.RawIOBase):
    """A client that never stops sending: 'size;extension' lines and chunks, forever."""

    def __init__(self, frame: bytes) -> None:
        self.frame = frame
        self.position = 0
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        for index in range(len(buffer)):
            buffer[index] = self.frame[self.position % len(self.frame)]
            self.position += 1
        self.served += len(buffer)
        return len(buffer)


@pytest.mark.parametrize(
    "frame",
    [
        b"1000\r\n" + b"d" * 0x1000 + b"\r\n",  # data chunks
        b"1;" + b"e" * 4000 + b"\r\nd\r\n",  # a byte of data per 4 kB of extension
        b"0\r\n" + b"Trailer: value\r\n" * 1000,  # trailer fields that never end
    ],
)
def test_an_endless_chunked_body_is_refused_after_the_limit_not_buffered(frame: bytes) -> None:
    source = EndlessChunks(frame)
    stream = io.BufferedReader(source, buffer_size=8192)
    assert refusal(_ChunkedBody(stream, LIMIT).read) == (413, f"chunked body exceeds {LIMIT} bytes")
    assert source.served <= LIMIT + 8192 + 4097  # the limit, one read-ahead buffer, one line


# -- Content-Encoding -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("GZIP ", gzip.compress),
        ("deflate", zlib.compress),  # the zlib format, as HTTP means it
        ("zlib", zlib.compress),
        ("zstd", zstd.compress),
        ("identity", bytes),
        ("", bytes),
    ],
)
def test_every_encoding_the_collector_takes_decodes(
    encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    assert _decompress(compress(PAYLOAD), encoding, LIMIT) == PAYLOAD


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_concatenated_members_and_frames_decode_to_all_of_them(encoding: str) -> None:
    compress = gzip.compress if encoding == "gzip" else zstd.compress
    assert _decompress(compress(b"one ") + compress(b"two"), encoding, LIMIT) == b"one two"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd"])
def test_a_zip_bomb_is_refused_without_being_inflated(encoding: str) -> None:
    compress = {"gzip": gzip.compress, "deflate": zlib.compress, "zstd": zstd.compress}[encoding]
    one_mib = compress(bytes(LIMIT))
    bombs = [compress(bytes(LIMIT + 1))]  # one member just over the limit
    if encoding != "deflate":
        bombs.append(one_mib * 1024)  # a GiB in 1024 members or frames of a few kB
    for bomb in bombs:
        tracemalloc.start()
        try:
            status, message = refusal(_decompress, bomb, encoding, LIMIT)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (status, message) == (413, f"decompressed body exceeds {LIMIT} bytes")
        assert peak < 4 * LIMIT + len(bomb), peak
    assert _decompress(one_mib, encoding, LIMIT) == bytes(LIMIT)  # exactly the limit is fine


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd"])
def test_corrupt_and_truncated_bodies_are_400(encoding: str) -> None:
    compress = {"gzip": gzip.compress, "deflate": zlib.compress, "zstd": zstd.compress}[encoding]
    status, message = refusal(_decompress, b"not compressed at all", encoding, LIMIT)
    assert status == 400 and message.startswith(f"body is not valid {encoding}: ")
    assert refusal(_decompress, compress(PAYLOAD)[:-10], encoding, LIMIT) == (
        400,
        f"truncated {encoding} body",
    )
    assert refusal(_decompress, b"", encoding, LIMIT) == (400, f"truncated {encoding} body")


@pytest.mark.parametrize("encoding", ["br", "snappy", "lz4", "gzip, zstd"])
def test_other_encodings_are_415_with_the_ones_taken(encoding: str) -> None:
    assert refusal(_decompress, b"x", encoding, LIMIT) == (
        415,
        f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or zstd",
    )


def test_zstd_without_its_module_is_415_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("compression.zstd", "backports.zstd"):
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    assert refusal(_decompress, zstd.compress(b"x"), "zstd", LIMIT) == (
        415,
        "Content-Encoding 'zstd' needs Python 3.14 or the backports.zstd package",
    )
    assert _decompress(gzip.compress(b"x"), "gzip", LIMIT) == b"x"  # the others are unaffected
