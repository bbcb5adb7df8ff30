"""Queued publish calls -> the arguments of `Logger.emit` (runs on the export thread).

A queued item is a tuple whose first element names its kind; see `ExperimentBroadcaster` for who
puts which. Building here keeps the caller's cost to a tuple and a deque append.
"""

from __future__ import annotations

from typing import Any

from opentelemetry._logs import SeverityNumber

from otel_liveview import mapping
from otel_liveview.tables import Tables

INFO = SeverityNumber.INFO


def _event(name: str, timestamp: int, body: Any, attributes: dict[str, Any]) -> dict[str, Any]:
    # Loki (3.7 and older) drops the OTLP event_name field but keeps attributes as structured
    # metadata: the same name as an attribute lets LogQL select events with `| event_name="..."`.
    # Newer Loki reads the field itself and skips an attribute of the same name.
    attributes["event_name"] = name
    return {"timestamp": timestamp, "event_name": name, "body": body, "attributes": attributes}


def metric_event(item: tuple[Any, ...], tables: Tables) -> dict[str, Any]:
    _, timestamp, topic, name, value, step, epoch, extra = item
    attributes = mapping.attributes(extra) if extra else {}
    body: dict[str, Any] = {"metric": name, "value": mapping.to_body(value)}  # NaN -> "nan": JSON has none
    if step is not None:
        body["step"] = attributes["step"] = step
    if epoch is not None:
        body["epoch"] = attributes["epoch"] = epoch
    if extra:
        body.update(mapping.to_body(extra))
    attributes["metric"] = name
    attributes["topic"] = topic
    return _event("liveview.metric", timestamp, body, attributes)


def data_event(item: tuple[Any, ...], tables: Tables) -> dict[str, Any]:
    _, timestamp, topic, stream, data = item
    body = mapping.to_body(data)
    gauge = tables.data
    for key, value in mapping.body_leaves(body):
        series = tables.stream_series(topic, stream, key)
        if series is None or not gauge.set(series, value):
            tables.count_dropped("data", "cardinality")
    return _event("liveview.data", timestamp, body, {"stream": stream, "topic": topic})


def log_record(item: tuple[Any, ...], tables: Tables) -> dict[str, Any]:
    _, timestamp, topic, number, text, message, extra = item
    attributes = mapping.attributes(extra) if extra else {}
    attributes["topic"] = topic
    return {
        "timestamp": timestamp,
        "severity_number": SeverityNumber(number),
        "severity_text": text,
        "body": message if type(message) is str else str(mapping.to_body(message)),
        "attributes": attributes,
    }


def status_event(item: tuple[Any, ...], tables: Tables) -> dict[str, Any]:
    _, timestamp, topic, experiment, status, error = item
    body = {"experiment": experiment, "status": status}
    attributes = {"topic": topic, "experiment": experiment, "status": status}
    if error:
        body["error"] = attributes["error"] = error
    event = _event("liveview.status", timestamp, body, attributes)
    event["severity_number"] = SeverityNumber.ERROR if status == "failed" else INFO
    return event


def info_event(item: tuple[Any, ...], tables: Tables) -> dict[str, Any]:
    _, timestamp, topic, experiment, info = item
    body = {"experiment": experiment, "info": mapping.to_body(info)}
    return _event("liveview.info", timestamp, body, {"topic": topic, "experiment": experiment})


BUILDERS = {
    "metric": metric_event,
    "data": data_event,
    "log": log_record,
    "status": status_event,
    "info": info_event,
}


def build(item: tuple[Any, ...], tables: Tables) -> dict[str, Any]:
    return BUILDERS[item[0]](item, tables)
