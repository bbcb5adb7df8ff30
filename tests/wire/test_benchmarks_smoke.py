"""The benchmark runner works end to end (tiny sizes). Timing figures are printed, never asserted."""

from __future__ import annotations

from tests.support.processes import run_module


def test_benchmark_runner_prints_every_row() -> None:
    out = run_module("benchmarks.run", "--quick", timeout=300)
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
