"""`otel-liveview view --replay DIR`: a spool folder's requests fed to the board, as if they arrived."""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from otel_liveview._internal.spool import LOGS, read_folder
from otel_liveview.view.receiver import Sink


def feed(sink: Sink, directory: str) -> int:
    """Every request of the spool at `directory`, oldest first, into `sink` (the board); how many.
    The folder is only read: a replay to a collector later still finds all of it."""
    requests = 0
    for kind, payload in read_folder(directory):
        if kind == LOGS:
            sink.add_logs(ExportLogsServiceRequest.FromString(payload))
        else:
            sink.add_metrics(ExportMetricsServiceRequest.FromString(payload))
        requests += 1
    return requests


__all__ = ["feed"]
