"""The benchmark runner works end to end (tiny sizes). Timing figures are printed, never asserted."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT


def test_benchmark_runner_prints_every_row() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    print(out)
    for row in (
        "raw Gauge.set",
        "raw Logger.emit",
        "prometheus-client set",
        "publish_metric_sync, events off",
        "publish_metric_sync, events on",
        "publish_log_sync",
        "publish_data_sync, 10 keys",
        "bytes per distinct metric series",
    ):
        assert row in out
    assert out.count("<= ") == 6  # the six targets in docs/benchmarks.md have a ratio each
    # Not a timing: under load every log either arrives or is counted as dropped.
    assert "arrived + dropped == sent: True" in out
