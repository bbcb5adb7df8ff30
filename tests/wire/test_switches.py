"""OpenTelemetry's switches: OTEL_METRICS_EXPORTER / OTEL_LOGS_EXPORTER (otlp, console, none) and
OTEL_SDK_DISABLED, in a process of their own as a user would set them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support import ROOT
from tests.support.processes import publisher_env, run_python
from tests.support.receiver import Receiver, SilentListener, silent_listener

SCRIPT = """
import json, otel_liveview
from otel_liveview import ExperimentBroadcaster
b = ExperimentBroadcaster("switches")
b.publish_metric_sync("loss", 0.25, step=3)
b.publish_data_sync("sensors", {"temperature": 21.5})
b.publish_log_sync("warning", "disk almost full")
print("flushed", otel_liveview.flush(5.0))
print("stats", json.dumps(otel_liveview.stats()))
"""


@pytest.fixture
def listener() -> Iterator[SilentListener]:
    """A TCP port that records every connection made to it."""
    with silent_listener() as listener:
        yield listener


def _stats(stdout: str) -> dict[str, dict[str, int]]:
    line = next(line for line in stdout.splitlines() if line.startswith("stats "))
    return json.loads(line.removeprefix("stats "))


def test_none_opens_no_connection_and_prints_nothing(listener: SilentListener) -> None:
    env = publisher_env(listener.url, OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    stdout = run_python(SCRIPT, env)
    assert stdout.splitlines()[0] == "flushed True"
    assert len(stdout.splitlines()) == 2  # the script's own two lines, nothing printed besides
    assert listener.connections == [], "a connection was made although every exporter is off"
    stats = _stats(stdout)
    assert stats["published"] == {"metric": 1, "data": 1, "log": 1, "status": 0}  # still counted
    assert stats["dropped"] == {}


def test_console_prints_records_and_metrics_as_json(listener: SilentListener) -> None:
    env = publisher_env(listener.url, OTEL_METRICS_EXPORTER="console", OTEL_LOGS_EXPORTER="console")
    stdout = run_python(SCRIPT, env)
    assert listener.connections == []
    # Events and logs: one OTLP/JSON log record per line.
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith('{"timeUnixNano"')]
    log = next(r for r in records if "eventName" not in r)
    assert (log["severityText"], log["body"]) == ("WARN", {"stringValue": "disk almost full"})
    data = next(r for r in records if r.get("eventName") == "liveview.data")
    assert data["body"]["kvlistValue"]["values"] == [{"key": "temperature", "value": {"doubleValue": 21.5}}]
    assert len(records) == 3  # the metric's event, the data event, the log
    # Metrics: the SDK's console exporter (JSON documents).
    assert '"name": "liveview.metric"' in stdout
    assert '"metric": "loss"' in stdout


def test_one_signal_off_the_other_on(http_receiver: Receiver) -> None:
    env = publisher_env(http_receiver.endpoint, OTEL_METRICS_EXPORTER="none")
    stdout = run_python(SCRIPT, env)
    assert stdout.splitlines()[0] == "flushed True"
    assert http_receiver.metrics == []
    bodies = [row.body for row in http_receiver.log_rows()]
    assert "disk almost full" in bodies
    env = publisher_env(http_receiver.endpoint, OTEL_LOGS_EXPORTER="none")
    http_receiver.clear()
    run_python(SCRIPT, env)
    assert http_receiver.logs == []
    assert {point.name for point in http_receiver.point_rows()} >= {"liveview.metric", "liveview.data"}


def test_sdk_disabled_makes_publishing_a_no_op(listener: SilentListener) -> None:
    script = SCRIPT.replace(
        'b.publish_log_sync("warning"',
        'b.publish_metric_sync("bad", "not a number")\nb.publish_log_sync("warning"',
    )
    env = publisher_env(listener.url, OTEL_SDK_DISABLED="true")
    stdout = run_python(script, env)
    assert stdout.splitlines()[0] == "flushed True"
    assert listener.connections == []
    assert set(_stats(stdout)["published"].values()) == {0}  # nothing was even counted


def test_an_unknown_exporter_is_one_warning_and_the_default(http_receiver: Receiver) -> None:
    """As the SDK treats a variable it cannot use: the experiment runs, exporting with the default."""
    env = publisher_env(http_receiver.endpoint, OTEL_LOGS_EXPORTER="jaeger")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.splitlines()[0] == "flushed True"
    assert result.stderr.splitlines() == [
        "otel-liveview: OTEL_LOGS_EXPORTER='jaeger' names unknown exporter(s) jaeger (use otlp, console, none); "
        "using the default (otlp)"
    ]
    assert [row.body for row in http_receiver.log_rows() if row.event_name == ""] == ["disk almost full"]
