"""Sending a spool: records merged into requests, rejections isolated, the rhythm of requests, flush
and close, against the suite's in-process OTLP receiver."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

from otel_liveview._internal import config, otlp
from otel_liveview._internal.otlp import OtlpSender, Outage, Outcome
from otel_liveview._internal.spool import LOGS, METRICS, Record, Spool, merged, read_run
from otel_liveview._internal.spooling import Spooler, send_run
from tests.support.receiver import Receiver, wait_until


def request(*numbers: int) -> bytes:
    """A logs request of one record per number, its body the number."""
    records = [LogRecord(body={"int_value": number}) for number in numbers]
    return ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=records)])]
    ).SerializeToString()


def numbers(requests: list[ExportLogsServiceRequest]) -> list[int]:
    return [
        record.body.int_value
        for request in requests
        for resource in request.resource_logs
        for scope in resource.scope_logs
        for record in scope.log_records
    ]


def sizes(requests: list[ExportLogsServiceRequest]) -> list[int]:
    return [len(numbers([request])) for request in requests]


class Counts:
    def __init__(self) -> None:
        self.dropped: Counter[tuple[str, str]] = Counter()

    def __call__(self, kind: str, reason: str, amount: int) -> None:
        self.dropped[kind, reason] += amount


# -- runs -----------------------------------------------------------------------------------------------------


def test_a_run_is_the_consecutive_records_of_one_kind_and_merged_it_is_one_request(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path))
    for first in range(0, 6, 2):
        spool.append(LOGS, request(first, first + 1), {"log": 2})
    spool.append(METRICS, b"", {"points": 1})
    spool.append(LOGS, request(6), {"log": 1})
    run = spool.oldest()
    assert run is not None and len(run) == 3 and {record.kind for record in run} == {LOGS}
    assert numbers([ExportLogsServiceRequest.FromString(merged(run))]) == [0, 1, 2, 3, 4, 5]
    assert merged(run[:1]) is run[0].payload  # one record: its bytes as they are
    spool.ack(run[-1])
    metrics = spool.oldest()
    assert metrics is not None and [record.kind for record in metrics] == [METRICS]
    spool.ack(metrics[-1])
    last = spool.oldest()
    assert last is not None and numbers([ExportLogsServiceRequest.FromString(merged(last))]) == [6]
    spool.ack(last[-1])
    assert spool.oldest() is None


def test_a_run_stops_at_its_byte_and_record_limits_and_holds_at_least_one(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path))
    payloads = [request(*range(n * 10, n * 10 + 10)) for n in range(4)]
    for payload in payloads:
        spool.append(LOGS, payload, {"log": 10})
    size = len(payloads[0])
    assert [len(spool.oldest(max_bytes=2 * size) or []) for _ in range(2)] == [2, 2]
    assert len(spool.oldest(max_bytes=2 * size - 1) or []) == 1
    assert len(spool.oldest(max_bytes=1) or []) == 1  # bigger than the limit, alone
    assert len(spool.oldest(max_records=30) or []) == 3
    assert len(spool.oldest(max_records=29) or []) == 2
    assert len(spool.oldest(max_records=1) or []) == 1
    # A segment read by another process knows no counts: only the byte limit applies.
    spool.close()
    other = Spool(str(tmp_path))
    other.scan()
    assert len(other.oldest(max_records=1) or []) == 4


def test_a_run_stops_before_damage(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path))
    for number in range(3):
        spool.append(LOGS, request(number), {"log": 1})
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF  # the last record's checksum no longer matches
    segment.write_bytes(bytes(data))
    other = Spool(str(tmp_path))
    other.scan()
    held = other._held[0]
    run = read_run(held, 0)
    assert isinstance(run, list) and len(run) == 2
    assert not isinstance(read_run(held, run[-1].end), list)


def test_a_mark_is_reached_once_everything_written_before_it_is_acknowledged(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), segment_bytes=100)
    assert spool.mark() is None and spool.sent_up_to(None)
    for number in range(4):
        spool.append(LOGS, bytes([number]) * 40, {"log": 1})  # two records a segment
    mark = spool.mark()
    spool.append(LOGS, b"after", {"log": 1})
    assert not spool.sent_up_to(mark)
    for _ in range(3):
        run = spool.oldest(max_bytes=1)
        assert run is not None
        spool.ack(run[-1])
        assert not spool.sent_up_to(mark)
    run = spool.oldest(max_bytes=1)
    assert run is not None and run[0].payload == bytes([3]) * 40
    spool.ack(run[-1])
    assert spool.sent_up_to(mark)
    assert not spool.sent_up_to(spool.mark())  # b"after" is still to go


# -- send_run -------------------------------------------------------------------------------------------------


def runs_of(tmp_path: Path, *payloads: bytes) -> list[Record]:
    spool = Spool(str(tmp_path))
    for payload in payloads:
        spool.append(LOGS, payload, {"log": 1})
    run = spool.oldest()
    assert run is not None and len(run) == len(payloads)
    return run


def test_a_run_rejected_as_bad_is_sent_again_record_by_record_and_only_the_bad_one_is_lost(
    tmp_path: Path,
) -> None:
    run = runs_of(tmp_path, b"good", b"bad", b"fine")
    sent: list[bytes] = []

    def send(payload: bytes) -> Outcome:
        sent.append(payload)
        return Outcome(False, False, "HTTP 400") if b"bad" in payload else Outcome(True)

    taken: list[bytes] = []
    refused: list[bytes] = []
    assert send_run(
        run, send, taken=lambda r: taken.append(r.payload), refused=lambda r: refused.append(r.payload)
    )
    assert sent == [b"goodbadfine", b"good", b"bad", b"fine"]
    assert taken == [b"good", b"bad", b"fine"] and refused == [b"bad"]


@pytest.mark.parametrize("reason", ["HTTP 400", "INVALID_ARGUMENT: no"])
def test_a_single_record_rejected_as_bad_is_refused_without_a_second_attempt(
    tmp_path: Path, reason: str
) -> None:
    (record,) = runs_of(tmp_path, b"bad")
    sent: list[bytes] = []
    refused: list[Record] = []
    taken: list[Record] = []

    def send(payload: bytes) -> Outcome:
        sent.append(payload)
        return Outcome(False, False, reason)

    assert send_run([record], send, taken=taken.append, refused=refused.append)
    assert sent == [b"bad"] and refused == [record] and taken == [record]


def test_a_run_the_endpoint_cannot_take_is_left_for_later(tmp_path: Path) -> None:
    run = runs_of(tmp_path, b"a", b"b", b"c")
    taken: list[Record] = []
    assert not send_run(
        run, lambda payload: Outcome(False, True, "HTTP 503"), taken=taken.append, refused=taken.append
    )
    assert taken == []
    # Down in the middle of sending record by record: what was taken stays taken.
    answers = iter([Outcome(False, False, "HTTP 400"), Outcome(True), Outcome(False, True, "HTTP 503")])
    assert not send_run(run, lambda payload: next(answers), taken=taken.append, refused=taken.append)
    assert taken == [run[0]]


# -- the Spooler ----------------------------------------------------------------------------------------------


@pytest.fixture
def spooled(tmp_path: Path, http_receiver: Receiver) -> Iterator[tuple[Spooler, Counts]]:
    counts = Counts()
    settings = config.load(endpoint=http_receiver.endpoint, protocol="http/protobuf")
    sender = OtlpSender(otlp.resolve(settings, "logs"), Outage())
    spooler = Spooler(
        Spool(str(tmp_path), count=counts), {"logs": sender}, offline=False, batch_size=100, delay=0.2
    )
    spooler.start()
    yield spooler, counts
    spooler.close(time.monotonic() + 2)
    sender.close()


def test_requests_leave_a_batch_at_a_time_in_the_order_written(
    spooled: tuple[Spooler, Counts], http_receiver: Receiver
) -> None:
    spooler, _ = spooled
    spooler._sent_at = time.monotonic() + 3600  # no partial batch: the delay is not what this is about
    for first in range(0, 1000, 20):
        assert spooler.deliver(LOGS, request(*range(first, first + 20)), {"log": 20})
    wait_until(lambda: len(numbers(http_receiver.logs)) == 1000, 10, what="every record")
    assert numbers(http_receiver.logs) == list(range(1000))
    assert sizes(http_receiver.logs) == [100] * 10  # OTEL_BLRP_MAX_EXPORT_BATCH_SIZE holds


def test_a_partial_batch_waits_for_the_schedule_delay_and_flush_sends_it_at_once(
    spooled: tuple[Spooler, Counts], http_receiver: Receiver
) -> None:
    spooler, _ = spooled
    spooler._sent_at = time.monotonic() + 3600  # as if a request had just left, for an hour
    spooler.deliver(LOGS, request(1, 2, 3), {"log": 3})
    time.sleep(0.3)  # longer than the delay: the thread would have sent it, were it due
    assert http_receiver.logs == []
    assert spooler.flush(time.monotonic() + 5)
    assert numbers(http_receiver.logs) == [1, 2, 3]
    assert spooler.took_all()


def test_while_the_endpoint_is_down_flush_does_not_wait_and_the_thread_tries_again_later(
    spooled: tuple[Spooler, Counts], http_receiver: Receiver
) -> None:
    spooler, _ = spooled
    http_receiver.status = 503
    spooler.deliver(LOGS, request(1), {"log": 1})
    assert not spooler.flush(time.monotonic() + 5)  # one attempt, refused
    started = time.monotonic()
    assert not spooler.flush(time.monotonic() + 5)  # down: not even an attempt
    assert time.monotonic() - started < 1.0
    assert http_receiver.attempts["/v1/logs"] == 1
    http_receiver.status = 200
    wait_until(lambda: numbers(http_receiver.logs) == [1], 10, what="the retry after the backoff")
    assert spooler._backoff == 1.0  # reset once through


def test_a_request_rejected_as_bad_is_counted_and_out_of_the_way(
    spooled: tuple[Spooler, Counts], http_receiver: Receiver
) -> None:
    spooler, counts = spooled
    http_receiver.status = 400
    spooler.deliver(LOGS, request(1, 2), {"log": 2})
    assert spooler.flush(time.monotonic() + 5)
    assert counts.dropped == {("log", "spool_rejected"): 2}
    http_receiver.status = 200
    spooler.deliver(LOGS, request(3), {"log": 1})
    assert spooler.flush(time.monotonic() + 5)
    assert numbers(http_receiver.logs) == [3]


def test_close_sends_what_is_left_and_leaves_in_the_folder_what_it_could_not(
    tmp_path: Path, spooled: tuple[Spooler, Counts], http_receiver: Receiver
) -> None:
    spooler, _ = spooled
    spooler._sent_at = time.monotonic() + 3600
    spooler.deliver(LOGS, request(1), {"log": 1})
    http_receiver.status = 503
    assert spooler.close(time.monotonic() + 5)  # spooled, so nothing lost
    assert not spooler._thread.is_alive()
    assert len(list(tmp_path.glob("*.seg"))) == 1, "kept for the next process or replay"


def test_a_spool_that_cannot_take_a_request_says_so_at_the_next_flush(tmp_path: Path) -> None:
    counts = Counts()
    spooler = Spooler(
        Spool(str(tmp_path), max_bytes=10, count=counts), {}, offline=True, batch_size=9, delay=1
    )
    assert spooler.deliver(LOGS, request(1, 2), {"log": 2})  # True: counted, not raised
    assert counts.dropped == {("log", "spool_full"): 2}
    assert not spooler.took_all()
    assert spooler.took_all()  # said once
    assert not spooler.flush(time.monotonic() + 1)  # offline: nothing is sent
    spooler.start()
    assert not spooler._thread.is_alive()  # offline: no thread
    assert spooler.close(time.monotonic() + 1)


# -- the sinks that write to it -------------------------------------------------------------------------------


def test_the_spool_sinks_write_the_requests_the_otlp_sinks_would_send(tmp_path: Path) -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    from otel_liveview._internal import encoding
    from otel_liveview._internal.encoding import LogBatch, MetricPoints, MetricsEncoder
    from otel_liveview._internal.sinks import SpoolLogSink, SpoolMetricSink

    counts = Counts()
    spool = Spool(str(tmp_path), count=counts)
    spooler = Spooler(spool, {}, offline=True, batch_size=512, delay=0.2)
    resource, scope = encoding.resource({"service.name": "s"}), encoding.scope("otel_liveview", "1")
    batch = LogBatch(resource, scope, 128)
    batch.add({"timestamp": 5, "body": "hello"}, "log", 6)
    batch.add({"timestamp": 7, "body": "update"}, "metric", 8, calls=3)
    logs = SpoolLogSink(spooler)
    assert logs.export(batch, None)
    encoder = MetricsEncoder(resource, scope)
    metrics = SpoolMetricSink(spooler, encoder)
    points = [MetricPoints("m", "", [((("k", "v"),), 1.0), ((("k", "w"),), 2.0)])]
    assert metrics.export(points, 9, None)
    logs.shutdown()
    metrics.shutdown()  # nothing of theirs to close: the spool's thread sends
    # What each record stands for (1 log and 3 metric calls; 2 points): what a request may carry.
    assert list(spool._held[0].records.values()) == [4, 2]
    first = spool.oldest() or []
    assert [record.kind for record in first] == [LOGS]
    assert first[0].payload == batch.request.SerializeToString()
    spool.ack(first[-1])
    second = spool.oldest() or []
    assert [record.kind for record in second] == [METRICS]
    assert second[0].payload == encoder.encode(points, 9)
    assert len(ExportMetricsServiceRequest.FromString(second[0].payload).resource_metrics) == 1
    assert spooler.took_all() and counts.dropped == {}


def test_segments_other_processes_left_are_taken_only_by_a_process_that_sends_both_signals(
    tmp_path: Path, http_receiver: Receiver
) -> None:
    left = Spool(str(tmp_path))
    left.append(LOGS, request(1), {"log": 1})
    left.close()  # its writer is gone: anyone may take it
    settings = config.load(endpoint=http_receiver.endpoint, protocol="http/protobuf")
    senders = {signal: OtlpSender(otlp.resolve(settings, signal), Outage()) for signal in ("logs", "metrics")}
    metrics_only = Spooler(
        Spool(str(tmp_path)), {"metrics": senders["metrics"]}, offline=False, batch_size=9, delay=1
    )
    metrics_only.scan()
    assert not metrics_only.spool.pending, "a logs segment it could not send is left alone"
    both = Spooler(Spool(str(tmp_path)), senders, offline=False, batch_size=9, delay=1)
    both.scan()
    assert both.spool.pending
    assert both.flush(time.monotonic() + 5)
    assert numbers(http_receiver.logs) == [1]
    for sender in senders.values():
        sender.close()


def test_an_error_while_sending_leaves_the_record_spooled_and_the_thread_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        down = False
        endpoint = otlp.resolve(config.load(), "logs")

        def send(self, payload: bytes, deadline: float) -> Outcome:
            raise RuntimeError("a bug in a transport")

    spooler = Spooler(Spool(str(tmp_path)), {"logs": Broken()}, offline=False, batch_size=9, delay=1)  # type: ignore[dict-item]
    spooler.start()
    spooler.deliver(LOGS, request(1), {"log": 1})
    wait_until(lambda: spooler._retry_at > 0, 10, what="the failure taken as an outage")
    assert spooler._thread.is_alive() and spooler.spool.pending
    assert "otel-liveview: sending spooled telemetry failed" in [r.getMessage() for r in caplog.records]
    spooler._stopping = True  # close() would try again in this thread
    spooler._wake.set()
    spooler._thread.join(5)
    spooler.spool.close()
    assert len(list(tmp_path.glob("*.seg"))) == 1


def test_a_run_of_two_rejected_as_bad_is_sent_again_one_by_one(tmp_path: Path) -> None:
    run = runs_of(tmp_path, b"bad", b"good")
    sent: list[bytes] = []

    def send(payload: bytes) -> Outcome:
        sent.append(payload)
        return Outcome(False, False, "HTTP 400") if b"bad" in payload else Outcome(True)

    refused: list[Record] = []
    assert send_run(run, send, taken=lambda record: None, refused=refused.append)
    assert sent == [b"badgood", b"bad", b"good"] and refused == [run[0]]


def test_when_the_next_request_is_due(tmp_path: Path) -> None:
    spooler = Spooler(Spool(str(tmp_path)), {}, offline=False, batch_size=10, delay=0.5)
    assert (
        spooler._thread.name == "otel-liveview-spool" and spooler._thread.daemon
    )  # the exit never waits for it
    now = time.monotonic()
    assert spooler._due(now) == now + 5.0, "nothing written: only the next look at the folder"
    spooler._sent_at = now - 0.1
    assert spooler.deliver(LOGS, request(1), {"log": 1})
    assert spooler._wake.is_set(), "the first record after a pause: the thread sees when it is due"
    spooler._wake.clear()
    assert spooler._due(now) == pytest.approx(now + 0.4), "a partial batch: the delay after the last request"
    spooler.deliver(LOGS, request(2), {"log": 8})
    assert not spooler._wake.is_set(), "nine of ten: not yet"
    assert spooler._due(now) == pytest.approx(now + 0.4)
    spooler.deliver(LOGS, request(3), {"log": 1})
    assert spooler._wake.is_set() and spooler._due(now) == now, "ten of ten: at once"
    spooler._retry_at = now + 3
    assert spooler._due(now) == now + 3, "the endpoint down: after the backoff, whatever is written"


def test_the_backoff_doubles_from_one_second_to_ten_and_a_success_resets_it(tmp_path: Path) -> None:
    spooler = Spooler(Spool(str(tmp_path)), {}, offline=False, batch_size=10, delay=0.5)
    waits = []
    for _ in range(6):
        before = time.monotonic()
        assert spooler._failed() is False
        waits.append(round(spooler._retry_at - before))
    assert waits == [1, 2, 4, 8, 10, 10]
    spooler.deliver(LOGS, request(1), {"log": 1})
    (record,) = spooler.spool.oldest() or []
    spooler._taken(record)
    assert spooler._retry_at == 0 and spooler._backoff == 1.0


def test_what_is_written_and_not_sent_is_counted_down_as_requests_leave(
    tmp_path: Path, http_receiver: Receiver
) -> None:
    settings = config.load(endpoint=http_receiver.endpoint, protocol="http/protobuf")
    sender = OtlpSender(otlp.resolve(settings, "logs"), Outage())
    spooler = Spooler(Spool(str(tmp_path)), {"logs": sender}, offline=False, batch_size=100, delay=60)
    for first in range(0, 120, 40):
        spooler.deliver(LOGS, request(*range(first, first + 40)), {"log": 40})
    assert spooler._written == 120
    assert spooler.send_one(None) is True
    assert sizes(http_receiver.logs) == [80] and spooler._written == 40, "two writes of 40 fit a batch"
    assert spooler.send_one(None) is True
    assert sizes(http_receiver.logs) == [80, 40] and spooler._written == 0
    spooler._written = 7  # counted, but nothing is left: put right
    assert spooler.send_one(None) is None and spooler._written == 0
    sender.close()


def test_a_request_that_is_not_a_request_is_counted_as_a_segment_when_refused(
    spooled: tuple[Spooler, Counts], http_receiver: Receiver
) -> None:
    spooler, counts = spooled
    http_receiver.status = 400
    spooler.deliver(LOGS, b"\xff\xff", {"log": 1})
    assert spooler.flush(time.monotonic() + 5)
    assert counts.dropped == {("segment", "spool_rejected"): 1}


def test_flush_and_close_keep_to_their_deadline_behind_a_slow_collector(
    tmp_path: Path, spooled: tuple[Spooler, Counts], http_receiver: Receiver
) -> None:
    spooler, _ = spooled
    assert spooler.pause(1) and not spooler.pause(0.1), "held: a second pause waits, then gives up"
    spooler.resume()
    http_receiver.delay = 3.0  # each request takes 3 s to be answered
    spooler._sent_at = time.monotonic() + 3600  # a partial batch is the flush's to send
    spooler.deliver(LOGS, request(1), {"log": 1})
    started = time.monotonic()
    assert not spooler.flush(started + 0.3)
    assert time.monotonic() - started < 2.5, "the request gives up at the flush's deadline, not after 3 s"
    # The thread in the middle of a request (a full batch, at once) when close comes:
    spooler._retry_at = 0.0
    attempts = http_receiver.attempts["/v1/logs"]
    spooler.deliver(LOGS, request(*range(100)), {"log": 100})
    wait_until(lambda: http_receiver.attempts["/v1/logs"] > attempts, 10, what="the thread's request")
    started = time.monotonic()
    assert spooler.close(started + 0.2)
    assert time.monotonic() - started < 2.5, "close waits for the thread only until its deadline, not 3 s"
    http_receiver.delay = 0.0


def test_a_backlog_left_by_another_process_goes_out_back_to_back(
    tmp_path: Path, http_receiver: Receiver
) -> None:
    left = Spool(str(tmp_path))
    for kind, payload in ((LOGS, request(1)), (METRICS, b""), (LOGS, request(2))):  # three runs
        left.append(kind, payload, {"log": 1})
    left.close()
    settings = config.load(endpoint=http_receiver.endpoint, protocol="http/protobuf")
    senders = {signal: OtlpSender(otlp.resolve(settings, signal), Outage()) for signal in ("logs", "metrics")}
    spooler = Spooler(Spool(str(tmp_path)), senders, offline=False, batch_size=100, delay=60)
    spooler.scan()
    now = time.monotonic()
    for _ in range(2):  # after each request but the last, the next is due at once
        assert spooler.send_one(None) is True
        assert spooler._written == 0 and spooler._due(now) == now, "no delay between its requests"
    assert spooler.send_one(None) is True
    assert spooler.send_one(None) is None
    assert numbers(http_receiver.logs) == [1, 2] and len(http_receiver.metrics) == 1
    for sender in senders.values():
        sender.close()


def test_an_idle_thread_looks_at_the_folder_once_and_then_waits(tmp_path: Path) -> None:
    spooler = Spooler(Spool(str(tmp_path)), {}, offline=False, batch_size=10, delay=0.5)
    scans: list[float] = []
    spooler.scan = lambda: scans.append(time.monotonic())  # type: ignore[method-assign]
    spooler.start()
    time.sleep(0.5)  # what is asserted is that nothing happens meanwhile: there is nothing to poll
    assert len(scans) <= 1, "the next look comes after SCAN_EVERY (5 s), not on every pass"
    spooler.close(time.monotonic() + 2)
    assert not spooler._thread.is_alive()
