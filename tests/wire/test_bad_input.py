"""Bad input gets a clear error or a documented conversion, and the next good publish still works.

One publisher process tries every kind of bad input against the real exporters; the test checks
what it raised and what reached the wire.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support import ROOT
from tests.support.processes import publisher_env, run_python
from tests.support.receiver import Receiver, serving_http

SCRIPT = r"""
import collections, decimal, json, math, sys
import numpy as np
import otel_liveview

b = otel_liveview.ExperimentBroadcaster("bad:input")
outcomes = {}

def attempt(label, call):
    try:
        call()
        outcomes[label] = "ok"
    except Exception as error:
        outcomes[label] = f"{type(error).__name__}: {error}"
    b.publish_metric_sync("good", len(outcomes))  # the next good publish, after every bad one

for label, value in [("str", "0.5"), ("none", None), ("list", [1.0]), ("complex", 1j)]:
    attempt(f"value {label}", lambda: b.publish_metric_sync("loss", value))
attempt("value huge int", lambda: b.publish_metric_sync("v huge int", 10**400))
attempt("step str", lambda: b.publish_metric_sync("m", 1.0, step="abc"))
for label, value in [("decimal", decimal.Decimal("0.25")), ("nan", math.nan),
                     ("inf", math.inf), ("-inf", -math.inf), ("numpy float", np.float32(0.5)),
                     ("numpy int", np.int64(3)), ("numpy 0-d", np.array(1.5)), ("bool", True)]:
    attempt(f"value {label}", lambda: b.publish_metric_sync(f"v {label}", value))
for label, name in [("empty", ""), ("not a string", 3)]:
    attempt(f"name {label}", lambda: b.publish_metric_sync(name, 1.0))
for label, name in [("non-ascii", "Verlust/λ"), ("long", "n" * 5000), ("spaces and dots", "train loss.v2")]:
    attempt(f"name {label}", lambda: b.publish_metric_sync(name, 2.0))
attempt("level unknown", lambda: b.publish_log_sync("loud", "x"))
attempt("level none", lambda: b.publish_log_sync(None, "x"))
attempt("data not a dict", lambda: b.publish_data_sync("s", [1, 2]))
attempt("stream empty", lambda: b.publish_data_sync("", {"a": 1}))
deep = {}
node = deep
for _ in range(100):
    node["next"] = {"v": 1}
    node = node["next"]
