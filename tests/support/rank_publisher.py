"""One rank of a launched job: publishes a metric and a log, as experiment code would, with no
launcher-specific code (the library reads rank, node and run from the launcher's environment)."""

from __future__ import annotations

import os

import otel_liveview
from otel_liveview import ExperimentBroadcaster


def main() -> None:
    broadcaster = ExperimentBroadcaster(base_topic="experiment:updates:ranks")
    broadcaster.publish_metric_sync("loss", 1.0 / (1 + os.getpid() % 7), step=10, phase="train")
    broadcaster.publish_log_sync("info", "rank ready")
    assert otel_liveview.flush(10.0), "flush did not finish"


if __name__ == "__main__":
    main()
