"""Property-based tests: any payload or name the API accepts encodes to valid OTLP and valid
Prometheus names; nothing raises except the documented errors."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from otel_liveview._internal import events, mapping
from otel_liveview._internal.tables import Tables
from tests.support.receiver import decode_any, decode_attributes
from tests.support.strategies import keys, payloads, scalars

PROMETHEUS_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

_exporter = InMemoryLogRecordExporter()
_provider = LoggerProvider()
_provider.add_log_record_processor(SimpleLogRecordProcessor(_exporter))
_logger = _provider.get_logger("properties")


def prometheus_label_name(key: str) -> str:
    """The OTLP -> Prometheus translation of an attribute key (invalid characters -> "_")."""
    name = re.sub(r"[^a-zA-Z0-9_]", "_", key)
    return "key_" + name if name[0].isdigit() else name


def round_trip(arguments: dict[str, Any]) -> Any:
    _exporter.clear()
    _logger.emit(**arguments)
    request = ExportLogsServiceRequest.FromString(
        encode_logs(_exporter.get_finished_logs()).SerializeToString()
    )
    (record,) = request.resource_logs[0].scope_logs[0].log_records
    return record


def expected_body(value: Any, depth: int = 0) -> Any:
    """docs/naming.md's value rules for the payloads generated here (small: no size limits apply)."""
    if isinstance(value, dict):
        if depth >= 32:
            return "<too deep>"
        body = {}
        for key, item in value.items():  # keys that read the same: the last one wins
            text = (key if isinstance(key, str) else str(key)).strip()
            body[text or "_"] = expected_body(item, depth + 1)
        return body
    if isinstance(value, list):
        return "<too deep>" if depth >= 32 else [expected_body(item, depth + 1) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return str(value)
    return value


def expected_leaves(body: dict[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    """Every finite number and bool under nested maps (not lists), by dotted path, in order."""
    leaves = []
    for key, value in body.items():
        if isinstance(value, dict):
            leaves += expected_leaves(value, prefix + key + ".")
        elif isinstance(value, (bool, int, float)):
            leaves.append((prefix + key, float(value)))
    return leaves


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads)
def test_any_data_payload_encodes_and_decodes(data: dict[Any, Any]) -> None:
    tables = Tables()
    arguments = events.data_event(("data", 1, "topic", "stream", data), tables)
    record = round_trip(arguments)
    body = expected_body(data)
    assert decode_any(record.body) == body
    assert decode_attributes(record.attributes) == {
        "stream": "stream",
        "topic": "topic",
        "event_name": "liveview.data",
    }
    assert record.event_name == "liveview.data" and record.time_unix_nano == 1

    # The liveview.data gauge: the first 64 distinct paths of the stream, each with its last value.
    gauge: dict[str, float] = {}
    for key, value in expected_leaves(body):
        if key in gauge or len(gauge) < tables.max_stream_keys:
            gauge[key] = value
    assert {dict(key)["key"]: value for key, value in tables.data.items()} == gauge
    for key, _ in tables.data.items():
        assert dict(key).keys() == {"key", "stream", "topic"} and dict(key)["stream"] == "stream"
    skipped = sum(1 for key, _ in expected_leaves(body) if key not in gauge)  # one count per value left out
    assert dict(tables.dropped.items()).get((("kind", "data"), ("reason", "cardinality")), 0) == skipped


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(keys, st.one_of(scalars, st.lists(scalars, max_size=3)), max_size=6))
def test_any_keyword_arguments_become_valid_attributes_and_label_names(kwargs: dict[Any, Any]) -> None:
    attributes = mapping.attributes(kwargs)
    record = round_trip({"timestamp": 1, "body": "x", "attributes": attributes})
    assert len(record.attributes) == len(attributes)
    for key in attributes:
        assert isinstance(key, str) and key
        assert PROMETHEUS_LABEL.match(prometheus_label_name(key))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=300), st.integers(), st.none(), st.binary(max_size=5)))
def test_metric_names_are_accepted_or_rejected_clearly(name: Any) -> None:
    try:
        checked = mapping.metric_name(name)
    except (TypeError, ValueError) as error:
        assert "metric name" in str(error)
        return
    assert checked and len(checked) <= mapping.MAX_LABEL_LENGTH
    record = round_trip({"timestamp": 1, "body": "x", "attributes": {"metric": checked}})
    assert decode_any(record.attributes[0].value) == checked


@settings(max_examples=200, deadline=None)
@given(st.one_of(scalars, st.lists(scalars, max_size=2), st.complex_numbers()))
def test_metric_values_are_numbers_or_a_type_error(value: Any) -> None:
    if isinstance(value, int) and abs(value) >= 2**1024 - 2**970:  # rounds beyond the largest float
        with pytest.raises(ValueError, match=r"^metric 'm': value .* is too large for a float"):
            mapping.metric_value("m", value)
    elif isinstance(value, (bool, int, float)):
        number = mapping.metric_value("m", value)
        assert type(number) is float
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(number)
        else:
            assert number == float(value)
    else:  # None, text, bytes, lists, complex numbers
        with pytest.raises(TypeError, match=r"^metric 'm': value must be a real number, not "):
            mapping.metric_value("m", value)
