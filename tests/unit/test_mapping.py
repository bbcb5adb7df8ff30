"""The pure translation rules of docs/naming.md."""

from __future__ import annotations

import datetime
import decimal
import enum
import fractions
import logging
import math

import numpy as np
import pytest

from otel_liveview._internal import mapping


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
        (decimal.Decimal("-Infinity"), -math.inf),  # infinite already: passed on as the float ±Inf
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


# -- the rules one by one -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("trace", (1, "TRACE")),
        ("TRACE", (1, "TRACE")),
        ("information", (9, "INFO")),
        ("notice", (10, "INFO2")),
        ("Fatal", (21, "FATAL")),
        (logging.NOTSET, (1, "TRACE")),
        (5, (1, "TRACE")),
        (logging.DEBUG + 5, (5, "DEBUG")),
        (logging.INFO, (9, "INFO")),
        (logging.ERROR, (17, "ERROR")),
        (logging.ERROR + 9, (17, "ERROR")),
        (50, (21, "FATAL")),
    ],
)
def test_every_level_name_and_logging_level_has_its_severity(
    level: str | int, expected: tuple[int, str]
) -> None:
    assert mapping.severity(level) == expected


def test_level_errors_list_every_name_and_name_the_type() -> None:
    names = "critical, debug, error, fatal, info, information, notice, trace, warn, warning"
    with pytest.raises(ValueError) as raised:
        mapping.severity("loud")
    assert str(raised.value) == f"unknown log level 'loud'; use one of {names}"
    with pytest.raises(TypeError) as raised:
        mapping.severity(2.5)  # type: ignore[arg-type]
    assert str(raised.value) == "log level must be a level name or a logging level number, not float"
    with pytest.raises(TypeError, match="not bool"):
        mapping.severity(True)


def test_a_negative_logging_level_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"log level -1 is below logging\.NOTSET \(0\)"):
        mapping.severity(-1)


def test_stream_name_errors_say_stream() -> None:
    assert mapping.stream_name("sensors") == "sensors"
    assert mapping.stream_name("s" * 300) == "s" * mapping.MAX_LABEL_LENGTH
    with pytest.raises(ValueError) as raised:
        mapping.stream_name("")
    assert str(raised.value) == "stream name must not be empty"
    with pytest.raises(TypeError) as raised:
        mapping.stream_name(None)
    assert str(raised.value) == "stream name must be a string, not NoneType"
    with pytest.raises(TypeError) as raised:
        mapping.metric_name(b"loss")
    assert str(raised.value) == "metric name must be a string, not bytes"


def test_metric_value_errors_show_the_value() -> None:
    with pytest.raises(TypeError) as raised:
        mapping.metric_value("loss", "0.5")
    assert str(raised.value) == "metric 'loss': value must be a real number, not str ('0.5')"
    with pytest.raises(TypeError) as raised:
        mapping.metric_value("loss", "x" * 100)
    assert str(raised.value).endswith(f"not str ('{'x' * 56}...)")  # the repr cut to 60 characters


def test_a_value_whose_repr_fails_is_still_a_clear_error() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    with pytest.raises(TypeError) as raised:
        mapping.metric_value("loss", Broken())
    assert str(raised.value) == "metric 'loss': value must be a real number, not Broken (<Broken>)"


def test_numpy_numbers_of_every_kind_are_metric_values() -> None:
    assert mapping.metric_value("m", np.uint8(200)) == 200.0
    assert mapping.metric_value("m", np.array(True)) == 1.0
    assert mapping.metric_value("m", np.array(-3, dtype=np.int16)) == -3.0
    with pytest.raises(TypeError):
        mapping.metric_value("m", np.array("text"))
    with pytest.raises(TypeError):
        mapping.metric_value("m", np.complex128(1 + 2j))


@pytest.mark.parametrize(
    "value",
    [10**400, -(10**400), decimal.Decimal("1e400"), fractions.Fraction(10**400, 3), 2**1024 - 2**970],
)
def test_finite_numbers_beyond_float_range_are_a_value_error(value: object) -> None:
    """Not a silent ±Inf (which fired the NaN/Inf alert for a number that was only large)."""
    with pytest.raises(ValueError, match=r"^metric 'loss': value .* is too large for a float"):
        mapping.metric_value("loss", value)


