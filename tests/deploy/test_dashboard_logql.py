"""The dashboard's LogQL queries, evaluated against what Loki makes of the library's real OTLP records.

No Loki runs in the suite. The records are the real exporter's output, decoded by the in-suite
receiver; `loki_entry` applies Loki 3.7's OTLP ingestion rules (pkg/loghttp/push/otlp.go: default
index labels, every other resource, scope and record attribute as structured metadata with names
sanitized, severity fields; the OTLP `event_name` field is not mapped before Loki 3.8). That mapping
was compared by hand, record for record, with what a real Loki 3.7.6 returned for the same publisher
(docs/deploy.md). `matches` understands exactly the LogQL the dashboard uses – a stream selector and
`| label op "value"` filters – and fails on anything else, so a new query cannot slip past unchecked.
Two publishers share service.name `logql`, one with service.namespace `research`: the variables
Grafana derives from the service (`service_name`, `service_namespace`, with the dashboard's own
regexes, tests/support/grafana.py) must select each one's streams and not the other's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import grafana
from tests.support.processes import publisher_env, run_python
from tests.support.receiver import LogRow, serving_http

DASHBOARD = grafana.load()
# One publisher per case of Prometheus' job: service.namespace/service.name, and service.name alone.
# Both have the same service.name, so only service_namespace tells their streams apart.
JOBS = {"research/logql": {"OTEL_RESOURCE_ATTRIBUTES": "service.namespace=research"}, "logql": {}}

# Loki's default `default_resource_attributes_as_index_labels` (those our resource can carry).
INDEX_LABELS = {"service.name", "service.namespace", "service.instance.id", "deployment.environment"}

PUBLISHER = """
import logging
from otel_liveview import LiveViewExperiment, LiveViewHandler, flush

with LiveViewExperiment(name="logql", base_topic="logql:test") as experiment:
    b = experiment.broadcaster
    for step in range(3):
        b.publish_metric_sync("loss", 1 / (step + 1), step=step, phase="train")
        b.publish_data_sync("sensors", {"sensor_1": 0.8 + step, "arm": {"x": step}})
        b.publish_data_sync("camera", {"fps": 30})
        b.publish_data_sync("other", {"n": step})
    for level in ("debug", "info", "warning", "error", "critical"):
        b.publish_log_sync(level, f"a {level} line")
    b.publish_log_sync("info", "a log that names a stream", stream="sensors")
    logging.getLogger("logql").addHandler(LiveViewHandler(b))
    logging.getLogger("logql").warning("from the logging module")
