"""Watch a running experiment from an OpenTelemetry, Prometheus, Loki and Grafana stack.

from otel_liveview import ExperimentBroadcaster, LiveViewExperiment

broadcaster = ExperimentBroadcaster(base_topic="experiment:updates:root")
broadcaster.publish_metric_sync("loss", 0.5, epoch=1, step=100, phase="train")
"""

from __future__ import annotations

from otel_liveview._internal.pipeline import VERSION as __version__
from otel_liveview._internal.runtime import configure, flush, shutdown
from otel_liveview._internal.tables import TABLES
from otel_liveview.broadcaster import ExperimentBroadcaster
from otel_liveview.experiment import ExperimentState, LiveViewExperiment, StateManager
from otel_liveview.logging_bridge import LiveViewHandler


def stats() -> dict[str, dict[str, int]]:
    """This process's self-telemetry, as `liveview_published_total` / `liveview_dropped_total` export it.

    `published[kind]` counts publish calls (kind metric, data, log, status). `dropped["kind/reason"]`
    counts publish calls for queue_full and metric cardinality, numeric keys for data cardinality,
    records for export_failed, and data points for "points/export_failed" (a failed metric export).
    """
    return {
        "published": {dict(key)["kind"]: value for key, value in TABLES.published.items()},
        "dropped": {"{kind}/{reason}".format(**dict(key)): value for key, value in TABLES.dropped.items()},
    }


__all__ = [
    "ExperimentBroadcaster",
    "ExperimentState",
    "LiveViewExperiment",
    "LiveViewHandler",
    "StateManager",
    "__version__",
    "configure",
    "flush",
    "shutdown",
    "stats",
]
