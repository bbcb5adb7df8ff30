"""A durable spool: OTLP requests the collector could not take, in append-only segment files.

Each record is the exact request the sender would have sent (an ExportLogsServiceRequest or an
ExportMetricsServiceRequest, serialized), so the original timestamps travel with it, framed as

    [kind: u8][length: u32 LE][crc32 of the payload: u32 LE][payload]

Each process writes segments of its own, `<host>-<pid>-<created ns>-<seq>.seg`, and holds an
exclusive `flock` on every segment it has not yet seen acknowledged: a process sharing the folder
(a fork, a spawned child, another rank, `otel-liveview replay`) takes a segment only by getting
that lock (LOCK_EX | LOCK_NB), which a dead writer no longer holds. Progress within a segment is
the byte offset acknowledged so far, kept in `<segment>.ack`; a segment is deleted once all of it is
acknowledged. docs/reliability.md ("The spool") says why it is built this way.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from otel_liveview import names

_log = logging.getLogger("otel_liveview")

LOGS, METRICS = 1, 2  # the kind byte: which OTLP service a record's request is for
SIGNALS = {LOGS: "logs", METRICS: "metrics"}
HEADER = struct.Struct("<BII")
_ACK = struct.Struct("<Q")
SUFFIX = ".seg"
SEGMENT_BYTES = 8 * 1024 * 1024  # a segment is sealed once it holds this much
DEFAULT_MAX_BYTES = 1024**3  # OTEL_LIVEVIEW_SPOOL_MAX_BYTES' default: 1 GiB per folder
RECOUNT_EVERY = 1.0  # seconds: how stale the folder's size may be when a record is written
MAX_RECORD = 1024**3  # a length beyond this is damage, not a record
RUN_BYTES = 1024 * 1024  # consecutive records sent as one request up to this size
KNOWN_RECORDS = 65_536  # records per segment whose size in publish calls is kept in memory
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)

Count = Callable[[str, str, int], None]  # Tables.count_dropped(kind, reason, amount)


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload), zlib.crc32(payload)) + payload


def default_directory() -> str:
    """Where an offline run spools when OTEL_LIVEVIEW_SPOOL_DIR is not set."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "otel-liveview", "spool")


@dataclass(frozen=True)
class Record:
    """One spooled request: where it is (`segment`, from `offset` to `end`), its kind and bytes."""

    segment: Segment
    offset: int
    end: int
    kind: int
    payload: bytes


@dataclass(frozen=True)
class Damage:
    segment: Segment
    offset: int  # where the damage starts
    reason: str


def read_record(segment: Segment, offset: int) -> Record | Damage | None:
    """The record at `offset` of `segment` (None: its end; Damage: no whole record there)."""
    end = segment.size
    if offset >= end:
        return None
    header = os.pread(segment.fd, HEADER.size, offset)
    if len(header) < HEADER.size:
        return Damage(segment, offset, "a truncated record header")
    kind, length, crc = HEADER.unpack(header)
    if kind not in SIGNALS or length > MAX_RECORD:
        return Damage(segment, offset, "not a record header")
    start = offset + HEADER.size
    if start + length > end:
        return Damage(segment, offset, "a truncated record")
    payload = os.pread(segment.fd, length, start)
    if len(payload) < length:
        return Damage(segment, offset, "a truncated record")
    if zlib.crc32(payload) != crc:
        return Damage(segment, offset, "a checksum mismatch")
    return Record(segment, offset, start + length, kind, payload)


def read_run(
    segment: Segment, offset: int, max_bytes: int = RUN_BYTES, max_records: int | None = None
) -> list[Record] | Damage | None:
    """The records from `offset` of `segment` that go out as one request: consecutive, of one kind,
    together at most `max_bytes` and (where the segment knows how many each holds) `max_records`,
    always at least one. Serialized protobuf messages concatenated are the message with their
    repeated fields joined, so `merged(run)` is one valid request holding them all. None: the
    segment's end; Damage: no whole record at `offset` (a run stops before damage)."""
    first = read_record(segment, offset)
    if not isinstance(first, Record):
        return first
    run, size, records = [first], len(first.payload), segment.records.get(first.end, 0)
    while len(header := os.pread(segment.fd, HEADER.size, run[-1].end)) == HEADER.size:
        # Decided on the header: a record that does not join the run is read once, by the next run.
        kind, length, _ = HEADER.unpack(header)
        size += length
        records += segment.records.get(run[-1].end + HEADER.size + length, 0)
        if kind != first.kind or size > max_bytes or (max_records is not None and records > max_records):
            break
        found = read_record(segment, run[-1].end)
        if not isinstance(found, Record):  # damage: the next run reports it
            break
        run.append(found)
    return run


