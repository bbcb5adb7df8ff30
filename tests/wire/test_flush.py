"""flush() and the exit path are bounded, whatever the collector does."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.support import ROOT
from tests.support.processes import publisher_env
from tests.support.receiver import Receiver

SCRIPT = """
import os, time, otel_liveview
b = otel_liveview.ExperimentBroadcaster("flush:bounded")
for i in range(5000):
    b.publish_log_sync("info", "x", i=i)
    b.publish_metric_sync("m", i)
started = time.monotonic()
ok = otel_liveview.flush(float(os.environ["FLUSH_TIMEOUT"]))
print(ok, round(time.monotonic() - started, 2), flush=True)
"""


def run(receiver_endpoint: str, flush_timeout: float = 1.0) -> tuple[str, float, float]:
    env = publisher_env(receiver_endpoint, FLUSH_TIMEOUT=str(flush_timeout), OTEL_LIVEVIEW_EXIT_TIMEOUT="1")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    total = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    ok, flush_seconds = result.stdout.split()
    return ok, float(flush_seconds), total


def test_flush_and_exit_are_bounded_with_a_slow_collector(http_receiver: Receiver) -> None:
    http_receiver.delay = 5.0  # every export takes 5 s to answer
    ok, flush_seconds, total = run(http_receiver.endpoint)
    assert ok == "False"  # not everything could be shipped in time, and flush says so
    assert flush_seconds < 2.0
    assert total < 15.0, f"the process took {total:.1f} s to exit"


def test_flush_and_exit_are_bounded_with_a_dead_collector() -> None:
    ok, flush_seconds, total = run("http://127.0.0.1:9")
    assert ok == "False"
    assert flush_seconds < 2.0
    assert total < 15.0, f"the process took {total:.1f} s to exit"


def test_flush_ships_everything_with_a_healthy_collector(http_receiver: Receiver) -> None:
    ok, _, _ = run(http_receiver.endpoint, flush_timeout=30.0)  # about what it ships, not how fast
    assert ok == "True"
    logs = [row for row in http_receiver.log_rows() if row.event_name == ""]
    assert len(logs) == 5000
