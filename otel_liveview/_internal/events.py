"""Queued publish calls -> the arguments of `Logger.emit` (runs on the export thread).

A queued item is a tuple whose first element names its kind (`records` gives each kind its shape;
`ExperimentBroadcaster` puts them). Building here keeps the caller's cost to a tuple and a deque append. Each log, data,
status or info item becomes one record; metric updates wait in a queue of their own and go once per
metric export interval, one record per series carrying them all as columns, so a metric updated
10,000 times a second costs one record a second.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from opentelemetry._logs import SeverityNumber

from otel_liveview import names
from otel_liveview._internal import mapping
from otel_liveview._internal.encoding import Doubles
from otel_liveview._internal.records import (
    DataItem,
    InfoItem,
    Item,
    Kind,
    LogItem,
    MetricUpdate,
    Record,
    StatusItem,
)
from otel_liveview._internal.tables import Key, Tables

INFO = SeverityNumber.INFO
# number -> SeverityNumber: a dict look-up is several times cheaper than calling the Enum
_SEVERITIES = {severity.value: severity for severity in SeverityNumber}

_log = logging.getLogger("otel_liveview")

# What a built record goes to: (kind, publish calls it stands for, the record).
Emit = Callable[[Kind, int, Record], None]


def _event(name: str, timestamp: int, body: Any, attributes: dict[str, Any]) -> Record:
    # Loki (3.7 and older) drops the OTLP event_name field but keeps attributes as structured
    # metadata: the same name as an attribute lets LogQL select events with `| event_name="..."`.
    # Newer Loki reads the field itself and skips an attribute of the same name.
    attributes["event_name"] = name
    return {"timestamp": timestamp, "event_name": name, "body": body, "attributes": attributes}


# The fields of a queued metric update ("metric", time, key, value, step, epoch, extra) that become
# columns; itemgetter is several times cheaper than zip(*updates) on long series.
_UPDATE_FIELDS = tuple(map(itemgetter, (1, 3, 4, 5, 6)))


def metric_event(key: Key, updates: Sequence[MetricUpdate]) -> Record:
    """One series' queued updates, oldest first -> one `liveview.metric` event: the series' labels
    as attributes, the updates as columns of the body (`time` in seconds, `value`, `step`, `epoch`,
    and one column per other keyword argument under `attributes`)."""
    times, values, steps, epochs, extras = (tuple(map(field, updates)) for field in _UPDATE_FIELDS)
    attributes = dict(key)
    body: dict[str, Any] = {"metric": attributes["metric"], "time": Doubles(times), "value": _column(values)}
    if steps.count(None) < len(steps):
        body["step"] = _column(steps)
    if epochs.count(None) < len(epochs):
        body["epoch"] = _column(epochs)
    if any(extras):
        keywords = dict.fromkeys(name for extra in extras if extra for name in extra)
        body["attributes"] = {
            mapping.attribute_key(name): [
                mapping.to_body(extra[name]) if extra and name in extra else None for extra in extras
            ]
            for name in keywords
        }
    return _event(names.METRIC_EVENT, int(times[0] * 1e9), body, attributes)


def _column(numbers: tuple[float | None, ...]) -> Any:
    """Finite floats as one packed column; with a gap or a NaN/Inf, each as the body holds it
    (None -> null, NaN -> "nan": JSON has no NaN)."""
    if None not in numbers:
        total = sum(numbers)  # type: ignore[arg-type]
        if total - total == 0.0:  # every one finite (an overflow to inf only takes the slow path)
            return Doubles(numbers)  # type: ignore[arg-type]
    return [None if number is None else mapping.to_body(number) for number in numbers]


def data_event(item: DataItem, tables: Tables) -> Record:
    _, timestamp, topic, stream, data = item
    body = mapping.to_body(data)
    known = tables.stream_keys.get((topic, stream), {})  # the series of keys seen before
    points, beyond_cap = [], 0
    for key, value in mapping.body_leaves(body):
        series = known.get(key) or tables.stream_series(topic, stream, key)
        if series is None:
            beyond_cap += 1
        else:
            points.append((series, value))
    refused = beyond_cap + tables.data.set_many(points)
    if refused:
        tables.count_dropped("data", "cardinality", refused)
    return _event(names.DATA_EVENT, timestamp, body, {"stream": stream, "topic": topic})


def log_record(item: LogItem) -> Record:
    _, timestamp, topic, number, text, message, extra = item
    attributes = mapping.attributes(extra) if extra else {}
    attributes["topic"] = topic
    return {
        "timestamp": timestamp,
        "severity_number": _SEVERITIES[number],
        "severity_text": text,
        "body": message if type(message) is str else str(mapping.to_body(message)),
        "attributes": attributes,
    }


def status_event(item: StatusItem) -> Record:
    _, timestamp, topic, experiment, status, error = item
    body = {"experiment": experiment, "status": status}
    attributes = {"topic": topic, "experiment": experiment, "status": status}
    if error:
        body["error"] = attributes["error"] = error
    event = _event(names.STATUS_EVENT, timestamp, body, attributes)
    event["severity_number"] = SeverityNumber.ERROR if status == "failed" else INFO
    return event


def info_event(item: InfoItem) -> Record:
    _, timestamp, topic, experiment, info = item
    body = {"experiment": experiment, "info": mapping.to_body(info)}
    return _event(names.INFO_EVENT, timestamp, body, {"topic": topic, "experiment": experiment})


def emit_all(items: Sequence[Item], tables: Tables, emit: Emit) -> None:
    """Build the records of queued items and hand each to `emit`: one per log, data, status or
    info item; metric updates grouped into one record per series, carrying all its updates. A
    record that cannot be built (or emitted) is counted as dropped (`invalid`) and does not stop
    the others."""
    series: defaultdict[Key, list[MetricUpdate]] = defaultdict(list)
    for item in items:
        if item[0] == "metric":
            series[item[2]].append(item)
            continue
        try:
            if item[0] == "log":
                emit("log", 1, log_record(item))
            elif item[0] == "data":
                emit("data", 1, data_event(item, tables))
            elif item[0] == "status":
                emit("status", 1, status_event(item))
            else:
                emit("info", 1, info_event(item))
        except Exception:
            _invalid(item[0], 1, tables)
    for key, updates in series.items():
        try:
            emit("metric", len(updates), metric_event(key, updates))
        except Exception:
            _invalid("metric", len(updates), tables)


def _invalid(kind: Kind, calls: int, tables: Tables) -> None:
    _log.exception("building a %s record failed", kind)
    tables.count_dropped(kind, "invalid", calls)