def merged(run: list[Record]) -> bytes:
    return run[0].payload if len(run) == 1 else b"".join(record.payload for record in run)


@dataclass(eq=False)
class Segment:
    """A segment this process holds the lock of: its own (being written, or sealed), or one it claimed."""

    path: str
    fd: int
    size: int  # bytes of whole records in it
    acked: int = 0
    open: bool = False  # this process still appends to it
    ack_fd: int | None = None
    key: tuple[int, int, int] = (0, 0, 0)  # (created ns, pid, seq): the order segments are sent in
    # end offset -> publish calls or points, of the records this process wrote and has not sent (to
    # keep requests within a batch); bounded: beyond KNOWN_RECORDS only the byte limit applies.
    records: dict[int, int] = field(default_factory=dict)

    def write_ack(self, offset: int) -> None:
        if self.ack_fd is None:
            self.ack_fd = os.open(self.path + ".ack", os.O_RDWR | os.O_CREAT, 0o600)
        os.pwrite(self.ack_fd, _ACK.pack(offset), 0)
        self.acked = offset
        self.forget_sent()

    def forget_sent(self) -> None:
        records = self.records
        while records and (end := next(iter(records))) <= self.acked:
            del records[end]

    def close(self) -> None:
        """Close its descriptors, once (a number closed twice may be another thread's by then)."""
        fds, self.fd, self.ack_fd = (self.fd, self.ack_fd), -1, None
        for fd in fds:
            if fd is not None and fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def remove(self) -> None:
        """Delete the segment (then its .ack: a crash in between leaves only a stray .ack)."""
        for path in (self.path, self.path + ".ack"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self.close()


def segment_key(name: str) -> tuple[int, int, int] | None:
    """(created ns, pid, seq) from `<host>-<pid>-<created ns>-<seq>.seg`, or None for another file."""
    if not name.endswith(SUFFIX):
        return None
    parts = name[: -len(SUFFIX)].rsplit("-", 3)
    try:
        _, pid, created, seq = parts
        return int(created), int(pid), int(seq)
    except ValueError:
        return None


def read_ack(path: str) -> int:
    try:
        with open(path + ".ack", "rb") as file:
            raw = file.read(_ACK.size)
    except FileNotFoundError:
        return 0
    return _ACK.unpack(raw)[0] if len(raw) == _ACK.size else 0


def claim(path: str) -> Segment | None:
    """Take the lock of the segment at `path` if no process holds it (its writer is gone, or
    sealed it and sent all of it); None if it is held or no longer there."""
    key = segment_key(os.path.basename(path))
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The holder may have deleted it between our open and its unlock: then it is done.
        if os.fstat(fd).st_ino != os.stat(path).st_ino:
            raise FileNotFoundError(path)
    except OSError:
        os.close(fd)
        return None
    size = os.fstat(fd).st_size
    return Segment(path, fd, size, acked=min(read_ack(path), size), key=key or (0, 0, 0))


class Spool:
    """The spool folder as one process uses it: it appends to segments of its own, and sends (through
    `oldest()` and `ack()`) what its own and the segments it claimed hold, oldest first.

    Thread-safe (the export thread and the metric export thread both append). Nothing here raises
    into the caller: a write that fails is counted (`count`) and reported once.
    """

    def __init__(
        self,
        directory: str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int = SEGMENT_BYTES,
        count: Count | None = None,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.count = count or (lambda kind, reason, amount: None)
        self._lock = threading.Lock()
        self._held: list[Segment] = []  # in the order they are sent
        self._current: Segment | None = None
        self._seq = 0
        self._used = 0  # bytes of the folder's segments, as of the last count plus what was written since
        self._recount_at = 0.0
        self._full_at: int | None = None  # the folder's bytes when a record was refused for the budget
        self._warned: set[str] = set()
        self._owner = os.getpid()
        self._prefix = f"{socket.gethostname().replace('/', '_')}-{os.getpid()}"
        # Nothing read here: a pipeline is built in the thread of the first publish call; the folder
        # is counted at the first write or scan, on an export thread.

    # -- writing --------------------------------------------------------------------------------------

    def append(self, kind: int, payload: bytes, counts: Mapping[str, int]) -> bool:
        """Write one request; False (and `counts` counted as dropped) when it does not fit the budget,
        the disk is full or the folder cannot be written."""
        data = frame(kind, payload)
        with self._lock:
            now = time.monotonic()
            if now >= self._recount_at:  # other writers' segments, and those others sent and removed
                self._recount_at = now + RECOUNT_EVERY
                self._used = self._folder_bytes()
            if self._full_at is not None and self._used >= self._full_at:  # full until something is sent
                return self._drop(counts, "spool_full", "")
            if self._used + len(data) > self.max_bytes:
                self._used = self._folder_bytes()  # others may have sent and removed theirs
                if self._used + len(data) > self.max_bytes:
                    # From now on the newest are refused, smaller requests too: what is kept is the
                    # run up to a point, without holes, until sending makes room.
                    self._full_at = self._used
                    return self._drop(
                        counts, "spool_full", f"the budget of {self.max_bytes} bytes is used up"
                    )
            self._full_at = None
            try:
                segment = self._writable(len(data))
                written = os.write(segment.fd, data)
                if written != len(data):
                    raise OSError(errno.ENOSPC, "short write")
            except OSError as error:
                if self._current is not None:  # leave whole records only
                    with contextlib.suppress(OSError):
                        os.ftruncate(self._current.fd, self._current.size)
                reason = "disk_full" if error.errno in _DISK_FULL else "spool_error"
                return self._drop(counts, reason, str(error))
            segment.size += len(data)
            self._used += len(data)
            if len(segment.records) < KNOWN_RECORDS:
                segment.records[segment.size] = sum(counts.values())
            return True

    def _writable(self, needed: int) -> Segment:
        current = self._current
        if current is not None and current.size + needed > self.segment_bytes and current.size:
            self._seal(current)
            current = None
        if current is None:
            current = self._current = self._create()
        return current

    def _create(self) -> Segment:
        """A new segment, locked before it gets its name: no other process can claim it half-made."""
        os.makedirs(self.directory, exist_ok=True)
        created = time.time_ns()
        name = f"{self._prefix}-{created}-{self._seq}{SUFFIX}"
        self._seq += 1
        path = os.path.join(self.directory, name)
        temporary = path + ".new"
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(temporary, path)
        except OSError:
            os.close(fd)
            raise
        segment = Segment(path, fd, 0, open=True, key=(created, os.getpid(), self._seq - 1))
        self._held.append(segment)
        return segment

    def _seal(self, segment: Segment) -> None:
        segment.open = False
        if segment is self._current:
            self._current = None
        with contextlib.suppress(OSError):
            os.fsync(segment.fd)

    def _drop(self, counts: Mapping[str, int], reason: str, detail: str) -> bool:
        for kind, amount in counts.items():
            self.count(kind, reason, amount)
        if reason not in self._warned:
            self._warned.add(reason)
            _log.warning("otel-liveview: cannot spool to %s (%s): %s", self.directory, reason, detail)
        return False

    # -- sending --------------------------------------------------------------------------------------

    def oldest(self, max_bytes: int = RUN_BYTES, max_records: int | None = None) -> list[Record] | None:
        """The oldest records not yet acknowledged, as one run (`read_run`), or None when there are none."""
        with self._lock:
            while self._held:
                segment = self._held[0]
                found = read_run(segment, segment.acked, max_bytes, max_records)
                if isinstance(found, list):
                    return found
                if isinstance(found, Damage):
                    self._damaged(found)
                elif segment.open:  # all of the segment being written is sent: start a new one
                    self._seal(segment)
                self._held.pop(0)
                self._used -= segment.size
                segment.remove()
            return None

    def mark(self) -> tuple[tuple[int, int, int], int] | None:
        """Where the newest record written so far ends (None: nothing held), for `sent_up_to`."""
        with self._lock:
            if not self._held:
                return None
            newest = max(self._held, key=lambda segment: segment.key)
            return newest.key, newest.size

    def sent_up_to(self, mark: tuple[tuple[int, int, int], int] | None) -> bool:
        """Whether every record up to `mark` (from `mark()`) is acknowledged."""
        if mark is None:
            return True
        key, end = mark
        with self._lock:
            for segment in self._held:
                if segment.key > key:
                    continue
                if segment.acked < (end if segment.key == key else segment.size):
                    return False
            return True

    def ack(self, record: Record) -> None:
        """The collector took `record`: remember it (a crash now resends nothing before it)."""
        with self._lock:
            try:
                record.segment.write_ack(record.end)
            except OSError as error:  # the record may be sent twice after a crash; no more
                if "ack" not in self._warned:
                    self._warned.add("ack")
                    _log.warning("otel-liveview: cannot record progress in %s: %s", self.directory, error)
                record.segment.acked = record.end
                record.segment.forget_sent()

    def _damaged(self, damage: Damage) -> None:
        lost = damage.segment.size - damage.offset
        self.count("segment", "spool_corrupt", 1)
        _log.warning(
            "otel-liveview: spool segment %s is damaged at byte %d (%s); its last %d bytes are lost",
            damage.segment.path,
            damage.offset,
            damage.reason,
            lost,
        )

    @property
    def pending(self) -> bool:
        with self._lock:
            return any(segment.acked < segment.size for segment in self._held)

    def scan(self, *, claim_orphans: bool = True) -> int:
        """Recount the folder's bytes and (with `claim_orphans`) claim the segments no process holds,
        those of processes that died or exited before they were sent; how many were claimed."""
        with self._lock:
            self._used = self._folder_bytes()
            if not claim_orphans:
                return 0
            mine = {segment.path for segment in self._held}
            claimed = 0
            for path in self._segments():
                if path in mine:
                    continue
                segment = claim(path)
                if segment is not None:
                    self._held.append(segment)
                    claimed += 1
            self._held.sort(key=lambda segment: segment.key)
            return claimed

    def _segments(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        return [os.path.join(self.directory, name) for name in names if segment_key(name) is not None]

    def _folder_bytes(self) -> int:
        total = 0
        for path in self._segments():
            with contextlib.suppress(OSError):
                total += os.stat(path).st_size
        return total

    # -- the end --------------------------------------------------------------------------------------

    def close(self) -> None:
        """Seal what this process writes and let go of every segment (the next process, or
        replay, takes what is left); a segment all sent is removed."""
        with self._lock:
            if os.getpid() != self._owner:
                return self._forget()
            for segment in self._held:
                if segment.open:
                    self._seal(segment)
                if segment.acked >= segment.size:
                    segment.remove()
                else:
                    segment.close()
            self._held.clear()
            self._current = None

    def after_fork(self) -> None:
        """In a forked child: close the parent's descriptors without unlocking (the locks are the
        parent's: LOCK_UN here would release them for the parent too)."""
        self._lock = threading.Lock()
        self._forget()

    def _forget(self) -> None:
        for segment in self._held:
            segment.close()
        self._held.clear()
        self._current = None


_EVENT_KINDS = {names.METRIC_EVENT: "metric", names.DATA_EVENT: "data", names.STATUS_EVENT: "status"}


def record_counts(kind: int, payload: bytes) -> dict[str, int]:
    """What a spooled request holds, by the kinds liveview.dropped counts: its log records by event
    (metric, data, status; the rest log) or its metric data points (`points`)."""
    counts: dict[str, int] = {}
    if kind == LOGS:
        logs = ExportLogsServiceRequest.FromString(payload)
        for resource in logs.resource_logs:
            for scope in resource.scope_logs:
                for record in scope.log_records:
                    name = _EVENT_KINDS.get(record.event_name, "log")
                    counts[name] = counts.get(name, 0) + 1
        return counts
    metrics = ExportMetricsServiceRequest.FromString(payload)
    points = 0
    for resource_metrics in metrics.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                data = metric.gauge if metric.HasField("gauge") else metric.sum
                points += len(data.data_points)
    return {"points": points} if points else {}


def directory_segments(directory: str) -> Iterable[str]:
    """The segment files of `directory`, oldest first."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    keyed = [(key, name) for name in names if (key := segment_key(name)) is not None]
    return [os.path.join(directory, name) for _, name in sorted(keyed)]


def read_folder(directory: str) -> Iterator[tuple[int, bytes]]:
    """Every record of `directory`'s segments, oldest first, read as they are: no lock taken, nothing
    acknowledged or removed (for a look at a spool, not for sending it); a segment ends at its damage."""
    for path in directory_segments(directory):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        segment = Segment(path, fd, os.fstat(fd).st_size)
        try:
            offset = 0
            while isinstance(record := read_record(segment, offset), Record):
                yield record.kind, record.payload
                offset = record.end
        finally:
            segment.close()
