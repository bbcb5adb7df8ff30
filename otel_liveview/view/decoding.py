"""OTLP values as Python values and the text the panels show for them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import NumberDataPoint

MAX_TEXT = 300  # characters of a log body or a data value kept for display
MAX_DEPTH = 32  # levels of a nested value decoded; deeper is shown as "<too deep>"


def decode_any(value: AnyValue, depth: int = 0) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if depth > MAX_DEPTH:
        return "<too deep>"
    if kind == "kvlist_value":
        return {kv.key: decode_any(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if kind == "array_value":
        return [decode_any(v, depth + 1) for v in value.array_value.values]
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def decode_attributes(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: decode_any(kv.value) for kv in attributes}


def point_value(point: NumberDataPoint) -> float:
    return float(point.as_double if point.WhichOneof("value") == "as_double" else point.as_int)


def label_text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return value if isinstance(value, str) else str(value)


def short_text(value: Any) -> str:
    text = label_text(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def severity_name(number: int, text: str = "") -> str:
    """The severity text if the record has one, else the name the OTLP number range stands for."""
    if text:
        return text.upper()
    if number <= 0:
        return "UNSET"
    return ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")[min(5, (number - 1) // 4)]


__all__ = [
    "MAX_TEXT",
    "as_int",
    "decode_any",
    "decode_attributes",
    "label_text",
    "point_value",
    "severity_name",
    "short_text",
]
