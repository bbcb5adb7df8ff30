"""The spool's files: framing, damage, the budget, a full disk, claiming and acknowledging."""

from __future__ import annotations

import errno
import fcntl
import os
from collections import Counter
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otel_liveview._internal.config import load
from otel_liveview._internal.spool import (
    HEADER,
    LOGS,
    MAX_RECORD,
    METRICS,
    Damage,
    Record,
    Spool,
    claim,
    default_directory,
    directory_segments,
    read_folder,
    read_record,
    record_counts,
)


class Counts:
    def __init__(self) -> None:
        self.dropped: Counter[tuple[str, str]] = Counter()

    def __call__(self, kind: str, reason: str, amount: int) -> None:
        self.dropped[kind, reason] += amount


def drain(spool: Spool) -> list[bytes]:
    sent = []
    while (run := spool.oldest()) is not None:
        sent.extend(record.payload for record in run)
        spool.ack(run[-1])
    return sent


def test_records_come_back_oldest_first_and_a_sent_segment_is_removed(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), segment_bytes=100)
    payloads = [bytes([i]) * 40 for i in range(10)]
    for payload in payloads:
        assert spool.append(LOGS, payload, {"log": 1})
    assert len(list(tmp_path.glob("*.seg"))) == 5  # sealed at 100 bytes: two 49-byte records each
    assert drain(spool) == payloads
    assert not spool.pending
    assert not list(tmp_path.glob("*.seg")) and not list(tmp_path.glob("*.ack"))


def test_each_record_is_framed_with_its_kind_length_and_checksum(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path))
    spool.append(METRICS, b"abc", {})
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    data = segment.read_bytes()
    kind, length, crc = HEADER.unpack(data[: HEADER.size])
    assert (kind, length, data[HEADER.size :]) == (METRICS, 3, b"abc")
    assert crc == __import__("zlib").crc32(b"abc")
    _host, pid, created, seq = segment.name.removesuffix(".seg").rsplit("-", 3)
    assert int(pid) == os.getpid() and int(created) > 0 and seq == "0"


@pytest.mark.parametrize("damage", ["truncated", "flipped", "garbage"])
def test_a_damaged_segment_is_read_up_to_the_damage_and_counted_once(tmp_path: Path, damage: str) -> None:
    writer = Spool(str(tmp_path))
    for i in range(5):
        writer.append(LOGS, bytes([i]) * 100, {"log": 1})
    writer.close()
    (segment,) = tmp_path.glob("*.seg")
    data = bytearray(segment.read_bytes())
    third = 2 * (HEADER.size + 100)
    if damage == "truncated":
        data = data[: third + HEADER.size + 50]
    elif damage == "flipped":
        data[third + HEADER.size + 7] ^= 0xFF
    else:
        data[third : third + HEADER.size] = b"\xff" * HEADER.size
    segment.write_bytes(bytes(data))
    counts = Counts()
    reader = Spool(str(tmp_path), count=counts)
    reader.scan()
    assert drain(reader) == [bytes([0]) * 100, bytes([1]) * 100]
    assert counts.dropped == {("segment", "spool_corrupt"): 1}
    assert not list(tmp_path.glob("*.seg")), "reported once: the damaged segment is not read again"


def test_over_the_budget_the_newest_records_are_refused_and_counted(tmp_path: Path) -> None:
    counts = Counts()
    spool = Spool(str(tmp_path), max_bytes=1000, count=counts)
    accepted = [spool.append(LOGS, b"x" * 91, {"log": 2, "metric": 1}) for _ in range(15)]
    assert accepted == [True] * 10 + [False] * 5  # 100 bytes a record, framed
    assert counts.dropped == {("log", "spool_full"): 10, ("metric", "spool_full"): 5}
    drain(spool)  # sent: room again
    assert spool.append(LOGS, b"x" * 91, {"log": 1})


def test_a_full_disk_drops_the_record_keeps_the_segment_whole_and_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = Counts()
    spool = Spool(str(tmp_path), count=counts)
    assert spool.append(LOGS, b"first", {"log": 1})
    real_write = os.write

    def half_then_full(fd: int, data: bytes) -> int:
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    assert not spool.append(LOGS, b"second" * 10, {"log": 1})
    monkeypatch.setattr(os, "write", real_write)
    assert spool.append(LOGS, b"third", {"log": 1})
    assert counts.dropped == {("log", "disk_full"): 1}
    assert drain(spool) == [b"first", b"third"]