flush()
"""


def sanitize(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def flatten(key: str, value: Any) -> dict[str, str]:
    """An attribute as Loki stores it: nested maps become `outer_inner`, every value a string."""
    if isinstance(value, dict):
        return {k: v for inner, item in value.items() for k, v in flatten(f"{key}_{inner}", item).items()}
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float) and value == int(value):
        text = str(int(value))
    else:
        text = value if isinstance(value, str) else json.dumps(value)
    return {sanitize(key): text}


def loki_json(value: Any) -> str:
    """A map body as Loki writes the line: compact, keys sorted, 1.0 as 1 (Go's float formatting)."""

    def plain(item: Any) -> Any:
        if isinstance(item, dict):
            return {key: plain(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [plain(inner) for inner in item]
        return int(item) if isinstance(item, float) and item.is_integer() else item

    return json.dumps(plain(value), separators=(",", ":"), sort_keys=True)


def loki_entry(row: LogRow) -> tuple[dict[str, str], dict[str, str], str]:
    """(index labels, structured metadata, line) of one OTLP log record."""
    labels: dict[str, str] = {}
    metadata: dict[str, str] = {}
    for key, value in row.resource.items():
        (labels if key in INDEX_LABELS else metadata).update(flatten(key, value))
    metadata["scope_name"] = row.scope
    if row.scope_version:
        metadata["scope_version"] = row.scope_version
    for key, value in row.attributes.items():
        metadata.update(flatten(key, value))
    if row.severity_number:
        metadata["severity_number"] = str(row.severity_number)
    if row.severity_text:
        metadata["severity_text"] = row.severity_text
    line = row.body if isinstance(row.body, str) else loki_json(row.body)
    return labels, metadata, line


MATCHER = r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"'


def _holds(op: str, actual: str, expected: str) -> bool:
    if op in ("=", "!="):
        return (actual == expected) == (op == "=")
    return bool(re.fullmatch(expected, actual)) == (op == "=~")


def parse(query: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """A log query of the dashboard's form -> (stream matchers, label filters)."""
    shape = rf"\{{\s*{MATCHER}(\s*,\s*{MATCHER})*\s*\}}(\s*\|\s*{MATCHER})*\s*"
    assert re.fullmatch(shape, query), f"LogQL outside what this check understands: {query}"
    selector, _, pipeline = query.partition("}")
    return re.findall(MATCHER, selector), re.findall(MATCHER, pipeline)


def matches(query: str, labels: dict[str, str], metadata: dict[str, str]) -> bool:
    """Does the query select this entry? A label the entry lacks reads as "", as in Loki."""
    stream, filters = parse(query)
    every = {**labels, **metadata}
    return all(_holds(op, labels.get(key, ""), value) for key, op, value in stream) and all(
        _holds(op, every.get(key, ""), value) for key, op, value in filters
    )


# Two processes of one more service, each with a run that completes, one that fails and one that is
# aborted, logs at every level (some through the logging module) and a NaN metric.
ERRORS_JOB = "research/logql-errors"
ERRORS = """
import logging, math, os
from otel_liveview import LiveViewExperiment, LiveViewHandler, flush

who = os.environ["WHO"]
with LiveViewExperiment(name=f"ok-{who}", base_topic="logql:test") as run:
    b = run.broadcaster
    b.publish_metric_sync("loss", math.nan, step=1, phase="train")
    for level in ("debug", "info", "warning", "error", "critical"):
        b.publish_log_sync(level, f"{who}: a {level} line")
    b.publish_log_sync("info", f"{who}: a log that says failed", status="failed")
    logger = logging.getLogger("errors")
    logger.addHandler(LiveViewHandler(b))
    logger.propagate = False
    logger.error(f"{who}: from logging, error")
    logger.critical(f"{who}: from logging, critical")
try:
    with LiveViewExperiment(name=f"diverged-{who}", base_topic="logql:test"):
        raise FloatingPointError(f"loss is NaN ({who})")
except FloatingPointError:
    pass
try:
    with LiveViewExperiment(name=f"stopped-{who}", base_topic="logql:test"):
        raise KeyboardInterrupt
except KeyboardInterrupt:
    pass
flush()
"""


def service_variables(job: str) -> dict[str, str]:
    """The hidden variables Grafana derives from $service, with the dashboard's own regexes."""
    values = {"service": job}
    for name in ("service_name", "service_namespace"):
        options = grafana.regex_options(grafana.variable(DASHBOARD, name)["regex"], [job])
        values[name] = options[0] if options else ""  # Grafana's value for a variable without options
    return values


def loki_query(title: str, job: str, ref: str = "A", **variables: str) -> str:
    (panel,) = [p for p in DASHBOARD["panels"] if p["title"] == title and p["type"] == "logs"]
    (target,) = [t for t in panel["targets"] if t["refId"] == ref]
    assert target["datasource"] == {"type": "loki", "uid": "${loki}"}
    query = grafana.interpolate(target["expr"], {**service_variables(job), **variables})
    assert "$" not in query, query
    return query


def job_of(row: LogRow) -> str:
    """Prometheus' job for a record's resource, as its OTLP receiver and the Collector set it."""
    namespace = row.resource.get("service.namespace")
    return f"{namespace}/{row.resource['service.name']}" if namespace else str(row.resource["service.name"])


@pytest.fixture(scope="module")
def entries() -> Iterator[list[tuple[LogRow, dict[str, str], dict[str, str], str]]]:
    """Every record the publisher sent, with its Loki labels, metadata and line (one run per module)."""
    with serving_http() as receiver:
        for extra in JOBS.values():  # each exits normally: its exit hook ships all
            run_python(PUBLISHER, publisher_env(receiver.endpoint, OTEL_SERVICE_NAME="logql", **extra))
        for who in ("first", "second"):
            env = publisher_env(
                receiver.endpoint,
                OTEL_SERVICE_NAME="logql-errors",
                OTEL_RESOURCE_ATTRIBUTES="service.namespace=research",
                WHO=who,
            )
            run_python(ERRORS, env)
        yield [(row, *loki_entry(row)) for row in receiver.log_rows()]


def selected(entries: list[Any], query: str) -> list[LogRow]:
    return [row for row, labels, metadata, _ in entries if matches(query, labels, metadata)]


def test_every_dashboard_log_query_is_checked_here() -> None:
    titles = [
        p["title"]
        for p in DASHBOARD["panels"]
        for t in p.get("targets", [])
        if t["datasource"]["type"] == "loki"
    ]
    assert sorted(titles) == ["Errors", "Errors", "Latest data events", "Process logs", "Recent logs"]


@pytest.mark.parametrize("job", JOBS)
def test_latest_data_events_selects_exactly_the_chosen_streams(entries: list[Any], job: str) -> None:
    query = loki_query("Latest data events", job, topic="logql:test", stream="sensors|camera")
    rows = selected(entries, query)
    assert sorted(row.attributes["stream"] for row in rows) == ["camera"] * 3 + ["sensors"] * 3
    assert all(row.event_name == "liveview.data" for row in rows)
    assert {job_of(row) for row in rows} == {job}  # not the other service's records
    line = next(line for row, _, _, line in entries if row in rows and row.attributes["stream"] == "sensors")
    assert json.loads(line) == {"sensor_1": 0.8, "arm": {"x": 0}}  # `| json` works on the line
    assert not selected(entries, loki_query("Latest data events", job, topic="another:topic", stream=".+"))
    assert not selected(
        entries, loki_query("Latest data events", "other/logql", topic="logql:test", stream=".+")
    )


@pytest.mark.parametrize("job", JOBS)
def test_recent_logs_selects_the_plain_logs_and_nothing_else(entries: list[Any], job: str) -> None:
    rows = selected(entries, loki_query("Recent logs", job, topic="logql:test"))
    assert sorted(row.body for row in rows) == sorted(
        [f"a {level} line" for level in ("debug", "info", "warning", "error", "critical")]
        + ["a log that names a stream", "from the logging module"]
    )
    assert {row.severity_text for row in rows} == {"DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
    assert {job_of(row) for row in rows} == {job}
    kinds = {row.event_name for row, *_ in entries if job_of(row) == job}
    assert {"", "liveview.metric", "liveview.data", "liveview.status"} <= kinds  # the others were there


def test_the_index_holds_one_stream_per_process(entries: list[Any]) -> None:
    streams = {tuple(sorted(labels.items())) for row, labels, _, _ in entries if job_of(row) in JOBS}
    assert len(streams) == 2
    assert sorted(tuple(key for key, _ in stream) for stream in streams) == [
        ("service_instance_id", "service_name"),
        ("service_instance_id", "service_name", "service_namespace"),
    ]
    # The dashboard's stream selector, its variables filled for either job, picks exactly one stream.
    for job in JOBS:
        selector = loki_query("Recent logs", job, topic="t").partition("}")[0] + "}"
        assert len({s for s in streams if matches(selector, dict(s), {})}) == 1


def test_errors_selects_failed_and_aborted_runs_with_their_error(entries: list[Any]) -> None:
    rows = selected(entries, loki_query("Errors", ERRORS_JOB, "A", topic="logql:test"))
    assert sorted((row.attributes["experiment"], row.attributes["status"]) for row in rows) == [
        ("diverged-first", "failed"),
        ("diverged-second", "failed"),
        ("stopped-first", "aborted"),
        ("stopped-second", "aborted"),
    ]
    lines = {row.attributes["experiment"]: json.loads(line) for row, _, _, line in entries if row in rows}
    # The error text is in the line the panel shows.
    assert lines["diverged-first"] == {
        "experiment": "diverged-first",
        "status": "failed",
        "error": "FloatingPointError: loss is NaN (first)",
    }
    assert lines["stopped-second"]["error"] == "KeyboardInterrupt"
    assert {row.severity_number for row in rows} == {17, 9}  # failed is ERROR, aborted INFO
    # The publishers of the other services had no failed run; another topic has none.
    for job in JOBS:
        assert not selected(entries, loki_query("Errors", job, "A", topic="logql:test"))
    assert not selected(entries, loki_query("Errors", ERRORS_JOB, "A", topic="another:topic"))


def test_errors_selects_the_error_and_fatal_logs_and_nothing_else(entries: list[Any]) -> None:
    rows = selected(entries, loki_query("Errors", ERRORS_JOB, "B", topic="logql:test"))
    assert sorted(row.body for row in rows) == sorted(
        f"{who}: {text}"
        for who in ("first", "second")
        for text in ("a error line", "a critical line", "from logging, error", "from logging, critical")
    )
    assert {(row.severity_number, row.severity_text) for row in rows} == {(17, "ERROR"), (21, "FATAL")}
    assert all(row.event_name == "" for row in rows)  # not the failed status event, though ERROR too
    for job in JOBS:  # each service its own
        rows = selected(entries, loki_query("Errors", job, "B", topic="logql:test"))
        assert sorted(row.body for row in rows) == ["a critical line", "a error line"]
        assert {job_of(row) for row in rows} == {job}
    # What the two queries leave out is there: warnings, a log saying failed, the NaN metric's event.
    mine = [row for row, *_ in entries if job_of(row) == ERRORS_JOB]
    assert {"first: a warning line", "first: a log that says failed"} <= {str(row.body) for row in mine}
    assert any(row.event_name == "liveview.metric" and "nan" in row.body["value"] for row in mine)


def test_process_logs_selects_one_process_of_the_service(entries: list[Any]) -> None:
    instances = {
        row.body.split(":")[0]: row.resource["service.instance.id"]
        for row, *_ in entries
        if job_of(row) == ERRORS_JOB and row.event_name == ""
    }
    assert set(instances) == {"first", "second"} and len(set(instances.values())) == 2
    expected = {"a debug line", "a info line", "a warning line", "a error line", "a critical line"}
    expected |= {"a log that says failed", "from logging, error", "from logging, critical"}
    for who, instance in instances.items():  # one repeat of the row per process
        # A UUID is the same text regex-escaped, as Grafana escapes a multi-value variable for =~.
        query = loki_query("Process logs", ERRORS_JOB, topic="logql:test", instance=instance)
        assert {row.body for row in selected(entries, query)} == {f"{who}: {text}" for text in expected}
    everyone = selected(entries, loki_query("Process logs", ERRORS_JOB, topic="logql:test", instance=".*"))
    assert len(everyone) == 2 * len(expected)
    assert not selected(
        entries, loki_query("Process logs", "logql", topic="logql:test", instance=instances["first"])
    )