attempt("data 100 deep", lambda: b.publish_data_sync("deep", deep))
cyclic = {"a": 1}
cyclic["self"] = cyclic
attempt("data cyclic", lambda: b.publish_data_sync("cyclic", cyclic))
attempt("data 10 MB", lambda: b.publish_data_sync("big", {"blob": "x" * (10 * 1024 * 1024), "n": 1}))
attempt("data non-string keys", lambda: b.publish_data_sync("keys", {1: 2.0, (3, 4): "t", None: 5}))
attempt("log object message", lambda: b.publish_log_sync("info", {"not": "a string"}, obj=object()))
b.publish_log_sync("info", "the last good log")
print(json.dumps({"outcomes": outcomes, "flushed": otel_liveview.flush(20), **otel_liveview.stats()}))
"""


@pytest.fixture(scope="module")
def wire() -> Iterator[tuple[dict, Receiver]]:
    with serving_http() as receiver:
        stdout = run_python(SCRIPT, publisher_env(receiver.endpoint, OTEL_METRIC_EXPORT_INTERVAL="200"))
        yield json.loads(stdout.strip().splitlines()[-1]), receiver


@pytest.mark.parametrize(
    ("label", "error"),
    [
        ("value str", "TypeError: metric 'loss': value must be a real number, not str"),
        ("value none", "TypeError: metric 'loss': value must be a real number, not NoneType"),
        ("value list", "TypeError: metric 'loss': value must be a real number, not list"),
        ("value complex", "TypeError: metric 'loss': value must be a real number, not complex"),
        ("value huge int", "ValueError: metric 'v huge int': value 10000000000"),
        ("step str", "TypeError: metric 'm': step must be a real number, not str ('abc')"),
        ("name empty", "ValueError: metric name must not be empty"),
        ("name not a string", "TypeError: metric name must be a string, not int"),
        ("level unknown", "ValueError: unknown log level 'loud'"),
        ("level none", "TypeError: log level must be a level name or a logging level number"),
        ("data not a dict", "TypeError: data for stream 's' must be a dict, not list"),
        ("stream empty", "ValueError: stream name must not be empty"),
    ],
)
def test_bad_input_raises_a_clear_error(wire: tuple[dict, Receiver], label: str, error: str) -> None:
    assert wire[0]["outcomes"][label].startswith(error)


def test_conversions_are_accepted(wire: tuple[dict, Receiver]) -> None:
    outcomes = wire[0]["outcomes"]
    for label in (
        "decimal",
        "nan",
        "inf",
        "-inf",
        "numpy float",
        "numpy int",
        "numpy 0-d",
        "bool",
    ):
        assert outcomes[f"value {label}"] == "ok", label
    for label in ("non-ascii", "long", "spaces and dots"):
        assert outcomes[f"name {label}"] == "ok"
    for label in ("100 deep", "cyclic", "10 MB", "non-string keys"):
        assert outcomes[f"data {label}"] == "ok"
    assert outcomes["log object message"] == "ok"


def test_what_reached_the_wire(wire: tuple[dict, Receiver]) -> None:
    report, receiver = wire
    assert report["flushed"] is True and report["dropped"] == {}
    values = {dict(k[1])["metric"]: v for k, v in receiver.latest("liveview.metric").items()}
    assert values["good"] == len(report["outcomes"])  # the good publish after the last bad one
    assert values["v decimal"] == 0.25 and values["v numpy 0-d"] == 1.5 and values["v bool"] == 1.0
    assert values["Verlust/λ"] == 2.0 and values["train loss.v2"] == 2.0 and values["n" * 256] == 2.0
    assert "v nan" not in values  # non-finite: the nonfinite gauge instead
    assert "v huge int" not in values and "m" not in values  # rejected: nothing recorded
    flags = {
        (dict(k[1])["metric"], dict(k[1])["value"]): v
        for k, v in receiver.latest("liveview.metric.nonfinite").items()
    }
    assert flags[("v nan", "nan")] == 1 and flags[("v -inf", "-inf")] == 1
    assert not any(metric == "v huge int" for metric, _ in flags)  # a large number is not an Inf alert

    data = {
        row.attributes["stream"]: row.body for row in receiver.log_rows() if row.event_name == "liveview.data"
    }
    # The caller's dict is copied (one level) when queued, so the cycle is cut one level down.
    assert data["cyclic"] == {"a": 1, "self": {"a": 1, "self": "<cycle>"}}
    assert data["keys"] == {"1": 2.0, "(3, 4)": "t", "None": 5}
    assert len(data["big"]["blob"]) < 70 * 1024 and data["big"]["n"] == 1
    depth, node = 0, data["deep"]
    while isinstance(node, dict) and "next" in node:
        node, depth = node["next"], depth + 1
    assert node == "<too deep>" and depth == 32
    logs = [row.body for row in receiver.log_rows() if row.event_name == ""]
    assert logs[-2:] == ["{'not': 'a string'}", "the last good log"]


BAD_ENV_SCRIPT = r"""
import json
import otel_liveview
from otel_liveview import ExperimentBroadcaster, LiveViewExperiment

with LiveViewExperiment("bad-env", base_topic="bad:env") as run:
    run.broadcaster.publish_metric_sync("loss", 0.5, step=1)
    ExperimentBroadcaster("bad:env").publish_log_sync("info", "still here")
print(json.dumps({"flushed": otel_liveview.flush(10), **otel_liveview.stats()}))
"""


@pytest.mark.parametrize(
    ("var", "raw", "said"),
    [
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "abc", "is not a positive number of milliseconds; using the default"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "x", "is not a number; using the default (200 ms)"),
        ("OTEL_METRICS_EXPORTER", "zipkin", "names unknown exporter(s) zipkin"),
    ],
)
def test_a_bad_variable_is_a_warning_and_the_experiment_runs(var: str, raw: str, said: str) -> None:
    """It raised out of ExperimentBroadcaster() and LiveViewExperiment(); the SDK warns and uses the
    default, and so does the library now: everything arrives."""
    with serving_http() as receiver:
        env = publisher_env(receiver.endpoint, **{var: raw})
        result = run_python_with_stderr(BAD_ENV_SCRIPT, env)
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["flushed"] is True and report["dropped"] == {}
        assert [row.body for row in receiver.log_rows() if row.event_name == ""] == ["still here"]
    named = [line for line in result.stderr.splitlines() if var in line]
    assert len(named) == 1 and named[0].startswith(f"otel-liveview: {var}={raw!r} {said}")  # once


def test_an_endpoint_that_cannot_be_parsed_is_one_warning_and_everything_is_counted() -> None:
    env = publisher_env("http://[::1:bad")
    result = run_python_with_stderr(BAD_ENV_SCRIPT, env)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["flushed"] is False
    assert report["dropped"]["log/export_failed"] == 1 and report["dropped"]["status/export_failed"] >= 1
    assert report["dropped"]["points/export_failed"] > 0  # the metric exports, counted per point
    assert result.stderr.splitlines() == [
        "otel-liveview: OTEL_EXPORTER_OTLP_ENDPOINT='http://[::1:bad' is not a usable URL (Invalid IPv6 URL); "
        "not exporting to it: what would go there is counted as dropped (liveview_dropped_total)"
    ]


def run_python_with_stderr(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result