def test_an_unwritable_folder_is_counted_never_raised(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    counts = Counts()
    spool = Spool(str(tmp_path / "file" / "spool"), count=counts)
    assert not spool.append(LOGS, b"x", {"data": 3})
    assert counts.dropped == {("data", "spool_error"): 3}


def test_a_segment_is_claimed_only_once_its_writer_lets_go(tmp_path: Path) -> None:
    writer = Spool(str(tmp_path))
    writer.append(LOGS, b"one", {})
    (path,) = tmp_path.glob("*.seg")
    other = Spool(str(tmp_path))
    assert other.scan() == 0 and claim(str(path)) is None  # the writer holds its lock
    writer.close()
    assert other.scan() == 1
    assert claim(str(path)) is None  # now `other` holds it
    assert drain(other) == [b"one"]


def test_progress_is_kept_so_a_crash_resends_at_most_one_request(tmp_path: Path) -> None:
    writer = Spool(str(tmp_path))
    for payload in (b"a", b"b", b"c"):
        writer.append(LOGS, payload, {})
    first = writer.oldest(max_bytes=1)  # one record a request
    assert first is not None and [record.payload for record in first] == [b"a"]
    writer.ack(first[-1])
    second = writer.oldest(max_bytes=1)
    assert second is not None and [record.payload for record in second] == [b"b"]
    # the process dies now, after sending b and before its acknowledgement: its locks go with it
    writer._forget()
    successor = Spool(str(tmp_path))
    successor.scan()
    assert drain(successor) == [b"b", b"c"]


def test_a_segment_deleted_while_being_claimed_is_not_read_again(tmp_path: Path) -> None:
    writer = Spool(str(tmp_path))
    writer.append(LOGS, b"one", {})
    (path,) = tmp_path.glob("*.seg")
    fd = os.open(path, os.O_RDONLY)  # a claimer that opened it before the writer removed it
    drain(writer)
    assert not path.exists()
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)
    assert claim(str(path)) is None


def test_a_forked_child_lets_go_of_its_parents_segments_without_unlocking_them(tmp_path: Path) -> None:
    writer = Spool(str(tmp_path))
    writer.append(LOGS, b"one", {})
    (path,) = tmp_path.glob("*.seg")
    pid = os.fork()
    if pid == 0:
        writer.after_fork()
        os._exit(0 if claim(str(path)) is None else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert claim(str(path)) is None, "still the parent's"


def test_record_counts_read_a_request_by_kind() -> None:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    for name in ("liveview.metric", "liveview.data", "", "liveview.status", ""):
        records.add(event_name=name)
    assert record_counts(LOGS, request.SerializeToString()) == {"metric": 1, "data": 1, "log": 2, "status": 1}


def test_the_settings() -> None:
    settings = load(spool_dir="/tmp/x", offline=True, spool_max_bytes=10)
    assert (settings.spool_dir, settings.offline, settings.spool_max_bytes) == ("/tmp/x", True, 10)
    with pytest.raises(ValueError, match="spool_max_bytes"):
        load(spool_max_bytes=0)
    assert load().spool_max_bytes == 1024**3 and load().spool_dir is None and not load().offline


def test_writers_sharing_a_folder_share_its_budget(tmp_path: Path) -> None:
    counts = Counts()
    first, second = (Spool(str(tmp_path), max_bytes=1000, count=counts) for _ in range(2))
    assert all(first.append(LOGS, b"x" * 91, {"log": 1}) for _ in range(8))
    assert [second.append(LOGS, b"x" * 91, {"log": 1}) for _ in range(3)] == [True, True, False]
    assert counts.dropped == {("log", "spool_full"): 1}


# -- reading a segment as it is ---------------------------------------------------------------------------


def one_segment(tmp_path: Path, *payloads: bytes) -> tuple[Path, bytearray]:
    writer = Spool(str(tmp_path))
    for payload in payloads:
        writer.append(LOGS, payload, {"log": 1})
    writer.close()
    (path,) = tmp_path.glob("*.seg")
    return path, bytearray(path.read_bytes())


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("a short header", "a truncated record header"),
        ("an unknown kind", "not a record header"),
        ("a length past any record", "not a record header"),
        ("a short payload", "a truncated record"),
        ("a flipped byte", "a checksum mismatch"),
    ],
)
def test_damage_is_named_with_its_segment_and_offset(tmp_path: Path, damage: str, reason: str) -> None:
    path, data = one_segment(tmp_path, b"a" * 10, b"b" * 10)
    second = HEADER.size + 10
    if damage == "a short header":
        data = data[: second + HEADER.size - 1]
    elif damage == "an unknown kind":
        data[second] = 9
    elif damage == "a length past any record":
        data[second : second + HEADER.size] = HEADER.pack(LOGS, MAX_RECORD + 1, 0)
    elif damage == "a short payload":
        data = data[:-1]
    else:
        data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    segment = claim(str(path))
    assert segment is not None
    first = read_record(segment, 0)
    assert isinstance(first, Record)
    assert (first.segment, first.offset, first.end, first.kind, first.payload) == (
        segment,
        0,
        second,
        LOGS,
        b"a" * 10,
    )
    assert read_record(segment, second) == Damage(segment, second, reason)
    segment.close()