def test_int_subclasses_are_numbers_and_too_large_ones_an_error() -> None:
    class Big(int):
        pass

    assert mapping.metric_value("m", Big(3)) == 3.0
    with pytest.raises(ValueError, match="too large"):
        mapping.metric_value("m", Big(-(10**400)))


def test_errors_name_the_step_or_epoch_of_the_metric() -> None:
    with pytest.raises(TypeError) as raised:
        mapping.metric_value("m", "abc", "step")
    assert str(raised.value) == "metric 'm': step must be a real number, not str ('abc')"
    with pytest.raises(ValueError, match=r"^metric 'm': epoch 1000.* is too large for a float"):
        mapping.metric_value("m", 10**400, "epoch")


def test_the_same_object_twice_is_not_a_cycle() -> None:
    shared = {"x": 1}
    listed = [1, 2]
    assert mapping.to_body({"a": shared, "b": shared, "c": [listed, listed]}) == {
        "a": {"x": 1},
        "b": {"x": 1},
        "c": [[1, 2], [1, 2]],
    }


def test_a_cycle_through_two_dicts_is_cut_where_it_closes() -> None:
    first: dict[str, object] = {"name": "first"}
    second: dict[str, object] = {"name": "second", "back": first}
    first["next"] = second
    assert mapping.to_body(first) == {"name": "first", "next": {"name": "second", "back": "<cycle>"}}
    looped: list[object] = [1]
    looped.append(looped)
    assert mapping.to_body(looped) == [1, "<cycle>"]


def test_booleans_and_none_in_a_body_stay_what_they_are() -> None:
    body = mapping.to_body(
        {"ok": True, "bad": False, "none": None, "list": [True, False, None], "n": {"t": True}}
    )
    assert body == {"ok": True, "bad": False, "none": None, "list": [True, False, None], "n": {"t": True}}
    assert [type(v) for v in body["list"]] == [bool, bool, type(None)]


def nested(levels: int) -> dict[str, object]:
    """`levels` dicts, each inside the one before; the innermost holds a number."""
    node: dict[str, object] = {"v": 1}
    for _ in range(levels - 1):
        node = {"next": node}
    return node


def test_nesting_is_kept_up_to_the_depth_limit_and_cut_one_below() -> None:
    limit = mapping.MAX_BODY_DEPTH
    assert limit == 32
    assert mapping.to_body(nested(limit)) == nested(limit)
    cut = mapping.to_body(nested(limit + 1))
    for _ in range(limit - 1):
        cut = cut["next"]
    assert cut == {"next": "<too deep>"}
    assert mapping.to_body([[[1]]]) == [[[1]]]


def test_sets_and_tuples_become_lists_and_leaves_convert_inside_them() -> None:
    assert mapping.to_body((1, "a", math.inf)) == [1, "a", "inf"]
    assert mapping.to_body(frozenset([3])) == [3]
    assert mapping.to_body({"t": ({"x": -math.inf},)}) == {"t": [{"x": "-inf"}]}


def test_long_strings_are_cut_inside_lists_too() -> None:
    text = "y" * (mapping.MAX_STRING_LENGTH + 1)
    assert mapping.to_body([text]) == ["y" * mapping.MAX_STRING_LENGTH + mapping.TRUNCATED]
    exact = "z" * mapping.MAX_STRING_LENGTH
    assert mapping.to_body({"s": exact}) == {"s": exact}


def test_the_value_count_limit_is_exact() -> None:
    limit = mapping.MAX_BODY_NODES
    # The list itself is one value: limit - 1 items fit exactly.
    assert mapping.to_body(list(range(limit - 1))) == list(range(limit - 1))
    assert mapping.to_body([0.5] * (limit - 1)) == [0.5] * (limit - 1)
    assert mapping.to_body(["s"] * limit)[-1] == mapping.TRUNCATED
    assert mapping.to_body([0.5] * limit)[-1] == mapping.TRUNCATED
    assert mapping.to_body([0.5] * limit)[-2] == 0.5


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2**63 - 1, 2**63 - 1),
        (2**63, str(2**63)),
        (-(2**63), -(2**63)),
        (-(2**63) - 1, str(-(2**63) - 1)),
        (-(2**70), str(-(2**70))),
    ],
)
def test_ints_beyond_int64_become_text_in_bodies_and_attributes(value: int, expected: object) -> None:
    assert mapping.to_body({"n": value}) == {"n": expected}
    assert mapping.attribute_value(value) == expected
    assert mapping.attribute_value([value, 0]) == (
        [value, 0] if type(expected) is int else str([expected, 0])
    )


