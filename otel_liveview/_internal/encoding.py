"""Records and metric points -> OTLP protobuf, built in place.

The export thread turns each queued publish call into a record (`events.build`) and writes it
straight into the `ExportLogsServiceRequest` it is filling, skipping the SDK's per-record
`LogRecord`, `BoundedAttributes` and its encoder's copies. A metric export is written from the
tables' points (`MetricsEncoder`), skipping the SDK's instruments, aggregations and data points.
What lands on the wire is what the SDK's encoder writes for the same records and points.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
from opentelemetry.proto.metrics.v1.metrics_pb2 import NumberDataPoint
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from otel_liveview._internal.records import Record
from otel_liveview._internal.tables import Key

DEFAULT_ATTRIBUTE_LIMIT = 128  # OTEL_ATTRIBUTE_COUNT_LIMIT's default, as the SDK applies it

# One element of an ArrayValue holding a double, as protobuf writes it: field 1 (values), 9 bytes
# long, holding AnyValue field 4 (double_value, fixed64) and then the 8 bytes of the double.
_DOUBLE_ELEMENT = b"\x0a\x09\x21"


class Doubles(tuple[float, ...]):
    """A column of floats: encoded as an OTLP array of doubles in one step rather than a message per
    element (the same bytes). Anything that takes a tuple takes it, the SDK's encoder included."""

    __slots__ = ()


def _pack(values: Doubles) -> bytes:
    fields: list[Any] = [_DOUBLE_ELEMENT, 0.0] * len(values)
    fields[1::2] = values
    return struct.pack("<" + "3sd" * len(values), *fields)


# A map of floats (a sensor sample) is encoded in one step too: per key order, the bytes before each
# value are fixed (KeyValueList entry, KeyValue key, AnyValue double tag), so one struct packs them all.
_FLOAT_MAPS: dict[tuple[str, ...], tuple[struct.Struct, list[bytes]]] = {}
_MAX_FLOAT_MAPS = 1_000  # key orders remembered; beyond that, maps are encoded entry by entry


def _varint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _entry_prefix(key: str) -> bytes:
    """What precedes the 8 bytes of the double in KeyValueList.values[i] = {key, {double_value}}."""
    encoded = key.encode()
    key_value = b"\x0a" + _varint(len(encoded)) + encoded + b"\x12\x09\x21"
    return b"\x0a" + _varint(len(key_value) + 8) + key_value


def _pack_float_map(value: Mapping[str, float]) -> bytes | None:
    keys = tuple(value)
    known = _FLOAT_MAPS.get(keys)
    if known is None:
        if len(_FLOAT_MAPS) >= _MAX_FLOAT_MAPS or not all(type(key) is str and key for key in keys):
            return None
        prefixes = [_entry_prefix(key) for key in keys]
        known = _FLOAT_MAPS[keys] = (struct.Struct("<" + "".join(f"{len(p)}sd" for p in prefixes)), prefixes)
    packer, prefixes = known
    fields: list[Any] = [b"", 0.0] * len(keys)
    fields[0::2] = prefixes
    fields[1::2] = value.values()
    return packer.pack(*fields)


def fill(target: AnyValue, value: Any) -> None:
    """Write `value` (what `mapping.to_body` / `mapping.attributes` produce) into `target`."""
    kind = type(value)
    if kind is str:
        target.string_value = value
    elif kind is float:
        target.double_value = value
    elif kind is bool:
        target.bool_value = value
    elif kind is int:
        target.int_value = value
    elif isinstance(value, Mapping):
        target.kvlist_value.SetInParent()  # an empty map is still a map
        if value and all(type(item) is float for item in value.values()):
            packed = _pack_float_map(value)
            if packed is not None:
                target.kvlist_value.MergeFromString(packed)
                return
        entries = target.kvlist_value.values
        for key, item in value.items():
            entry = entries.add(key=str(key))
            if type(item) is float:  # the common leaves inline: a call per value costs as much
                entry.value.double_value = item
            elif type(item) is str:
                entry.value.string_value = item
            else:
                fill(entry.value, item)
    elif kind is Doubles:
        target.array_value.SetInParent()
        target.array_value.MergeFromString(_pack(value))
    elif kind is list or kind is tuple:
        values = target.array_value.values
        target.array_value.SetInParent()
        for item in value:
            fill(values.add(), item)
    elif kind is bytes:
        target.bytes_value = value
    elif value is None:
        target.SetInParent()  # present and empty, as the SDK encodes None
    else:
        raise TypeError(f"cannot encode {kind.__name__} as an OTLP value")


