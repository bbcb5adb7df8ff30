"""The pure translation rules of docs/naming.md."""

from __future__ import annotations

import datetime
import decimal
import fractions
import logging
import math

import numpy as np
import pytest

from otel_liveview import mapping


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("debug", (5, "DEBUG")),
        ("INFO", (9, "INFO")),
        ("Warning", (13, "WARN")),
        ("warn", (13, "WARN")),
        ("error", (17, "ERROR")),
        ("critical", (21, "FATAL")),
        ("FATAL", (21, "FATAL")),
        (logging.WARNING, (13, "WARN")),
        (logging.DEBUG, (5, "DEBUG")),
        (logging.CRITICAL + 5, (21, "FATAL")),
    ],
)
def test_severity(level: str | int, expected: tuple[int, str]) -> None:
    assert mapping.severity(level) == expected


def test_unknown_level_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown log level 'loud'.*warning"):
        mapping.severity("loud")
    with pytest.raises(TypeError, match="level name"):
        mapping.severity(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, 1.0),
        (False, 0.0),
        (3, 3.0),
        (0.25, 0.25),
        (np.float32(0.5), 0.5),
        (np.int64(7), 7.0),
        (np.bool_(True), 1.0),
        (np.array(2.5), 2.5),
        (decimal.Decimal("1.5"), 1.5),
        (fractions.Fraction(1, 4), 0.25),
        (10**400, math.inf),
        (-(10**400), -math.inf),
    ],
)
def test_metric_values(value: object, expected: float) -> None:
    assert mapping.metric_value("loss", value) == expected


@pytest.mark.parametrize("value", ["0.5", None, [1.0], {"a": 1}, 1j, np.array([1.0, 2.0]), object()])
def test_non_numbers_are_a_type_error_naming_the_metric(value: object) -> None:
    with pytest.raises(TypeError, match="metric 'loss'"):
        mapping.metric_value("loss", value)


def test_non_finite_values_pass_through_and_get_their_label() -> None:
    assert math.isnan(mapping.metric_value("m", float("nan")))
    assert [mapping.nonfinite_label(v) for v in (math.nan, math.inf, -math.inf)] == ["nan", "inf", "-inf"]


def test_body_conversion() -> None:
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    body = mapping.to_body(
        {
            "when": when,
            "array": np.arange(3),
            "scalar": np.float64(0.5),
            "nested": {"deep": (1, 2)},
            3: "int key",
            "nan": math.nan,
            "big": 2**70,
            "object": object.__new__(type("Thing", (), {"__str__": lambda self: "a thing"})),
            "none": None,
        }
    )
    assert body == {
        "when": "2026-01-02T03:04:05+00:00",
        "array": [0, 1, 2],
        "scalar": 0.5,
        "nested": {"deep": [1, 2]},
        "3": "int key",
        "nan": "nan",
        "big": str(2**70),
        "object": "a thing",
        "none": None,
    }


def test_cycles_depth_and_size_are_bounded() -> None:
    cyclic: dict[str, object] = {"a": 1}
    cyclic["self"] = cyclic
    assert mapping.to_body(cyclic) == {"a": 1, "self": "<cycle>"}

    deep: dict[str, object] = {}
    node = deep
    for _ in range(100):
        node["next"] = {}
        node = node["next"]  # type: ignore[assignment]
    flat = mapping.to_body(deep)
    depth = 0
    while isinstance(flat, dict):
        flat = flat["next"]
        depth += 1
    assert flat == "<too deep>" and depth == mapping.MAX_BODY_DEPTH

    huge = mapping.to_body({"text": "x" * (10 * 1024 * 1024)})
    assert len(huge["text"]) == mapping.MAX_STRING_LENGTH + len(mapping.TRUNCATED)
    many = mapping.to_body(list(range(mapping.MAX_BODY_NODES * 2)))
    assert many[-1] == mapping.TRUNCATED and len(many) == mapping.MAX_BODY_NODES * 2


def test_numeric_leaves_are_dotted_and_skip_lists_and_text() -> None:
    data = {"a": 1, "b": {"c": 2.5, "d": {"e": True}}, "s": "text", "l": [1, 2], "n": math.nan, 7: 3}
    leaves = dict(mapping.body_leaves(mapping.to_body(data)))
    assert leaves == {"a": 1.0, "b.c": 2.5, "b.d.e": 1.0, "7": 3.0}


def test_attribute_keys_and_values_are_sanitized_not_rejected() -> None:
    assert mapping.attributes({"": 1, " x ": "y", 5: None, "flag": True, "huge": 2**80}) == {
        "_": 1,
        "x": "y",
        "5": "None",
        "flag": True,
        "huge": str(2**80),
    }
    assert mapping.label_value(True) == "true"
    assert len(mapping.label_value("é" * 1000)) == mapping.MAX_LABEL_LENGTH


def test_names() -> None:
    assert mapping.metric_name("train loss.v2") == "train loss.v2"
    assert len(mapping.metric_name("n" * 5000)) == mapping.MAX_LABEL_LENGTH
    with pytest.raises(ValueError, match="must not be empty"):
        mapping.metric_name("")
    with pytest.raises(TypeError, match="must be a string"):
        mapping.stream_name(3)


def test_attribute_arrays_must_be_homogeneous_primitives() -> None:
    assert mapping.attribute_value(["a", "b"]) == ["a", "b"]
    assert mapping.attribute_value((1, 2)) == [1, 2]
    assert mapping.attribute_value([1.0, "a"]) == "[1.0, 'a']"
    assert mapping.attribute_value({"a": 1}) == "{'a': 1}"
