"""Records -> OTLP protobuf messages, built in place.

The export thread turns each queued publish call into a record (`events.build`) and writes it
straight into the `ExportLogsServiceRequest` it is filling, skipping the SDK's per-record
`LogRecord`, `BoundedAttributes` and its encoder's copies. What lands on the wire is what the SDK's
encoder writes for the same record.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

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

    def add(self, record: Mapping[str, Any], kind: str, observed: int, calls: int = 1) -> None:
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
            pairs = attributes.items()
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