def resource(attributes: Mapping[str, Any]) -> Resource:
    message = Resource()
    entries = message.attributes
    for key, value in attributes.items():
        entry = entries.add()
        entry.key = key
        fill(entry.value, value)
    return message


def scope(name: str, version: str) -> InstrumentationScope:
    return InstrumentationScope(name=name, version=version)


class LogBatch:
    """One ExportLogsServiceRequest being filled, and how many records of each kind it holds."""

    __slots__ = ("_records", "attribute_limit", "kinds", "request")

    def __init__(self, resource: Resource, scope: InstrumentationScope, attribute_limit: int) -> None:
        self.request = ExportLogsServiceRequest()
        scope_logs = self.request.resource_logs.add(resource=resource).scope_logs.add(scope=scope)
        self._records = scope_logs.log_records
        self.attribute_limit = attribute_limit
        self.kinds: dict[str, int] = {}

    def add(self, record: Record, kind: str, observed: int, calls: int = 1) -> None:
        """Append one record (the keyword arguments `Logger.emit` would take) that stands for
        `calls` publish calls of `kind`."""
        message = self._records.add()
        message.time_unix_nano = record["timestamp"]
        message.observed_time_unix_nano = observed
        severity = record.get("severity_number")
        if severity is not None:
            message.severity_number = severity.value  # the SDK's SeverityNumber, as Logger.emit takes it
        text = record.get("severity_text")
        if text:
            message.severity_text = text
        name = record.get("event_name")
        if name:
            message.event_name = name
        fill(message.body, record.get("body"))
        attributes = record.get("attributes")
        if attributes:
            pairs: Iterable[tuple[str, Any]] = attributes.items()
            if len(attributes) > self.attribute_limit:
                # Keep the last ones, as the SDK does: the library's own (topic, event_name) come last.
                message.dropped_attributes_count = len(attributes) - self.attribute_limit
                pairs = list(pairs)[-self.attribute_limit :]
            entries = message.attributes
            for key, value in pairs:
                entry = entries.add(key=key)
                if type(value) is str:
                    entry.value.string_value = value
                else:
                    fill(entry.value, value)
        self.kinds[kind] = self.kinds.get(kind, 0) + calls

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> Any:
        return self._records


# -- metrics ---------------------------------------------------------------------------------------
#
# A metric export is written as bytes, field by field in the order protobuf writes them, so the bytes
# are the SDK encoder's for the same points. Per point only the value changes from one export to the
# next: each attribute set's encoded attributes are kept (as many as the tables hold series: they
# never forget one).

_FIXED64 = struct.Struct("<Q")
_DOUBLE = struct.Struct("<d")
_INT64 = struct.Struct("<q")
_CUMULATIVE_MONOTONIC = b"\x10\x02\x18\x01"  # Sum.aggregation_temporality = CUMULATIVE, is_monotonic


class MetricPoints(NamedTuple):
    """One metric of an export: its points, and for a cumulative monotonic sum each series' start."""

    name: str
    description: str
    points: Sequence[tuple[Key, float]]  # (attribute set, value)
    starts: Mapping[Key, int] | None = None  # start_time_unix_nano per series; None: a gauge


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


