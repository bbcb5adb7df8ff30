"""The library's own OTLP encoding writes exactly what the SDK's encoder writes for the same records
and points: any publish call, through events.emit_all, gives the same ExportLogsServiceRequest bytes
both ways, and any tables the same ExportMetricsServiceRequest bytes as the SDK's observable
instruments reading them."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, Sum
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_liveview._internal import encoding, events, pipeline
from otel_liveview._internal.metric_export import MetricExport
from otel_liveview._internal.sinks import metrics_data
from otel_liveview._internal.tables import GaugeTable, Tables
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


# -- metrics: the tables -> OTLP, against the SDK's observable instruments and its encoder ---------

# The tables a publish writes (liveview.launch.step is computed from the step table when read).
GAUGES = tuple(name for name, table in Tables().gauges().items() if isinstance(table, GaugeTable))
COUNTERS = tuple(Tables().counters())
label_sets = st.lists(
    st.tuples(st.text(min_size=1, max_size=12), st.text(max_size=12)),
    max_size=4,
    unique_by=lambda pair: pair[0],
).map(lambda pairs: tuple(sorted(pairs)))
gauge_values = st.one_of(st.floats(), st.integers(-(2**63), 2**63 - 1))  # NaN and the infinities too
tables_content = st.tuples(
    st.dictionaries(st.sampled_from(GAUGES), st.dictionaries(label_sets, gauge_values, max_size=6)),
    st.dictionaries(
        st.sampled_from(COUNTERS), st.dictionaries(label_sets, st.integers(0, 2**40), max_size=4)
    ),
)


def fill_tables(tables: Tables, content: tuple[dict[str, Any], dict[str, Any]]) -> None:
    gauges, counters = content
    for name, points in gauges.items():
        for key, value in points.items():
            tables.gauges()[name].set(key, value)
    for name, points in counters.items():
        for key, value in points.items():
            tables.counters()[name][1].get(key).add(value)


# A launched process's run, rank and node, on every point (otel_liveview._internal.launch).
IDENTITY = {"liveview.run.id": "job-7", "liveview.rank": "3", "liveview.node.name": "gpu-node-01"}


def sdk_export(
    reader: InMemoryMetricReader, identity: dict[str, str]
) -> tuple[bytes, int, dict[str, dict[Any, int]]]:
    """What the SDK sends for the tables now, with the collection's time and its counters' starts
    (by the tables' keys: without the identity)."""
    data = reader.get_metrics_data()
    if data is None:
        return b"", 0, {}
    (scope_metrics,) = data.resource_metrics[0].scope_metrics
    starts: dict[str, dict[Any, int]] = {}
    for metric in scope_metrics.metrics:
        if isinstance(metric.data, Sum):
            starts[metric.name] = {
                tuple(
                    sorted((k, v) for k, v in point.attributes.items() if k not in identity)
                ): point.start_time_unix_nano
                for point in metric.data.data_points
            }
    collected = scope_metrics.metrics[0].data.data_points[0].time_unix_nano
    return encode_metrics(data).SerializeToString(), collected, starts


def own_export(
    export: MetricExport, collected: int, starts: dict[str, dict[Any, int]], identity: dict[str, str]
) -> bytes:
    metrics, _ = export.collect()
    if not metrics:
        return b""
    # The same points with the SDK's timestamps (it reads the clock at moments of its own).
    metrics = [m if m.starts is None else m._replace(starts=starts[m.name]) for m in metrics]
    encoder = encoding.MetricsEncoder(encoding.resource(RESOURCE), encoding.scope(*SCOPE), identity=identity)
    own = encoder.encode(metrics, collected)
    # The console sink's SDK form of the same points encodes the same way.
    console = metrics_data(metrics, collected, Resource(RESOURCE), InstrumentationScope(*SCOPE), identity)
    assert encode_metrics(console).SerializeToString() == own
    return own


@pytest.mark.parametrize("identity", [{}, IDENTITY], ids=["no-launcher", "launched"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables_content, tables_content)
def test_a_metric_export_encodes_byte_for_byte_as_the_sdk_does(
    identity: dict[str, str],
    first: tuple[dict[str, Any], dict[str, Any]],
    then: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """Any tables, exported twice (new values and new series in between): the library's request is
    the SDK's, collected through observable instruments on the same tables and encoded by its encoder."""
    tables = Tables(max_series=100)
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=Resource(RESOURCE), metric_readers=[reader], shutdown_on_exit=False)
    pipeline.register_instruments(provider.get_meter(*SCOPE), tables, identity=identity)
    tables.launch_step.enabled = bool(identity)  # a launched process: its furthest step too
    export = MetricExport(tables, [], interval=3600)
    for content in (first, then):
        fill_tables(tables, content)
        sdk, collected, starts = sdk_export(reader, identity)
        assert own_export(export, collected, starts, identity) == sdk
    provider.shutdown()


def test_an_export_of_every_table_decodes_to_what_was_published() -> None:
    tables = Tables()
    fill_tables(
        tables,
        (
            {name: {(("metric", "loss"), ("topic", "t")): 0.5, (): 3} for name in GAUGES},
            {name: {(("kind", "log"),): 7} for name in COUNTERS},
        ),
    )
    metrics, collected = MetricExport(tables, [], interval=3600).collect()
    encoder = encoding.MetricsEncoder(encoding.resource(RESOURCE), encoding.scope(*SCOPE), "https://schema")
    request = ExportMetricsServiceRequest.FromString(encoder.encode(metrics, collected))
    (resource_metrics,) = request.resource_metrics
    assert resource_metrics.schema_url == "https://schema"
    (scope_metrics,) = resource_metrics.scope_metrics
    assert (scope_metrics.scope.name, scope_metrics.scope.version) == SCOPE
    assert [metric.name for metric in scope_metrics.metrics] == [*GAUGES, *COUNTERS]
    described = {name: description for name, (description, _) in tables.counters().items()}
    described |= {name: tables.description(name) for name in GAUGES}
    assert {metric.name: metric.description for metric in scope_metrics.metrics} == described
    gauge = scope_metrics.metrics[0].gauge.data_points
    assert [(point.as_double, point.as_int, len(point.attributes)) for point in gauge] == [
        (0.5, 0, 2),
        (0.0, 3, 0),
    ]
    total = scope_metrics.metrics[-1].sum
    assert (total.aggregation_temporality, total.is_monotonic) == (AggregationTemporality.CUMULATIVE, True)
    assert total.data_points[0].start_time_unix_nano == total.data_points[0].time_unix_nano == collected


def test_a_series_that_leaves_and_comes_back_keeps_its_place_as_in_the_sdk() -> None:
    """An experiment run again: its end time leaves the table at the start and comes back at the end.
    The SDK keeps each series where it first exported it; so does the library."""
    tables = Tables(max_series=100)
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=Resource(RESOURCE), metric_readers=[reader], shutdown_on_exit=False)
    pipeline.register_instruments(provider.get_meter(*SCOPE), tables)
    export = MetricExport(tables, [], interval=3600)
    first, second = (("experiment", "a"),), (("experiment", "b"),)
    steps: list[Any] = [
        lambda: (tables.end_time.set(first, 1.0), tables.end_time.set(second, 2.0)),
        lambda: tables.end_time.values.pop(first),  # "a" runs again
        lambda: tables.end_time.set(first, 3.0),  # and ends: back, after "b" in the table
        lambda: tables.step.set(first, math.nan),  # a series first published non-finite ...
        lambda: (tables.step.set(second, 1.0), tables.step.set(first, 2.0)),  # ... then finite
    ]
    for step in steps:
        step()
        sdk, collected, starts = sdk_export(reader, {})
        assert own_export(export, collected, starts, {}) == sdk
    assert [key for key, _ in tables.end_time.items()] == [second, first]  # the table's own order differs
    provider.shutdown()
