"""Settings' rules (otel_liveview/_internal/config.py) that test_config.py leaves out: the command
line's durations, the message for several unknown exporters, and timeouts under a millisecond."""

from __future__ import annotations

import argparse
import math

import pytest

from otel_liveview._internal import config


@pytest.mark.parametrize(("text", "seconds"), [("1", 1.0), ("0.25", 0.25), (" 2.5 ", 2.5), ("1e3", 1000.0)])
def test_a_command_line_duration_is_a_positive_number_of_seconds(text: str, seconds: float) -> None:
    assert config.positive_seconds(text) == seconds


@pytest.mark.parametrize("text", ["0", "-1", "abc", "", "nan", "inf", "-inf"])
def test_anything_else_is_an_argparse_error_naming_it(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as error:
        config.positive_seconds(text)
    assert str(error.value) == f"{text!r} is not a positive number of seconds"


def test_every_unknown_exporter_is_named() -> None:
    with pytest.raises(ValueError) as error:
        config.exporter_list("otlp, zipkin,jaeger", "OTEL_LOGS_EXPORTER")
    assert str(error.value) == (
        "OTEL_LOGS_EXPORTER names unknown exporter(s) zipkin, jaeger (use otlp, console, none)"
    )


def test_a_timeout_under_a_millisecond_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "0.5")
    timeout = config.export_timeout("logs")
    assert timeout is not None and math.isclose(timeout, 0.0005)
