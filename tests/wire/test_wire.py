"""What the real OTLP exporters put on the wire, decoded by the in-suite receiver.

Each scenario runs `tests.support.publisher` in a fresh interpreter (the pipeline is per process) pointed at
the receiver, and asserts exact names, attributes, bodies and counts.
"""

from __future__ import annotations

import collections

import pytest

from tests.support.processes import publisher_env, run_module
from tests.support.receiver import Receiver, wait_until

COUNT = 50
ORIGINS = {
    "main": ["main"],
    "threads": [f"thread{i}" for i in range(4)],
    "tasks": [f"task{i}" for i in range(4)],
    "fork": ["fork"],
    "forkserver": ["forkserver"],
    "spawn": ["spawn"],
    "osfork": ["osfork"],
}


def run_publisher(
    receiver: Receiver, protocol: str, topic: str, *origins: str, env: dict[str, str] | None = None
) -> None:
    environment = publisher_env(
        receiver.endpoint,
        protocol=protocol,
        OTEL_EXPORTER_OTLP_INSECURE="true",
        OTEL_METRIC_EXPORT_INTERVAL="200",
        OTEL_SERVICE_NAME="wire-test",
        **(env or {}),
    )
    run_module("tests.support.publisher", topic, str(COUNT), *origins, env=environment)


@pytest.fixture(params=["http/protobuf", "grpc"])
def wire(
    request: pytest.FixtureRequest, http_receiver: Receiver, grpc_receiver: Receiver
) -> tuple[str, Receiver]:
    return request.param, http_receiver if request.param == "http/protobuf" else grpc_receiver


def test_every_item_arrives_once_from_its_own_process(wire: tuple[str, Receiver]) -> None:
    protocol, receiver = wire
    origins = ["main", "threads", "tasks", "osfork", "fork", "spawn"]
    if protocol == "http/protobuf":
        origins.append("forkserver")
    run_publisher(receiver, protocol, "wire:all", *origins)
    expected = [name for origin in origins for name in ORIGINS[origin]]

    logs = [
        row
        for row in receiver.log_rows()
        if row.event_name == "" and row.attributes.get("topic") == "wire:all"
    ]
    data = [row for row in receiver.log_rows() if row.event_name == "liveview.data"]
    for rows, origin_of in ((logs, lambda r: r.attributes["origin"]), (data, lambda r: r.body["origin"])):
        seen = collections.Counter(
            (origin_of(r), r.attributes.get("seq", r.body.get("seq") if isinstance(r.body, dict) else None))
            for r in rows
        )
        assert sorted(seen) == sorted((origin, seq) for origin in expected for seq in range(COUNT))
        assert set(seen.values()) == {1}, "an item arrived more than once"

    # Each record comes from the process that published it, and each process has one instance id.
    instances_by_pid = collections.defaultdict(set)
    for row in logs:
        assert row.resource["process.pid"] == row.attributes["pid"]
        instances_by_pid[row.resource["process.pid"]].add(row.resource["service.instance.id"])
    assert all(len(ids) == 1 for ids in instances_by_pid.values())
    all_ids = [next(iter(ids)) for ids in instances_by_pid.values()]
    assert (
        len(set(all_ids))
        == len(all_ids)
        == 1 + sum(o in ("fork", "spawn", "osfork", "forkserver") for o in origins)
    )

    # The last value of every metric arrives, from its process only (no duplicated buffers).
    for origin in expected:
        latest = receiver.latest("liveview.metric")
        mine = {k: v for k, v in latest.items() if dict(k[1]).get("metric") == f"seq_{origin}"}
        assert list(mine.values()) == [COUNT - 1], (origin, mine)
        assert dict(next(iter(mine))[1]) == {"metric": f"seq_{origin}", "topic": "wire:all", "phase": "test"}


def test_names_attributes_and_bodies(http_receiver: Receiver) -> None:
    run_publisher(http_receiver, "http/protobuf", "wire:names", "main")
    rows = http_receiver.log_rows()
    resource = rows[0].resource
    assert resource["service.name"] == "wire-test"
    assert resource["liveview.topic"] == "wire:names"
    assert {"service.instance.id", "process.pid", "host.name"} <= set(resource)
    assert {row.scope for row in rows} == {"otel_liveview"}

    log = next(r for r in rows if r.event_name == "" and r.attributes["seq"] == 3)
    assert (log.severity_number, log.severity_text, log.body) == (9, "INFO", "main 3")
    assert log.attributes == {
        "origin": "main",
        "seq": 3,
        "pid": resource["process.pid"],
        "topic": "wire:names",
    }
    assert log.time_unix_nano > 0

    data = next(r for r in rows if r.event_name == "liveview.data" and r.body["seq"] == 3)
    # event_name also as an attribute: Loki up to 3.7 keeps attributes, not the field.
    assert data.attributes == {"stream": "wire", "topic": "wire:names", "event_name": "liveview.data"}
    assert data.body == {"origin": "main", "seq": 3, "pid": resource["process.pid"], "value": 1.5}

    event = next(r for r in rows if r.event_name == "liveview.metric")
    assert set(event.body) == {"metric", "time", "value", "step"} and event.body["metric"] == "seq_main"
    assert event.attributes == {
        "metric": "seq_main",
        "phase": "test",
        "topic": "wire:names",
        "event_name": "liveview.metric",
    }
    updates = http_receiver.metric_updates()
    assert [(u["value"], u["step"]) for u in updates] == [(float(n), float(n)) for n in range(COUNT)]
    labels = {"metric": "seq_main", "topic": "wire:names", "phase": "test"}
    assert all(labels.items() <= update.items() for update in updates)
    assert event.time_unix_nano == int(event.body["time"][0] * 1e9)  # its first update's

    gauges = {row.name for row in http_receiver.point_rows()}
    assert {"liveview.metric", "liveview.metric.step", "liveview.data", "liveview.published"} <= gauges
    step = http_receiver.latest("liveview.metric.step")
    assert list(step.values()) == [COUNT - 1]
    data_points = http_receiver.latest("liveview.data")
    assert {dict(k[1])["key"]: v for k, v in data_points.items()} == {
        "seq": COUNT - 1,
        "pid": resource["process.pid"],
        "value": (COUNT - 1) / 2,
    }
    published = {dict(k[1])["kind"]: v for k, v in http_receiver.latest("liveview.published").items()}
    assert published == {"log": COUNT, "data": COUNT, "metric": COUNT, "status": 0}
    counters = [row for row in http_receiver.point_rows("liveview.published")]
    assert all(row.kind == "sum" and row.monotonic and row.temporality == 2 for row in counters)  # cumulative


def test_metric_events_can_be_turned_off(http_receiver: Receiver) -> None:
    run_publisher(
        http_receiver, "http/protobuf", "wire:quiet", "main", env={"OTEL_LIVEVIEW_METRIC_EVENTS": "false"}
    )
    assert not [r for r in http_receiver.log_rows() if r.event_name == "liveview.metric"]
    wait_until(lambda: http_receiver.latest("liveview.metric"), what="the metric gauge")
    # Every call counted as published, and no event counted as dropped: none was made.
    published = {dict(k[1])["kind"]: v for k, v in http_receiver.latest("liveview.published").items()}
    assert published["metric"] == COUNT
    dropped = {
        (dict(k[1])["kind"], dict(k[1])["reason"]): v
        for k, v in http_receiver.latest("liveview.dropped").items()
    }
    assert not any(dropped.values()), dropped
