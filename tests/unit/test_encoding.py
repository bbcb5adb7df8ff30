"""The library's own OTLP encoding writes exactly what the SDK's encoder writes for the same records:
any publish call, through events.emit_all, gives the same ExportLogsServiceRequest bytes both ways."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from otel_liveview import encoding, events
from otel_liveview.tables import Tables
from tests.support.strategies import payloads

RESOURCE = {
    "service.name": "encoding-test",
    "service.instance.id": "abc",
    "process.pid": 42,
    "liveview.topic": "t",
}
SCOPE = ("otel_liveview", "1.2.3")


def sdk_request(records: list[dict[str, Any]]) -> ExportLogsServiceRequest:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource(RESOURCE), shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger(*SCOPE)
    for record in records:
        logger.emit(**record)
    request = encode_logs(exporter.get_finished_logs())
    for log_record in request.resource_logs[0].scope_logs[0].log_records:
        log_record.observed_time_unix_nano = 0
    return request


def own_request(
    records: list[dict[str, Any]], kinds: list[str], limit: int = 128
) -> ExportLogsServiceRequest:
    batch = encoding.LogBatch(encoding.resource(RESOURCE), encoding.scope(*SCOPE), limit)
    for record, kind in zip(records, kinds, strict=True):
        batch.add(record, kind, observed=0)
    return batch.request


LOSS = (("metric", "loss"), ("phase", "train"), ("topic", "topic"))
ACC = (("metric", "acc"), ("topic", "topic"))


def items(payload: dict[Any, Any]) -> list[tuple[Any, ...]]:
    """One queued item of every kind, carrying `payload` wherever the API takes free-form data; two
    metric series, one with gaps, a NaN and extra keyword arguments, one of plain floats."""
    return [
        ("metric", 1.0, LOSS, 0.25, 3.0, None, dict(payload)),
        ("metric", 1.001, LOSS, float("nan"), None, 2.0, None),
        ("metric", 1.002, ACC, 0.5, 1.0, None, None),
        ("metric", 1.003, ACC, 0.75, 2.0, None, None),
        ("data", 1_002, "topic", "sensors", dict(payload)),
        ("log", 1_003, "topic", 13, "WARN", "disk almost full", dict(payload)),
        ("log", 1_004, "topic", 17, "ERROR", payload, {}),
        ("status", 1_005, "topic", "mnist", "failed", "ValueError: boom"),
        ("status", 1_006, "topic", "mnist", "running", None),
    ]


def built(queued: list[tuple[Any, ...]]) -> list[tuple[str, dict[str, Any]]]:
    records: list[tuple[str, dict[str, Any]]] = []
    events.emit_all(queued, Tables(), lambda kind, calls, record: records.append((kind, record)))
    return records


def both(payload: dict[Any, Any]) -> tuple[ExportLogsServiceRequest, ExportLogsServiceRequest]:
    queued = items(payload)
    # Built twice from the same items: each encoder gets records of its own.
    records, again = built(queued), built(queued)
    return sdk_request([record for _, record in records]), own_request(
        [record for _, record in again], [kind for kind, _ in again]
    )


def test_every_kind_of_record_encodes_byte_for_byte_as_the_sdk_does() -> None:
    sdk, own = both(
        {"sensor": 0.5, "nested": {"list": [1, 2, 3], "none": None, "empty": {}}, "bytes": b"\x00"}
    )
    assert len(own.resource_logs[0].scope_logs[0].log_records) == 7
    assert own == sdk
    assert own.SerializeToString(deterministic=True) == sdk.SerializeToString(deterministic=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads)
def test_any_payload_encodes_as_the_sdk_does(payload: dict[Any, Any]) -> None:
    sdk, own = both(payload)
    assert own.SerializeToString(deterministic=True) == sdk.SerializeToString(deterministic=True)


def test_attributes_beyond_the_limit_are_dropped_and_counted() -> None:
    record = {"timestamp": 1, "body": "x", "attributes": {f"k{i}": i for i in range(200)}}
    own = own_request([record], ["log"], limit=128).resource_logs[0].scope_logs[0].log_records[0]
    assert [kv.key for kv in own.attributes] == [f"k{i}" for i in range(72, 200)]  # the last ones stay
    assert own.dropped_attributes_count == 72
    with pytest.warns(UserWarning, match="dropped due to limits"):
        sdk = sdk_request([record]).resource_logs[0].scope_logs[0].log_records[0]  # the SDK's default limit
    assert own == sdk


def test_a_value_the_mapping_never_produces_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="cannot encode object as an OTLP value"):
        own_request([{"timestamp": 1, "body": object(), "severity_number": SeverityNumber.INFO}], ["log"])


def test_a_batch_counts_its_records_by_kind() -> None:
    batch = encoding.LogBatch(encoding.resource(RESOURCE), encoding.scope(*SCOPE), 128)
    for kind in ("log", "data", "log", "log", "status"):
        batch.add({"timestamp": 1, "body": kind}, kind, observed=0)
    assert batch.kinds == {"log": 3, "data": 1, "status": 1}
    assert len(batch) == 5


@pytest.mark.parametrize("remembered", [1_000, 0], ids=["packed", "entry-by-entry"])
def test_maps_of_floats_encode_as_the_sdk_does(monkeypatch: pytest.MonkeyPatch, remembered: int) -> None:
    """A map of floats is packed in one step (or, beyond the key orders remembered, entry by entry):
    the same bytes either way, for long, non-ASCII and zero-valued keys and values."""
    monkeypatch.setattr(encoding, "_MAX_FLOAT_MAPS", remembered)
    monkeypatch.setattr(encoding, "_FLOAT_MAPS", {})
    body = {
        "sensor": 0.5,
        "zero": 0.0,
        "minus_zero": -0.0,
        "huge": 1e308,
        "température": -3.25,
        "arm": {"x": 1.0, "y": -2.0},
        "mixed": {"x": 1.0, "label": "ok"},
        # Lengths around a varint's one-byte limit (127), and an empty key (proto3 omits it).
        "long": {"k" * 118: 1.0, "k" * 119: 2.0, "k" * 127: 3.0, "k" * 128: 4.0, "k" * 300: 5.0},
        "empty key": {"": 1.5, "x": 2.5},
    }
    record = {"timestamp": 1, "event_name": "liveview.data", "body": body, "attributes": {"stream": "s"}}
    own = own_request([record], ["data"])
    assert own.SerializeToString(deterministic=True) == sdk_request([record]).SerializeToString(
        deterministic=True
    )
    # The key orders remembered: those of the maps of floats whose keys are non-empty strings.
    packed = {tuple(body["arm"]), tuple(body["long"])} if remembered else set()
    assert set(encoding._FLOAT_MAPS) == packed
