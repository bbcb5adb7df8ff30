"""`otel-liveview replay DIR`: send what a spool folder holds to a collector, oldest first.

Each segment is claimed by its lock first (a segment a running process still holds is left to it),
sent from its acknowledged offset on, its progress recorded after every request and the segment
deleted once all of it is sent: an interrupted replay goes on where it stopped when run again.
Several segments go at once (`--jobs`), each over connections of its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TextIO

from otel_liveview._internal import config, otlp
from otel_liveview._internal.otlp import OtlpSender, Outage, Outcome
from otel_liveview._internal.spool import (
    SIGNALS,
    Damage,
    Record,
    Segment,
    claim,
    directory_segments,
    read_ack,
    read_run,
    record_counts,
)
from otel_liveview._internal.spooling import rejected, send_run


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "replay",
        help="send a spool folder (OTEL_LIVEVIEW_SPOOL_DIR, an offline run) to a collector",
        description="Send what a spool folder holds to an OTLP endpoint, oldest first, with the "
        "records' original timestamps; what was sent is removed from the folder. The OTEL_EXPORTER_OTLP_* "
        "variables apply (protocol, headers, TLS, timeout); --endpoint is read as "
        "OTEL_EXPORTER_OTLP_ENDPOINT is. Interrupted, it goes on where it stopped when run again. "
        "Exit status: 0 all sent, 1 something was not sent, 2 a usage error.",
    )
    parser.add_argument("directory", metavar="DIR", help="the spool folder")
    parser.add_argument(
        "--endpoint", metavar="URL", help="the collector (default: OTEL_EXPORTER_OTLP_ENDPOINT)"
    )
    parser.add_argument(
        "--jobs", type=_jobs, default=4, metavar="N", help="segments sent at once (default 4)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="send, but leave the folder as it is (no progress kept)"
    )
    parser.set_defaults(run=run)


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number, at least 1")
    return value


@dataclass
class Progress:
    """What a replay has done so far (shared by its threads)."""

    total_bytes: int
    segments: int
    sent_bytes: int = 0
    requests: int = 0
    done_segments: int = 0
    busy: int = 0  # segments a running process holds
    records: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    damaged: list[str] = field(default_factory=list)
    failure: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class Replay:
    def __init__(self, settings: config.Settings, progress: Progress, *, keep: bool) -> None:
        self._settings = settings
        self._progress = progress
        self._keep = keep
        self._outage = Outage()
        self._local = threading.local()
        self.stop = threading.Event()

    def _sender(self, signal: str) -> OtlpSender:
        senders: dict[str, OtlpSender] | None = getattr(self._local, "senders", None)
        if senders is None:
            senders = self._local.senders = {}
        if signal not in senders:
            senders[signal] = OtlpSender(otlp.resolve(self._settings, signal), self._outage)
        return senders[signal]

    def segment(self, path: str) -> None:
        if self.stop.is_set():
            return
        segment = claim(path)
        if segment is None:
            if os.path.exists(path):
                with self._progress.lock:
                    self._progress.busy += 1
            return
        try:
            if self._keep:
                segment.acked = 0
            if self._send_all(segment):
                if not self._keep:
                    segment.remove()
                with self._progress.lock:
                    self._progress.done_segments += 1
        finally:
            segment.close()

    def _send_all(self, segment: Segment) -> bool:
        """Send `segment` from its acknowledged offset; True once all of it is sent (or lost to damage)."""
        progress = self._progress
        while not self.stop.is_set():
            found = read_run(segment, segment.acked)
            if found is None:
                return True
            if isinstance(found, Damage):
                with progress.lock:
                    progress.damaged.append(
                        f"{found.segment.path}: {found.reason} at byte {found.offset}; "
                        f"{found.segment.size - found.offset} bytes lost"
                    )
                    progress.sent_bytes += segment.size - found.offset
                return True
            if not self._send(found):
                return False
        return False

    def _send(self, run: list[Record]) -> bool:
        """Send a run of records as one request (`send_run`), its progress recorded."""
        sender = self._sender(SIGNALS[run[0].kind])
        progress = self._progress
        refused: set[int] = set()  # offsets of the records the collector rejected as bad
        done = run[0].offset

        def send(payload: bytes) -> Outcome:
            outcome = sender.send(payload, time.monotonic() + sender.endpoint.timeout, retry=True)
            if not outcome.ok and not rejected(outcome):
                with progress.lock:
                    progress.failure = progress.failure or f"{sender.endpoint.url}: {outcome.reason}"
            return outcome

        def taken(last: Record) -> None:
            nonlocal done
            sent: Counter[str] = Counter()
            lost: Counter[str] = Counter()
            for record in run:  # parsed before the lock: the other jobs' threads do not wait for it
                if done <= record.offset < last.end:
                    (lost if record.offset in refused else sent).update(
                        record_counts(record.kind, record.payload)
                    )
            with progress.lock:
                progress.records.update(sent)
                progress.rejected.update(lost)
                progress.requests += 1
                progress.sent_bytes += last.end - done
            done = last.end
            if self._keep:
                last.segment.acked = last.end
            else:
                last.segment.write_ack(last.end)

        if send_run(run, send, taken=taken, refused=lambda record: refused.add(record.offset)):
            return True
        self.stop.set()
        return False


def _pending_bytes(paths: list[str], keep: bool) -> int:
    total = 0
    for path in paths:
        try:
            size = os.stat(path).st_size
        except OSError:
            continue
        total += size if keep else max(0, size - read_ack(path))
    return total


def _line(progress: Progress, started: float) -> str:
    elapsed = time.monotonic() - started
    share = progress.sent_bytes / progress.total_bytes if progress.total_bytes else 1.0
    records = sum(progress.records.values())
    return (
        f"replay: {progress.done_segments}/{progress.segments} segments, "
        f"{progress.sent_bytes / 1e6:.1f} of {progress.total_bytes / 1e6:.1f} MB ({share:.0%}), "
        f"{records:,} records, {records / elapsed if elapsed > 0 else 0:,.0f}/s"
    )


def _show(progress: Progress, started: float, done: threading.Event, out: TextIO) -> None:
    width = 0
    while not done.wait(0.2):
        with progress.lock:
            text = _line(progress, started)
        out.write("\r" + text.ljust(width))
        out.flush()
        width = len(text)
    out.write("\r" + " " * width + "\r")
    out.flush()


def _summary(progress: Progress, directory: str, url: str, elapsed: float) -> str:
    logs = sum(count for kind, count in progress.records.items() if kind != "points")
    text = (
        f"replayed {progress.requests:,} requests ({logs:,} log records, "
        f"{progress.records['points']:,} metric points) to {url} in {elapsed:.1f} s"
    )
    if progress.rejected:
        text += f"; refused by the collector as bad and dropped: {sum(progress.rejected.values()):,} records"
    if progress.busy:
        text += f"; {progress.busy} segment(s) held by a running process, left to it"
    return text


def run(args: argparse.Namespace) -> int:
    directory = args.directory
    if not os.path.isdir(directory):
        print(f"otel-liveview replay: {directory}: not a folder", file=sys.stderr)
        return 2
    try:
        with config.strict():
            settings = config.load(endpoint=args.endpoint)
            url = args.endpoint or otlp.resolve(settings, "logs").url.removesuffix("/v1/logs")
    except ValueError as error:
        print(f"otel-liveview replay: {error}", file=sys.stderr)
        return 2
    paths = list(directory_segments(directory))
    progress = Progress(total_bytes=_pending_bytes(paths, args.keep), segments=len(paths))
    replay = Replay(settings, progress, keep=args.keep)
    started = time.monotonic()
    done = threading.Event()
    shower = None
    if sys.stderr.isatty():
        shower = threading.Thread(target=_show, args=(progress, started, done, sys.stderr), daemon=True)
        shower.start()
    interrupted = False
    pool = ThreadPoolExecutor(max_workers=args.jobs, thread_name_prefix="replay")
    futures = [pool.submit(replay.segment, path) for path in paths]
    try:
        pending = set(futures)
        while pending:  # short waits, so that Ctrl-C gets through
            pending = wait(pending, timeout=0.2).not_done
    except KeyboardInterrupt:
        interrupted = True
        replay.stop.set()
    pool.shutdown(wait=True)
    for future in futures:
        problem = future.exception() if future.done() and not future.cancelled() else None
        if problem is not None:  # a bug, or the folder taken away: said, not swallowed
            with progress.lock:
                progress.failure = progress.failure or f"{type(problem).__name__}: {problem}"
    done.set()
    if shower is not None:
        shower.join()
    for damaged in progress.damaged:
        print(f"otel-liveview replay: damaged segment {damaged}", file=sys.stderr)
    print(_summary(progress, directory, url, time.monotonic() - started))
    if interrupted:
        print("otel-liveview replay: interrupted; the same command goes on from here", file=sys.stderr)
        return 130
    if progress.failure is not None:
        print(
            f"otel-liveview replay: stopped: {progress.failure}; what is not sent stays in {directory}",
            file=sys.stderr,
        )
        return 1
    return 0


__all__ = ["register", "run"]
