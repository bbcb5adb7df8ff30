"""The translation rules of docs/naming.md, free of OpenTelemetry objects.

Everything here is a pure function of its arguments: metric values, severities, label values,
data bodies and the numeric leaves of a data stream.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import fractions
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

# OpenTelemetry severity numbers (logs data model) and the short texts Loki maps to detected_level.
SEVERITIES: dict[str, tuple[int, str]] = {
    "trace": (1, "TRACE"),
    "debug": (5, "DEBUG"),
    "info": (9, "INFO"),
    "information": (9, "INFO"),
    "notice": (10, "INFO2"),
    "warning": (13, "WARN"),
    "warn": (13, "WARN"),
    "error": (17, "ERROR"),
    "critical": (21, "FATAL"),
    "fatal": (21, "FATAL"),
}
# Python logging levels (DEBUG=10 ... CRITICAL=50) mapped onto the same scale.
_PY_LEVELS = ((50, "critical"), (40, "error"), (30, "warning"), (20, "info"), (10, "debug"), (0, "trace"))

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_LABEL_LENGTH = 256
MAX_STRING_LENGTH = 64 * 1024
MAX_BODY_DEPTH = 32
MAX_BODY_NODES = 10_000
TRUNCATED = "…[truncated]"


def severity(level: str | int) -> tuple[int, str]:
    """(severity number, severity text) for a level name (case-insensitive) or a `logging` level."""
    if isinstance(level, str):
        found = SEVERITIES.get(level.lower())
        if found is None:
            raise ValueError(f"unknown log level {level!r}; use one of {', '.join(sorted(SEVERITIES))}")
        return found
    if isinstance(level, int) and not isinstance(level, bool):
        if level < 0:
            raise ValueError(f"log level {level} is below logging.NOTSET (0)")
        return SEVERITIES[next(name for floor, name in _PY_LEVELS if level >= floor)]
    raise TypeError(f"log level must be a level name or a logging level number, not {type(level).__name__}")


def metric_value(name: str, value: Any, field: str = "value") -> float:
    """The float a metric's value (or its `field`: "step", "epoch") stands for; an error naming both.

    bool -> 0/1; int and float as they are; numpy scalars and 0-d arrays, Decimal and Fraction are
    numbers. NaN and ±Inf are returned as they are: the caller decides what to do with them. Not a
    number: TypeError; a finite number beyond float range (10**400): ValueError, never a silent ±Inf.
    """
    kind = type(value)
    if kind is float:
        return float(value)
    try:
        if kind is int or kind is bool:
            return float(value)
        if isinstance(value, (int, float, fractions.Fraction)):
            return float(value)
        if isinstance(value, decimal.Decimal):
            return _decimal_to_float(value)
        if hasattr(value, "dtype") and getattr(value, "shape", None) == () and value.dtype.kind in "biuf":
            return float(value)
    except OverflowError:
        raise ValueError(
            f"metric {name!r}: {field} {_short_repr(value)} is too large for a float (beyond ±1.8e308)"
        ) from None
    raise TypeError(
        f"metric {name!r}: {field} must be a real number, not {kind.__name__} ({_short_repr(value)})"
    )


def _decimal_to_float(value: decimal.Decimal) -> float:
    number = float(value)
    if math.isinf(number) and value.is_finite():  # float() rounds a huge Decimal to ±inf silently
        raise OverflowError
    return number


def nonfinite_label(value: float) -> str:
    """The `value` label of liveview.metric.nonfinite for a non-finite float."""
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def _checked_name(kind: str, name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be a string, not {type(name).__name__}")
    if not name:
        raise ValueError(f"{kind} name must not be empty")
    return name[:MAX_LABEL_LENGTH]


def metric_name(name: Any) -> str:
    """A published metric name, checked: a non-empty string, cut to a sane label length."""
    return _checked_name("metric", name)


def stream_name(name: Any) -> str:
    """A data stream name, checked like a metric name."""
    return _checked_name("stream", name)


def attribute_key(key: Any) -> str:
    """Attribute keys are sanitized, never rejected: any key becomes a non-empty string."""
    if type(key) is str:
        known = _KEYS.get(key)
        if known is not None:  # the same few keys come back in every sample
            return known
    text = key if isinstance(key, str) else str(key)
    text = text.strip()[:MAX_LABEL_LENGTH] or "_"
    if type(key) is str and len(_KEYS) < _MAX_CACHED_KEYS:
        _KEYS[key] = text
    return text


_KEYS: dict[str, str] = {}
_MAX_CACHED_KEYS = 10_000


def label_value(value: str | bool) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return value[:MAX_LABEL_LENGTH]


def is_label(value: Any) -> bool:
    """Low-cardinality keyword arguments (str, bool) become metric labels; the rest stay in events."""
    return type(value) is str or type(value) is bool


def attribute_value(value: Any) -> Any:
    """A value OpenTelemetry accepts as an attribute: primitives as they are, the rest as text."""
    kind = type(value)
    if kind is str:
        return value[:MAX_STRING_LENGTH]
    if kind is bool or kind is float:
        return value
    if kind is int:
        return value if INT64_MIN <= value <= INT64_MAX else str(value)
    if isinstance(value, (list, tuple)) and value and _homogeneous_primitives(value):
        return list(value)
    converted = to_body(value)
    if isinstance(converted, (str, bool, int, float)):
        return converted
    return str(converted)[:MAX_STRING_LENGTH]


def _homogeneous_primitives(values: list[Any] | tuple[Any, ...]) -> bool:
    """OTel attribute arrays hold one primitive type, ints within int64 (else the array is text)."""
    kinds = {type(v) for v in values}
    if kinds == {int}:
        return all(INT64_MIN <= v <= INT64_MAX for v in values)
    return len(kinds) == 1 and kinds <= {str, bool, float}


def attributes(values: Mapping[Any, Any]) -> dict[str, Any]:
    return {attribute_key(k): attribute_value(v) for k, v in values.items()}


def to_body(value: Any) -> Any:
    """Convert a payload to what an OTel AnyValue holds: maps, lists, str, bool, int, float, bytes.

    datetime -> ISO 8601; numpy arrays -> lists, numpy scalars -> numbers; Decimal/Fraction -> float;
    other objects -> str(). Cycles become "<cycle>", nesting deeper than MAX_BODY_DEPTH becomes
    "<too deep>", strings are cut at MAX_STRING_LENGTH and bodies at MAX_BODY_NODES values.
    """
    return _BodyConverter().convert(value, 0)


class _BodyConverter:
    __slots__ = ("nodes", "stack")

    def __init__(self) -> None:
        self.nodes = 0
        self.stack: set[int] = set()

    def convert(self, value: Any, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_BODY_NODES:
            return TRUNCATED
        kind = type(value)
        if kind is str:
            return value if len(value) <= MAX_STRING_LENGTH else value[:MAX_STRING_LENGTH] + TRUNCATED
        if kind is float:
            return value if math.isfinite(value) else nonfinite_label(value)  # JSON has no NaN
        if kind is bool or value is None:
            return value
        if kind is int:
            return value if INT64_MIN <= value <= INT64_MAX else str(value)
        if isinstance(value, (Mapping, list, tuple, set, frozenset)):
            return self._container(value, depth)
        if isinstance(value, (bytes, bytearray)):
            return bytes(value[:MAX_STRING_LENGTH])
        if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
            return value.isoformat()
        if isinstance(value, enum.Enum):
            return self.convert(value.value, depth)
        if isinstance(value, (decimal.Decimal, fractions.Fraction)):
            return float(value)
        if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy arrays and scalars
            return self.convert(value.tolist(), depth)
        if isinstance(value, (int, float)):  # int/float subclasses
            return self.convert(int(value) if isinstance(value, int) else float(value), depth)
        return self.convert(str(value), depth)

    def _convert_leaf(self, value: Any, depth: int) -> Any:
        """`convert`, with the common leaves (finite floats, short strings) done inline."""
        kind = type(value)
        if (kind is float and value - value == 0.0) or (kind is str and len(value) <= MAX_STRING_LENGTH):
            self.nodes += 1
            return value if self.nodes <= MAX_BODY_NODES else TRUNCATED
        return self.convert(value, depth)

    def _container(self, value: Any, depth: int) -> Any:
        if depth >= MAX_BODY_DEPTH:
            return "<too deep>"
        marker = id(value)
        if marker in self.stack:
            return "<cycle>"
        self.stack.add(marker)
        try:
            convert = self._convert_leaf
            if isinstance(value, Mapping):
                return {attribute_key(k): convert(v, depth + 1) for k, v in value.items()}
            return [convert(v, depth + 1) for v in value]
        finally:
            self.stack.discard(marker)


def body_leaves(body: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """`numeric_leaves` of a body `to_body` already converted: keys are clean, numbers are numbers,
    cycles and depth are cut, so the walk needs no checks of its own."""
    for key, value in body.items():
        kind = type(value)
        if kind is float:
            if value - value == 0.0:  # finite (NaN and ±Inf are text in a converted body anyway)
                yield prefix + key, value
        elif kind is int:
            yield prefix + key, float(value)
        elif kind is bool:
            yield prefix + key, 1.0 if value else 0.0
        elif kind is dict:
            yield from body_leaves(value, prefix + key + ".")


MAX_INFO_KEYS = 64
RESERVED_INFO_KEYS = frozenset(("experiment", "topic", "job", "instance"))  # the info series' own labels


def info_labels(info: Mapping[Any, Any]) -> dict[str, str]:
    """An experiment's info keywords as label values: nested dicts (and dataclasses) flattened to
    dotted keys, every value as text, the first MAX_INFO_KEYS keys. A key that is one of the info
    series' own labels gets an `info_` prefix."""
    labels: dict[str, str] = {}
    for key, value in leaves(to_body(_plain(info))):
        if len(labels) == MAX_INFO_KEYS:
            break
        key = f"info_{key}" if key in RESERVED_INFO_KEYS else key
        labels[key] = _text(value)[:MAX_LABEL_LENGTH]
    return labels


def _plain(value: Any) -> Any:
    """A dataclass instance as its fields (to_body would make it a string)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


def leaves(body: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every leaf of a nested body under its dotted key ("a.b"), an empty dict being a leaf: the keys
    of liveview.experiment.info, and of a data stream in the terminal view. `body_leaves` is its
    numeric half, on the publish path."""
    for key, value in body.items():
        if isinstance(value, dict) and value:
            yield from leaves(value, prefix + key + ".")
        else:
            yield prefix + key, value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), default=str)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."
