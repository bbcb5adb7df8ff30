"""The shapes that cross from the caller to the export thread: what a publish queues, what a record is.

A queued item is a plain tuple, its kind first. A tuple literal costs the caller about 50 ns where a
NamedTuple costs about 500 ns (timeit, Python 3.11) – half of what a whole `publish_metric_sync`
costs – so the items stay tuples and these aliases give both ends, the broadcaster that builds them
and `events` that unpacks them, one shape that mypy checks.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from opentelemetry._logs import SeverityNumber

from otel_liveview._internal.tables import Key

# ("metric", time in seconds, series key, value, step, epoch, the keyword arguments that are not labels)
MetricUpdate = tuple[Literal["metric"], float, Key, float, float | None, float | None, dict[str, Any] | None]
# ("data", time in ns, topic, stream, a shallow copy of the caller's dict)
DataItem = tuple[Literal["data"], int, str, str, dict[Any, Any]]
# ("log", time in ns, topic, severity number, severity text, message, attributes)
LogItem = tuple[Literal["log"], int, str, int, str, Any, dict[str, Any]]
# ("status", time in ns, topic, experiment, status, error)
StatusItem = tuple[Literal["status"], int, str, str, str, str | None]
# ("info", time in ns, topic, experiment, a shallow copy of the caller's dict)
InfoItem = tuple[Literal["info"], int, str, str, dict[Any, Any]]

QueuedItem = DataItem | LogItem | StatusItem | InfoItem  # what the events-and-logs queue holds
Item = QueuedItem | MetricUpdate  # what the export thread takes off either queue

Kind = Literal["metric", "data", "log", "status", "info"]


class _Timed(TypedDict):
    timestamp: int  # ns since the epoch


class Record(_Timed, total=False):
    """One log record as `events` builds it and `encoding.LogBatch` writes it: the keyword arguments
    of the SDK's `Logger.emit`, so an application's own LoggerProvider takes it as it is."""

    event_name: str
    severity_number: SeverityNumber
    severity_text: str
    body: Any
    attributes: dict[str, Any]


__all__ = [
    "DataItem",
    "InfoItem",
    "Item",
    "Kind",
    "LogItem",
    "MetricUpdate",
    "QueuedItem",
    "Record",
    "StatusItem",
]