def test_a_record_of_exactly_the_largest_length_is_not_damage_by_its_header(tmp_path: Path) -> None:
    path, _ = one_segment(tmp_path, b"a")
    path.write_bytes(HEADER.pack(LOGS, MAX_RECORD, 0))
    segment = claim(str(path))
    assert segment is not None
    assert read_record(segment, 0) == Damage(segment, 0, "a truncated record"), "its length is allowed"
    segment.close()


def test_the_folder_read_as_it_is_oldest_first_to_the_damage_and_left_unchanged(tmp_path: Path) -> None:
    first = Spool(str(tmp_path))
    first.append(LOGS, b"one", {"log": 1})
    first.append(METRICS, b"two", {"points": 1})
    first.close()
    second = Spool(str(tmp_path))
    second.append(LOGS, b"three", {"log": 1})
    second.append(LOGS, b"four", {"log": 1})  # held: a running writer's segment is read too
    (tmp_path / "notes.txt").write_text("not a segment")
    newest = max(tmp_path.glob("*.seg"), key=lambda path: path.stat().st_mtime_ns)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    segments = list(directory_segments(str(tmp_path)))
    assert len(segments) == 2 and segments[-1] == str(newest)
    assert list(read_folder(str(tmp_path))) == [
        (LOGS, b"one"),
        (METRICS, b"two"),
        (LOGS, b"three"),
        (LOGS, b"four"),
    ]
    with newest.open("r+b") as file:  # the last byte of "four" flipped: read up to it
        file.seek(-1, os.SEEK_END)
        file.write(b"\x00")
    assert [payload for _, payload in read_folder(str(tmp_path))] == [b"one", b"two", b"three"]
    after = {path.name for path in tmp_path.iterdir()}
    assert after == set(before), "nothing removed, nothing acknowledged"
    assert (
        list(read_folder(str(tmp_path / "missing"))) == []
        and list(directory_segments(str(tmp_path / "missing"))) == []
    )
    second.close()


def test_an_offline_run_without_a_folder_spools_under_the_state_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", "/state")
    assert default_directory() == "/state/otel-liveview/spool"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", "/home/someone")
    assert default_directory() == "/home/someone/.local/state/otel-liveview/spool"
    monkeypatch.setenv("XDG_STATE_HOME", "")  # empty: as if unset, as the XDG specification says
    assert default_directory() == "/home/someone/.local/state/otel-liveview/spool"


def test_progress_that_cannot_be_recorded_is_said_once_and_kept_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(str(tmp_path))
    for payload in (b"a", b"b", b"c"):
        spool.append(LOGS, payload, {"log": 1})
    (tmp_path / f"{spool._held[0].path}.ack").mkdir()  # an .ack that cannot be opened as a file
    for _ in range(2):
        run = spool.oldest(max_bytes=1)
        assert run is not None
        spool.ack(run[-1])
    warnings = [
        record.getMessage() for record in caplog.records if "cannot record progress" in record.getMessage()
    ]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"otel-liveview: cannot record progress in {tmp_path}: "
    )
    assert "Is a directory" in warnings[0]
    run = spool.oldest(max_bytes=1)
    assert run is not None and run[0].payload == b"c", "what was sent is not sent again"


def test_record_counts_read_a_metrics_request_by_points() -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    request = ExportMetricsServiceRequest()
    scope = request.resource_metrics.add().scope_metrics.add()
    scope.metrics.add(name="g").gauge.data_points.add()
    total = scope.metrics.add(name="s").sum
    total.data_points.add()
    total.data_points.add()
    second = request.resource_metrics.add().scope_metrics.add()
    second.metrics.add(name="g").gauge.data_points.add()
    assert record_counts(METRICS, request.SerializeToString()) == {"points": 4}
    assert record_counts(METRICS, b"") == {}
