"""The library end to end into a real Prometheus: OTLP/HTTP -> vmagent -> remote write -> Prometheus.

Each scenario runs tests/support/e2e_publisher.py in a fresh interpreter (the pipeline is per process) with a
service name of its own, then queries Prometheus until the expected series appear, and asserts the
exact names, label sets and values of docs/naming.md.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from tests.support import ROOT
from tests.support.e2e_publisher import (
    ORIGINS,
    by_stream_and_key,
    data_labels,
    data_values,
    metric_labels,
    value_of,
)
from tests.support.processes import publisher_env
from tests.support.receiver import Receiver, serving_http
from tests.support.servers import PushStack, query, wait_for_series

pytestmark = pytest.mark.servers

COUNT = 40  # publishes per origin
STATES = ("initializing", "running", "completed", "failed", "aborted")
PUBLISHER = [sys.executable, "-m", "tests.support.e2e_publisher"]


def environment(stack: PushStack, receiver: Receiver, service: str, **extra: str) -> dict[str, str]:
    """The caller's environment without its OTEL_* settings, pointed at vmagent (metrics) and the
    in-suite receiver (logs, which Prometheus never sees)."""
    return publisher_env(
        metrics=stack.otlp_metrics_endpoint,
        logs=receiver.endpoint + "/v1/logs",
        OTEL_METRIC_EXPORT_INTERVAL="200",
        OTEL_SERVICE_NAME=service,
        **extra,
    )


def unique(name: str) -> str:
    return f"e2e-{name}-{uuid.uuid4().hex[:8]}"


def reports(stdout: str) -> dict[str, dict[str, Any]]:
    """origin -> {"pid", "instance"} from the publisher's report lines."""
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith('{"origin"')]
    return {row["origin"]: row for row in rows}


