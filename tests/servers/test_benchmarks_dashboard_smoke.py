"""benchmarks.dashboard works end to end on a small TSDB. Timings are printed, never asserted."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import ROOT, grafana
from tests.support.servers import server_binary


@pytest.mark.servers
def test_dashboard_benchmark_times_every_query_of_both_dashboards() -> None:
    server_binary("promtool-3.14")  # fail under CI, skip elsewhere, when the build is missing
    server_binary("prometheus-3.14")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.dashboard",
            "--instances",
            "40",
            "--services",
            "4",
            "--metrics",
            "5",
            "--runs",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    print(result.stdout)
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:6]]
        for line in result.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| query")
    }
    dashboard = grafana.load()
    expected = {f"variable {v['name']}" for v in grafana.variables(dashboard) if v["type"] == "query"}
    titles = [title for title, _ in grafana.targets(dashboard, "prometheus")]
    expected |= {
        title if titles.count(title) == 1 else f"{title} {target['refId']}"
        for title, target in grafana.targets(dashboard, "prometheus")
    }
    assert {
        "Latest values A",
        "Latest values B",
        "Latest values C",
        "Progress A",
        "variable experiment",
    } <= expected
    assert set(rows) == expected
    # Nothing is NaN, nothing fires, every phase has a total, nothing ended; the rest finds series.
    empty = {"Non-finite metrics", "Non-finite now", "Firing alerts", "Progress B", "Progress C"}
    for name, (_, after_ms, _, after_results) in rows.items():
        assert float(after_ms) >= 0, name
        if name not in empty:
            assert int(after_results) > 0, f"{name} found nothing in the benchmark's data"
    # Narrowed to one service of 4, the instance variable lists that service's processes only; the
    # service is one run of 10 ranks, half of them on the chosen topic.
    assert rows["variable instance"][2:] == ["40", "10"]
    assert rows["variable rank"][3] == "5"
    assert "40 instances x 5 metrics in 4 services" in result.stdout
