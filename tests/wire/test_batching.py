"""Requests stay full whatever the caller's rhythm: a partial batch waits for the schedule delay
(OTEL_BLRP_SCHEDULE_DELAY), so what trickles in while a batch is on the wire does not leave in a
request of its own (docs/reliability.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.processes import publisher_env, run_python
from tests.support.receiver import Receiver

RATE = 5_000  # logs per second
PER_WAKE = 10  # records published per wake-up: a training step's handful between waits
TOTAL = 15_000  # three seconds

# The caller's rhythm: publish PER_WAKE records, then sleep until the next ones are due.
SCRIPT = f"""
import time, otel_liveview
broadcaster = otel_liveview.ExperimentBroadcaster("batching")
started = time.perf_counter()
for first in range(0, {TOTAL}, {PER_WAKE}):
    for n in range(first, first + {PER_WAKE}):
        broadcaster.publish_log_sync("info", "line", n=n)
    ahead = started + (first + {PER_WAKE}) / {RATE} - time.perf_counter()
    if ahead > 0:
        time.sleep(ahead)
print(otel_liveview.flush(60))
"""


@pytest.mark.parametrize("spool", [False, True], ids=["memory", "spool"])
def test_a_caller_that_publishes_a_few_records_per_wake_up_still_fills_its_requests(
    http_receiver: Receiver, tmp_path: Path, spool: bool
) -> None:
    http_receiver.delay = 0.005  # a collector a few milliseconds away: records arrive during each export
    env = publisher_env(
        http_receiver.endpoint,
        OTEL_METRICS_EXPORTER="none",
        OTEL_BLRP_SCHEDULE_DELAY="200",
        OTEL_BLRP_MAX_EXPORT_BATCH_SIZE="512",
    )
    if spool:  # written every 20 ms, sent once a batch's worth is written: the same full requests
        env["OTEL_LIVEVIEW_SPOOL_DIR"] = str(tmp_path)
    assert run_python(SCRIPT, env).split() == ["True"]
    sizes = [
        sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs)
        for request in http_receiver.logs
    ]
    assert sum(sizes) == TOTAL
    # 512 but for the flush's remainder when every batch fills. Shipping early sent a request for
    # each handful that arrived while the previous one was on the wire: about 30 records each.
    assert TOTAL / len(sizes) >= 256, sizes
    assert max(sizes) <= 512, "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE holds with a spool too"
    assert not list(tmp_path.glob("*.seg")), "a spool all sent is removed at the exit"