def test_numpy_datetime_decimal_and_enum_attribute_values() -> None:
    class Phase(enum.Enum):
        TRAIN = "train"

    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    assert mapping.attributes(
        {
            "f": np.float64(0.5),
            "i": np.int64(-3),
            "b": np.bool_(False),
            "when": when,
            "day": datetime.date(2026, 1, 2),
            "at": datetime.time(3, 4),
            "d": decimal.Decimal("1.25"),
            "q": fractions.Fraction(3, 4),
            "phase": Phase.TRAIN,
            "array": np.array([1, 2]),
            "big": np.uint64(2**64 - 1),
        }
    ) == {
        "f": 0.5,
        "i": -3,
        "b": False,
        "when": "2026-01-02T03:04:05",
        "day": "2026-01-02",
        "at": "03:04:00",
        "d": 1.25,
        "q": 0.75,
        "phase": "train",
        "array": "[1, 2]",
        "big": str(2**64 - 1),
    }
    assert [type(v) for v in mapping.attributes({"f": np.float32(1), "i": np.int8(1)}).values()] == [
        float,
        int,
    ]


def test_attribute_values_are_cut_and_arrays_hold_one_primitive_type() -> None:
    assert mapping.attribute_value("a" * (mapping.MAX_STRING_LENGTH + 5)) == "a" * mapping.MAX_STRING_LENGTH
    assert mapping.attribute_value([True, False]) == [True, False]
    assert mapping.attribute_value((0.5, 1.5)) == [0.5, 1.5]
    assert mapping.attribute_value([1, True]) == "[1, True]"  # bool is not int here
    assert mapping.attribute_value([1, 2.0]) == "[1, 2.0]"
    assert mapping.attribute_value([b"x"]) == "[b'x']"
    assert mapping.attribute_value([]) == "[]"
    assert mapping.attribute_value(None) == "None"
    assert mapping.attribute_value(math.nan) != mapping.attribute_value(math.nan)  # floats as they are
    long = {"k": "v" * (mapping.MAX_STRING_LENGTH + 10)}
    assert len(mapping.attribute_value(long)) == mapping.MAX_STRING_LENGTH


def test_attribute_keys_are_stripped_cut_and_never_empty() -> None:
    assert mapping.attribute_key("  ") == "_"
    assert mapping.attribute_key(" k " * 200) == (" k " * 200).strip()[: mapping.MAX_LABEL_LENGTH]
    assert mapping.attribute_key(None) == "None"
    assert mapping.attribute_key(("a", 1)) == "('a', 1)"
    for _ in range(2):  # a key seen before gives the same answer
        assert mapping.attribute_key(" phase ") == "phase"


def test_labels_are_cut_and_only_str_and_bool_are_labels() -> None:
    assert mapping.label_value(False) == "false"
    assert mapping.label_value("x" * 300) == "x" * mapping.MAX_LABEL_LENGTH
    assert [mapping.is_label(v) for v in ("s", True, 1, 1.0, None, np.str_("s"))] == [
        True,
        True,
        False,
        False,
        False,
        False,
    ]


def test_numeric_leaves_of_a_converted_body() -> None:
    body = mapping.to_body({"f": 0.5, "i": -2, "no": False, "inf": math.inf, "d": {}, "e": {"z": 0}})
    assert list(mapping.body_leaves(body)) == [("f", 0.5), ("i", -2.0), ("no", 0.0), ("e.z", 0.0)]
    assert [type(value) for _, value in mapping.body_leaves(body)] == [float] * 4
    assert list(mapping.body_leaves({"a": {"b": {"c": 1}}}, "top.")) == [("top.a.b.c", 1.0)]