class MetricsEncoder:
    """Points -> the bytes of one ExportMetricsServiceRequest with one resource and one scope."""

    def __init__(
        self,
        resource: Resource,
        scope: InstrumentationScope,
        schema_url: str = "",
        *,
        identity: Mapping[str, str] | None = None,
    ) -> None:
        self._identity = dict(identity or {})  # on every point, after its own attributes
        self._resource = _field(b"\x0a", resource.SerializeToString())
        self._resource_schema = _field(b"\x1a", schema_url.encode()) if schema_url else b""
        self._scope = _field(b"\x0a", scope.SerializeToString())
        # attribute set -> (a gauge point's tag and length, its encoded attributes)
        self._attributes: dict[Key, tuple[bytes, bytes]] = {}

    def encode(self, metrics: Sequence[MetricPoints], time_unix_nano: int) -> bytes:
        """The request for `metrics` collected at `time_unix_nano` (every point's time)."""
        time = _FIXED64.pack(time_unix_nano)
        scope_metrics = self._scope + b"".join(
            _field(b"\x12", self._metric(metric, time)) for metric in metrics
        )
        resource_metrics = self._resource + _field(b"\x12", scope_metrics) + self._resource_schema
        return _field(b"\x0a", resource_metrics)

    def _metric(self, metric: MetricPoints, time: bytes) -> bytes:
        head = _field(b"\x0a", metric.name.encode())
        if metric.description:
            head += _field(b"\x12", metric.description.encode())
        if metric.starts is None:
            return head + _field(b"\x2a", self._gauge_points(metric.points, time))  # Metric.gauge
        points = self._sum_points(metric.points, metric.starts, time)
        return head + _field(b"\x3a", points + _CUMULATIVE_MONOTONIC)  # Metric.sum

    def _gauge_points(self, points: Sequence[tuple[Key, float]], time: bytes) -> bytes:
        # NumberDataPoint: time_unix_nano (3, fixed64), as_double (4) or as_int (6), attributes (7).
        as_double, as_int = b"\x19" + time + b"\x21", b"\x19" + time + b"\x31"
        known, pack = self._attributes, _DOUBLE.pack
        parts: list[bytes] = []
        extend = parts.extend
        for key, value in points:
            cached = known.get(key) or self._learn(key)
            if type(value) is float:
                extend((cached[0], as_double, pack(value), cached[1]))
            else:
                extend((cached[0], *_time_and_value(value, as_double, as_int), cached[1]))
        return b"".join(parts)

    def _sum_points(
        self, points: Sequence[tuple[Key, float]], starts: Mapping[Key, int], time: bytes
    ) -> bytes:
        # The same with start_time_unix_nano (2, fixed64) first.
        as_double, as_int = b"\x19" + time + b"\x21", b"\x19" + time + b"\x31"
        parts = []
        for key, value in points:
            attributes = (self._attributes.get(key) or self._learn(key))[1]
            start = b"\x11" + _FIXED64.pack(starts[key]) if starts[key] else b""
            body = b"".join((start, *_time_and_value(value, as_double, as_int), attributes))
            parts.append(_field(b"\x0a", body))  # Sum.data_points
        return b"".join(parts)

    def _learn(self, key: Key) -> tuple[bytes, bytes]:
        point = NumberDataPoint()
        for name, value in (*((n, v) for n, v in key if n not in self._identity), *self._identity.items()):
            fill(point.attributes.add(key=name).value, value)
        attributes = point.SerializeToString()
        # Gauge.data_points (1): time (9 bytes), value (9 bytes), attributes.
        known = self._attributes[key] = (b"\x0a" + _varint(18 + len(attributes)), attributes)
        return known


def _time_and_value(value: Any, as_double: bytes, as_int: bytes) -> tuple[bytes, bytes]:
    """A point's time and value fields (`as_double` and `as_int` carry the time and the value's tag)
    for any number: an int goes as as_int, as the SDK's encoder writes it."""
    if type(value) is float:
        return as_double, _DOUBLE.pack(value)
    if isinstance(value, int):
        return as_int, _INT64.pack(value)
    return as_double, _DOUBLE.pack(float(value))
