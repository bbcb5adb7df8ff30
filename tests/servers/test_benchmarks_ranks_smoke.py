"""benchmarks.ranks works end to end: mpirun -n 4 through the Collector into Prometheus 3.14, the
Ranks row read back with its values. Latencies are printed, never asserted."""

from __future__ import annotations

import re

import pytest

from tests.support.launchers import launcher
from tests.support.processes import run_module

pytestmark = [pytest.mark.servers, pytest.mark.launchers]


def test_the_ranks_benchmark_prints_the_ranks_row_of_a_real_launch() -> None:
    launcher("mpirun")
    output = run_module("benchmarks.ranks", "--seconds", "8", timeout=300)
    print(output)
    assert "mpirun with 4 ranks" in output and "series in Prometheus" in output
    rows = dict(re.findall(r"^(\w[\w ]+ [A-D]) \([\d.]+ ms, \d+ series\): (.*)$", output, re.M))
    assert rows["Ranks alive A"] == rows["Ranks alive B"] == "-: 4"
    steps = dict(re.findall(r"rank=(\d): ([\d.]+)", rows["Step per rank A"]))
    assert sorted(steps) == ["0", "1", "2", "3"] and float(steps["2"]) == 10  # rank 2 failed at step 10
    assert "rank=2,status=failed: 1" in rows["Rank status A"]
    assert "LiveViewExperimentFailed 2" in output