def by_label(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {series["metric"][label]: float(series["value"][1]) for series in result}


@pytest.fixture(scope="module")
def log_sink() -> Iterator[Receiver]:
    """Somewhere for the publishers' logs and events to go; these tests look at metrics only."""
    with serving_http() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def origins_run(push_stack: PushStack, log_sink: Receiver) -> tuple[str, str, dict[str, Any]]:
    """One run of the "origins" scenario, shared by the tests that look at its series."""
    service, topic = unique("origins"), unique("topic")
    result = subprocess.run(
        [*PUBLISHER, "origins", topic, str(COUNT)],
        cwd=ROOT,
        env=environment(push_stack, log_sink, service),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return service, topic, reports(result.stdout)


def test_every_origin_lands_with_its_process_as_instance(
    push_stack: PushStack, origins_run: tuple[str, str, dict[str, Any]]
) -> None:
    service, topic, seen = origins_run
    assert sorted(seen) == sorted(ORIGINS)
    instance = {origin: row["instance"] for origin, row in seen.items()}
    parent = instance["main"]
    assert all(instance[o] == parent for o in ORIGINS if o.startswith(("thread", "task")))
    assert len({parent, instance["fork"], instance["spawn"]}) == 3 and "" not in instance.values()
    assert len({seen["main"]["pid"], seen["fork"]["pid"], seen["spawn"]["pid"]}) == 3

    last = COUNT - 1
    expected = {origin: value_of(origin, last) for origin in ORIGINS}
    metrics = wait_for_series(
        push_stack,
        f'liveview_metric{{job="{service}"}}',
        lambda result: by_label(result, "origin") == expected,
    )
    for name, value in (
        ("liveview_metric", None),
        ("liveview_metric_step", float(last)),
        ("liveview_metric_epoch", float(last // 10)),
    ):
        result = metrics if value is None else query(push_stack, f'{name}{{job="{service}"}}')
        labels = sorted((series["metric"] for series in result), key=lambda labels: labels["origin"])
        expected = metric_labels(name, topic, service, instance)
        assert labels == sorted(expected, key=lambda labels: labels["origin"])
        if value is not None:
            assert {float(series["value"][1]) for series in result} == {value}, name


def test_data_streams_become_one_series_per_numeric_key(
    push_stack: PushStack, origins_run: tuple[str, str, dict[str, Any]]
) -> None:
    service, topic, seen = origins_run
    instance = {origin: seen[origin]["instance"] for origin in ORIGINS}
    result = wait_for_series(
        push_stack,
        f'liveview_data{{job="{service}"}}',
        lambda r: {by_stream_and_key(s["metric"]): float(s["value"][1]) for s in r} == data_values(COUNT - 1),
    )
    labels = sorted((series["metric"] for series in result), key=by_stream_and_key)
    assert labels == data_labels(topic, service, instance)


def test_published_counters_count_each_process_exactly(
    push_stack: PushStack, origins_run: tuple[str, str, dict[str, Any]]
) -> None:
    service, _, seen = origins_run
    in_parent = sum(1 for o in ORIGINS if o not in ("fork", "spawn"))
    expected = {
        seen["main"]["instance"]: in_parent * COUNT,
        seen["fork"]["instance"]: COUNT,
        seen["spawn"]["instance"]: COUNT,
    }

    def counts(result: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
        return {(s["metric"]["instance"], s["metric"]["kind"]): float(s["value"][1]) for s in result}

    want = {(inst, kind): float(n) for inst, n in expected.items() for kind in ("metric", "data", "log")}
    result = wait_for_series(
        push_stack,
        f'liveview_published_total{{job="{service}"}}',
        lambda r: {k: v for k, v in counts(r).items() if k[1] != "status"} == want,
    )
    for series in result:
        assert set(series["metric"]) == {"__name__", "kind", "job", "instance"}
        if series["metric"]["kind"] == "status":  # no experiment in this run
            assert series["value"][1] == "0"
    dropped = query(push_stack, f'liveview_dropped_total{{job="{service}"}}')
    assert all(series["value"][1] == "0" for series in dropped), dropped

    # Nothing of the resource is left as a label: only job and instance stand for it.
    every = query(push_stack, f'{{job="{service}"}}')
    names = {label for series in every for label in series["metric"]}
    point_labels = {"metric", "topic", "phase", "origin", "stream", "key", "kind", "reason"}
    assert names - point_labels == {"__name__", "job", "instance"}
    assert {series["metric"]["__name__"] for series in every} >= {
        "liveview_metric",
        "liveview_metric_step",
        "liveview_metric_epoch",
        "liveview_data",
        "liveview_published_total",
    }


def statuses(result: list[dict[str, Any]], experiment: str) -> dict[str, float]:
    return {
        s["metric"]["status"]: float(s["value"][1]) for s in result if s["metric"]["experiment"] == experiment
    }


def current(state: str) -> dict[str, float]:
    return {s: 1.0 if s == state else 0.0 for s in STATES}


def test_experiment_status_goes_running_then_completed_or_failed(
    push_stack: PushStack, log_sink: Receiver
) -> None:
    service, topic = unique("status"), unique("topic")
    process = subprocess.Popen(
        [*PUBLISHER, "status", topic],
        cwd=ROOT,
        env=environment(push_stack, log_sink, service),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        instance = json.loads(process.stdout.readline())["instance"]
        status_query = f'liveview_experiment_status{{job="{service}"}}'
        running = wait_for_series(
            push_stack,
            status_query,
            lambda r: statuses(r, "done-run") == current("running") == statuses(r, "broken-run"),
        )
        for series in running:
            assert series["metric"] == {
                "__name__": "liveview_experiment_status",
                "experiment": series["metric"]["experiment"],
                "status": series["metric"]["status"],
                "topic": topic,
                "job": service,
                "instance": instance,
            }
        nan = wait_for_series(
            push_stack,
            f'liveview_metric_nonfinite{{job="{service}"}}',
            lambda r: by_label(r, "value") == {"nan": 1.0, "inf": 0.0, "-inf": 0.0},
        )
        assert {frozenset(s["metric"].items()) - {("value", s["metric"]["value"])} for s in nan} == {
            frozenset(
                {
                    ("__name__", "liveview_metric_nonfinite"),
                    ("metric", "grad_norm"),
                    ("topic", topic),
                    ("job", service),
                    ("instance", instance),
                }
            )
        }

        process.stdin.write("go\n")
        process.stdin.close()
        assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    wait_for_series(
        push_stack,
        status_query,
        lambda r: (
            statuses(r, "done-run") == current("completed") and statuses(r, "broken-run") == current("failed")
        ),
    )
    wait_for_series(
        push_stack,
        f'liveview_metric_nonfinite{{job="{service}"}}',
        lambda r: by_label(r, "value") == {"nan": 0.0, "inf": 0.0, "-inf": 0.0},
    )
    assert by_label(query(push_stack, f'liveview_metric{{job="{service}"}}'), "metric") == {"grad_norm": 0.25}
    # Six status changes: initializing and running for each experiment, then completed and failed;
    # and each experiment's info.
    assert by_label(query(push_stack, f'liveview_published_total{{job="{service}"}}'), "kind") == {
        "metric": 2.0,
        "status": 6.0,
        "info": 2.0,
        "data": 0.0,
        "log": 0.0,
    }


def test_publish_to_queryable_latency(push_stack: PushStack, log_sink: Receiver) -> None:
    """Prints how long published values take to be queryable, with the default export interval.

    The publisher sets metric "probe" to 1, 2, 3, ... every 50 ms while the test polls Prometheus;
    value k counts as queryable once a value >= k is visible (a gauge exports only its last value).
    """
    service, topic = unique("latency"), unique("topic")
    env = environment(push_stack, log_sink, service)
    del env["OTEL_METRIC_EXPORT_INTERVAL"]  # the library's default (1 s), as docs/benchmarks.md measures
    count = 80
    process = subprocess.Popen(
        [*PUBLISHER, "probe", topic, str(count), "50"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[tuple[float, float]] = []  # (when, value) each time the visible value changed
    try:
        assert process.stdout is not None and process.stdin is not None
        json.loads(process.stdout.readline())
        probe = f'liveview_metric{{job="{service}",metric="probe"}}'

        def observe(result: list[dict[str, Any]]) -> bool:
            if result:
                value = float(result[0]["value"][1])
                if not seen or seen[-1][1] != value:
                    seen.append((time.time(), value))
            return bool(seen) and seen[-1][1] == count

        wait_for_series(push_stack, probe, observe, timeout=30, interval=0.01)
        published = json.loads(process.stdout.readline())["published"]
        process.stdin.close()
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert [value for _, value in seen] == sorted(value for _, value in seen)  # never goes back
    samples = [
        next(when for when, value in seen if value >= number) - published_at
        for number, published_at in published
    ]
    transport = transport_latency(push_stack, samples=6)
    print(
        f"\npublish-to-queryable latency, library default export interval (1 s) -> vmagent -> "
        f"Prometheus; {len(samples)} values published every 50 ms, {len(seen)} distinct values seen:\n"
        f"  {summary(samples)}\n"
        f"of which vmagent + Prometheus alone (an SDK export straight to vmagent, then polling):\n"
        f"  {summary(transport)}  samples: {' '.join(f'{s:.3f}' for s in transport)}"
    )


def summary(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=20, method="inclusive")
    return (
        f"min {min(samples):.3f} s, p50 {statistics.median(samples):.3f} s, "
        f"p95 {cuts[18]:.3f} s, max {max(samples):.3f} s"
    )


def transport_latency(stack: PushStack, samples: int) -> list[float]:
    """Seconds from an OTLP export reaching vmagent to the value being queryable in Prometheus.

    vmagent flushes its remote-write buffer at most once per wall-clock second, so this part alone
    varies between ~0 and ~1 s; a random pause before each export samples that phase evenly.
    """
    instance = unique("transport")
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=stack.otlp_metrics_endpoint), export_interval_millis=3_600_000
    )
    resource = Resource.create({"service.name": "e2e-transport", "service.instance.id": instance})
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    gauge = provider.get_meter("e2e").create_gauge("transport.probe")
    latencies = []
    try:
        for number in range(1, samples + 1):
            time.sleep(random.random())  # sampling jitter, not a wait for anything
            gauge.set(number)
            assert provider.force_flush(10_000)
            exported = time.time()
            wait_for_series(
                stack,
                f'transport_probe{{instance="{instance}"}} == {number}',
                timeout=15,
                interval=0.01,
            )
            latencies.append(time.time() - exported)
    finally:
        provider.shutdown()
    return latencies
