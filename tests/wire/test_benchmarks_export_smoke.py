"""The export benchmark works end to end (1-second rungs, small sizes). Figures are printed, never
asserted: only that every row is there and that the library accounts for every record it was given."""

from __future__ import annotations

import re

from tests.support.processes import run_module

ROWS = (
    "steady 5,000/s",
    "steady 10,000/s",
    *(f"5,000/s, {n} per wake" for n in (1, 10, 50, 500)),
    "burst 20,000 logs",
    "burst 10,000 data",
)
RATIOS = (
    "CPU per delivered record, steady 5,000/s",
    "CPU per delivered record, steady 10,000/s",
    "CPU per delivered record, burst 20,000 logs",
    "CPU per delivered record, burst 10,000 data",
    "records per request at 5,000/s",
    *(f"records per request at 5,000/s, {n} per wake-up (library)" for n in (1, 10, 50, 500)),
    "highest lossless steady rate",
    "CPU per export, 1,000 series",
    "CPU per export, 5,000 series",
    "CPU, 10,000 metric updates/s: events on / events off (library)",
    "CPU, 10,000 metric updates/s: events on / raw SDK gauges",
)


def test_export_benchmark_prints_every_row_and_accounts_for_every_record() -> None:
    out = run_module("benchmarks.export", "--quick")
    print(out)
    table = [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]
    rows = {(cells[0], cells[1]): cells[2:] for cells in table if len(cells) == 9}
    for row in ROWS:
        assert (row, "library") in rows and (row, "raw SDK") in rows, row
        sent, delivered, dropped = (int(cell.replace(",", "")) for cell in rows[row, "library"][:3])
        assert delivered + dropped == sent, (row, sent, delivered, dropped)
    for count in ("1,000", "5,000"):
        assert re.search(rf"^{count}\s+library\s", out, re.M) and re.search(
            rf"^{count}\s+raw SDK\s", out, re.M
        )
    for ratio in RATIOS:
        assert ratio in out, ratio
    assert "highest lossless steady rate: library" in out
    assert out.count(" ok") + out.count(" MISSED") == 13  # every target has a verdict
    # Every metric update of the events-on run is in a liveview.metric event; none in the others'.
    updates = {}
    for side in ("library, events on", "library, events off", "raw SDK"):
        found = re.search(rf"^{side}\s+([\d,]+)\s+([\d,]+)\s", out, re.M)
        assert found, side
        updates[side] = [int(cell.replace(",", "")) for cell in found.groups()]
    assert updates["library, events on"][0] > 0
    assert updates["library, events on"][1] == updates["library, events on"][0]
    assert updates["library, events off"][1] == updates["raw SDK"][1] == 0
