"""benchmarks.spool works end to end (tiny sizes). Timing figures are printed, never asserted."""

from __future__ import annotations

from tests.support.processes import run_module


def test_the_spool_benchmark_prints_every_figure() -> None:
    out = run_module("benchmarks.spool", "--quick", timeout=300)
    print(out)
    assert "framed protobuf" in out and "OTLP JSON Lines" in out
    assert "spool configured" in out
    assert "records/s" in out
    assert "a write in the publish call" in out
