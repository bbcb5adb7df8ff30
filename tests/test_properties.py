"""Property-based tests: any payload or name the API accepts encodes to valid OTLP and valid
Prometheus names; nothing raises except the documented errors."""

from __future__ import annotations

import math
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from otel_liveview import events, mapping
from otel_liveview.series import Tables
from tests.receiver import decode_any

PROMETHEUS_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.binary(max_size=20),
)
keys = st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.none())
payloads = st.dictionaries(
    keys,
    st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
        max_leaves=20,
    ),
    max_size=8,
)

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


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads)
def test_any_data_payload_encodes_and_decodes(data: dict[Any, Any]) -> None:
    tables = Tables()
    arguments = events.data_event(("data", 1, "topic", "stream", data), tables)
    record = round_trip(arguments)
    body = decode_any(record.body)
    assert isinstance(body, dict) and len(body) <= len(data)
    for key, value in tables.data.items():
        attributes = dict(key)
        assert attributes["stream"] == "stream" and math.isfinite(value)
        assert attributes["key"]  # a non-empty dotted path
    assert len(tables.data.values) <= tables.max_stream_keys


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
    try:
        number = mapping.metric_value("m", value)
    except TypeError as error:
        assert "metric 'm'" in str(error)
        return
    assert isinstance(number, float)
