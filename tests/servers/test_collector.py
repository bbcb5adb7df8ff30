"""The real OpenTelemetry Collector (0.159.0, built from deploy/otel-collector/builder.yaml) running the
shipped deploy/otel-collector/config.yaml unmodified, only its addresses overridden with --set.

End to end: tests/support/e2e_publisher.py (main thread, threads, asyncio tasks, a fork child, a spawn child)
-> Collector (OTLP gRPC and OTLP/HTTP) -> remote write -> Prometheus 3.14 running the shipped
prometheus.yml; the same publisher straight into Prometheus' own OTLP receiver, compared label for
label. Logs and events go from the Collector's Loki exporter to tests/support/receiver.py, an OTLP receiver
standing in for Loki (no Loki runs in the suite): it shows what the Collector sends, not what Loki keeps.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from otel_liveview import __version__
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
from tests.support.receiver import Receiver, metric_updates, serving_http, wait_until
from tests.support.servers import (
    PROMETHEUS_3_FLAGS,
    SHIPPED_COLLECTOR_CONFIG,
    Collector,
    Server,
    free_port,
    query,
    server_binary,
    shipped_prometheus_config,
    start_collector,
    start_prometheus,
    wait_for_series,
)

pytestmark = pytest.mark.servers

COUNT = 40  # publishes per origin
PUBLISHER = [sys.executable, "-m", "tests.support.e2e_publisher"]
SERIES = ("liveview_metric", "liveview_metric_step", "liveview_metric_epoch")
# Resource attributes of the library's processes that end up in target_info (job and instance aside).
TARGET_INFO_LABELS = {
    "host_name",
    "process_pid",
    "liveview_topic",
    "telemetry_sdk_language",
    "telemetry_sdk_name",
    "telemetry_sdk_version",
}
# What the "origins" scenario publishes; liveview_published_total's other kinds (status, ...) stay 0.
KINDS = ("metric", "data", "log")
PATHS = ("collector-grpc", "collector-http", "prometheus-otlp")


def test_the_shipped_config_validates() -> None:
    binary = server_binary("otelcol")
    for gates in ([], ["--feature-gates=+exporter.prometheusremotewritexporter.removeTopLevelHTTPSettings"]):
        # The gate turns the remote-write exporter's deprecated top-level HTTP settings into errors.
        result = subprocess.run(
            [binary, "validate", *gates, f"--config={SHIPPED_COLLECTOR_CONFIG}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_the_build_has_exactly_the_components_the_config_uses() -> None:
    result = subprocess.run(
        [server_binary("otelcol"), "components"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    built = yaml.safe_load(result.stdout)
    config = yaml.safe_load(SHIPPED_COLLECTOR_CONFIG.read_text())
    for kind in ("receivers", "processors", "exporters", "extensions"):
        names = {component["name"] for component in built.get(kind) or []}
        used = {name.split("/")[0] for name in config[kind]}
        assert names == used, kind


@dataclass
class Stack:
    prometheus: Server
    collector: Collector
    loki: Receiver  # stand-in: an OTLP receiver where the Collector's Loki exporter posts

    @property
    def servers(self) -> list[Server]:
        return [self.prometheus, self.collector]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Prometheus 3.14 with the shipped prometheus.yml and compose flags, the Collector with the
    shipped config writing to it, and the Loki stand-in."""
    workdir = tmp_path_factory.mktemp("collector-stack")
    nowhere = f"127.0.0.1:{free_port()}"  # no Alertmanager: nothing here pages
    prometheus = start_prometheus(
        workdir / "prometheus",
        binary="prometheus-3.14",
        config_text=shipped_prometheus_config(alertmanager=nowhere),
        extra_args=PROMETHEUS_3_FLAGS,
    )
    try:
        with serving_http() as loki:
            collector = start_collector(
                workdir / "otelcol",
                remote_write_url=prometheus.url + "/api/v1/write",
                loki_url=loki.endpoint + "/otlp",  # Loki's OTLP path, as the shipped config has it
            )
            try:
                yield Stack(prometheus, collector, loki)
            finally:
                collector.stop()
    finally:
        prometheus.stop()


@dataclass
class Run:
    service: str
    topic: str
    seen: dict[str, dict[str, Any]]  # origin -> {"pid", "instance"}
    seconds: float


def path_env(stack: Stack, path: str, service: str) -> dict[str, str]:
    """A publisher's environment for one of PATHS."""
    settings = {"OTEL_METRIC_EXPORT_INTERVAL": "200", "OTEL_SERVICE_NAME": service}
    if path == "collector-grpc":
        return publisher_env(
            stack.collector.otlp_grpc_endpoint,
            protocol="grpc",
            OTEL_EXPORTER_OTLP_INSECURE="true",
            **settings,
        )
    if path == "collector-http":
        return publisher_env(stack.collector.otlp_http_endpoint, **settings)
    # metrics straight into Prometheus' OTLP receiver; logs still through the Collector
    return publisher_env(
        metrics=stack.prometheus.url + "/api/v1/otlp/v1/metrics",
        logs=stack.collector.otlp_http_endpoint + "/v1/logs",
        **settings,
    )


def run_origins(stack: Stack, path: str, name: str, collector: Collector | None = None) -> Run:
    """The "origins" scenario once along `path`, under a service name (the `job`) of its own."""
    suffix = uuid.uuid4().hex[:8]
    service, topic = f"otelcol-{name}-{suffix}", f"topic-{suffix}"
    env = path_env(stack, path, service)
    if collector is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.otlp_http_endpoint
    started = time.monotonic()
    result = subprocess.run(
        [*PUBLISHER, "origins", topic, str(COUNT)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"origin"')]
    return Run(service, topic, {row["origin"]: row for row in rows}, time.monotonic() - started)


@pytest.fixture(scope="module")
def runs(stack: Stack) -> dict[str, Run]:
    """One run of the "origins" scenario per path."""
    return {path: run_origins(stack, path, path) for path in PATHS}


def published_counts(run: Run) -> dict[tuple[str, str], float]:
    """(instance, kind) -> what each process of the run published, for the kinds it publishes."""
    in_parent = sum(1 for o in ORIGINS if o not in ("fork", "spawn"))
    instance = {origin: row["instance"] for origin, row in run.seen.items()}
    per_process = {instance["main"]: in_parent * COUNT, instance["fork"]: COUNT, instance["spawn"]: COUNT}
    return {(inst, kind): float(n) for inst, n in per_process.items() for kind in KINDS}


def published_final(result: list[dict[str, Any]], run: Run) -> bool:
    """liveview_published_total of the run holds its final counts, and 0 for every other kind."""
    counts = {
        (s["metric"]["instance"], s["metric"]["kind"]): float(s["value"][1])
        for s in result
        if s["metric"]["__name__"] == "liveview_published_total"
    }
    known = {key: value for key, value in counts.items() if key[1] in KINDS}
    return known == published_counts(run) and all(v == 0 for k, v in counts.items() if k[1] not in KINDS)


def every_series(prometheus: Server, run: Run) -> list[dict[str, Any]]:
    """Every series of the run's job, once all its final values have arrived."""
    last = {origin: value_of(origin, COUNT - 1) for origin in ORIGINS}

    def complete(result: list[dict[str, Any]]) -> bool:
        names = Counter(s["metric"]["__name__"] for s in result)
        metric = [s for s in result if s["metric"]["__name__"] == "liveview_metric"]
        # The data gauge follows the events on the export thread, so an export can carry the final
        # metric values and counts before the last data values: wait for those too.
        depths = [
            float(s["value"][1])
            for s in result
            if s["metric"]["__name__"] == "liveview_data" and s["metric"]["key"] == "nested.depth"
        ]
        return (
            by_origin(metric) == last
            and names["liveview_metric_step"] == names["liveview_metric_epoch"] == len(ORIGINS)
            and names["liveview_data"] == 3 * len(ORIGINS)
            and depths == [float(COUNT - 1)] * len(ORIGINS)
            and names["target_info"] == 3
            and published_final(result, run)
        )

    return wait_for_series(prometheus, f'{{job="{run.service}"}}', complete, timeout=60)


def by_origin(result: list[dict[str, Any]]) -> dict[str, float]:
    return {series["metric"]["origin"]: float(series["value"][1]) for series in result}


@pytest.mark.parametrize("path", ["collector-grpc", "collector-http"])
def test_every_origin_lands_with_exact_names_labels_and_values(
    stack: Stack, runs: dict[str, Run], path: str
) -> None:
    run = runs[path]
    service, topic, seen = run.service, run.topic, run.seen
    assert sorted(seen) == sorted(ORIGINS)
    instance = {origin: row["instance"] for origin, row in seen.items()}
    assert len({instance["main"], instance["fork"], instance["spawn"]}) == 3
    last = COUNT - 1
    expected = {origin: value_of(origin, last) for origin in ORIGINS}
    prom = stack.prometheus
    wait_for_series(
        prom, f'liveview_metric{{job="{service}"}}', lambda r: by_origin(r) == expected, timeout=60
    )
    for name, value in zip(SERIES, (None, float(last), float(last // 10)), strict=True):
        result = wait_for_series(prom, f'{name}{{job="{service}"}}', lambda r: len(r) == len(ORIGINS))
        labels = sorted((series["metric"] for series in result), key=lambda labels: labels["origin"])
        expected = metric_labels(name, topic, service, instance)
        assert labels == sorted(expected, key=lambda labels: labels["origin"])
        if value is not None:
            assert {float(series["value"][1]) for series in result} == {value}, name

    data = wait_for_series(prom, f'liveview_data{{job="{service}"}}', lambda r: len(r) == 3 * len(ORIGINS))
    assert {by_stream_and_key(s["metric"]): float(s["value"][1]) for s in data} == data_values(last)
    labels = sorted((series["metric"] for series in data), key=by_stream_and_key)
    assert labels == data_labels(topic, service, instance)

    # Published counters: exact per process; other kinds ("status": no experiment here) are 0.
    published = wait_for_series(
        prom, f'liveview_published_total{{job="{service}"}}', lambda r: published_final(r, run)
    )
    assert all(set(s["metric"]) == {"__name__", "kind", "job", "instance"} for s in published)
    assert query(prom, f'liveview_dropped_total{{job="{service}"}}') == []  # nothing dropped

    # target_info: one per process, the resource attributes other than service.* as labels.
    info = wait_for_series(prom, f'target_info{{job="{service}"}}', lambda r: len(r) == 3)
    pids = {seen[o]["instance"]: str(seen[o]["pid"]) for o in ("main", "fork", "spawn")}
    for series in info:
        labels = series["metric"]
        assert set(labels) == {"__name__", "job", "instance", *TARGET_INFO_LABELS}, labels
        assert labels["process_pid"] == pids[labels["instance"]]
        assert labels["liveview_topic"] == topic
        assert labels["telemetry_sdk_language"] == "python"
        assert series["value"][1] == "1"
    assert {s["metric"]["instance"] for s in info} == set(pids)

    # Every name this job has in Prometheus, and nothing of the resource or scope as a label.
    every = query(prom, f'{{job="{service}"}}')
    assert {s["metric"]["__name__"] for s in every} == {
        *SERIES,
        "liveview_data",
        "liveview_published_total",
        "target_info",
    }
    print(f"\n{path}: {len(every)} series, publisher ran {run.seconds:.1f} s")


@pytest.mark.parametrize("path", PATHS)
def test_events_and_logs_reach_the_loki_side_once_each(stack: Stack, runs: dict[str, Run], path: str) -> None:
    run = runs[path]

    def rows() -> list[Any]:
        return [row for row in stack.loki.log_rows() if row.resource.get("service.name") == run.service]

    # Per origin and step: a liveview.data event, a log record and a metric update; the updates
    # travel in liveview.metric events, one per series and export interval.
    total = 2 * COUNT * len(ORIGINS)

    def updates() -> list[tuple[Any, ...]]:
        return [
            (row.resource["service.instance.id"], update["origin"], update["metric"], update["step"])
            for row in rows()
            if row.event_name == "liveview.metric"
            for update in metric_updates([(row.body, row.attributes)])
        ]

    wait_until(
        lambda: (
            len(rows()) - Counter(r.event_name for r in rows())["liveview.metric"] >= total
            and len(updates()) >= COUNT * len(ORIGINS)
        ),
        timeout=60,
        what=f"{total} records and {COUNT * len(ORIGINS)} metric updates at the Loki stand-in",
    )
    got = rows()
    counts = Counter(row.event_name for row in got)
    assert (counts["liveview.data"], counts[""]) == (COUNT * len(ORIGINS), COUNT * len(ORIGINS))
    assert set(counts) == {"liveview.metric", "liveview.data", ""}
    arrived = updates()
    assert len(arrived) == len(set(arrived)) == COUNT * len(ORIGINS)  # each once
    assert {row.resource["service.instance.id"] for row in got} == {
        run.seen[o]["instance"] for o in ("main", "fork", "spawn")
    }
    assert all(row.resource.get("liveview.topic") == run.topic for row in got)
    assert set(stack.loki.attempts) == {"/otlp/v1/logs"}  # Loki's OTLP path


def normalised(result: list[dict[str, Any]], run: Run) -> dict[tuple[tuple[str, str], ...], str]:
    """Series keyed by their labels, with job, instance and process_pid replaced by what they stand
    for (the run's service, the origin's process), so two runs compare."""
    process = {run.seen[o]["instance"]: o for o in ("main", "fork", "spawn")}
    pids = {str(run.seen[o]["pid"]): o for o in ("main", "fork", "spawn")}
    out = {}
    for series in result:
        labels = dict(series["metric"])
        labels["job"] = "<service>" if labels["job"] == run.service else labels["job"]
        labels["instance"] = process.get(labels["instance"], labels["instance"])
        if "process_pid" in labels:
            labels["process_pid"] = pids.get(labels["process_pid"], labels["process_pid"])
        if labels.get("topic") == run.topic:
            labels["topic"] = "<topic>"
        if labels.get("liveview_topic") == run.topic:
            labels["liveview_topic"] = "<topic>"
        out[tuple(sorted(labels.items()))] = series["value"][1]
    return out


def test_prometheus_otlp_receiver_and_collector_give_the_same_series(
    stack: Stack, runs: dict[str, Run]
) -> None:
    """With the shipped configs (Collector: disable_scope_info; Prometheus: the otlp block), the two
    ways into Prometheus 3.14 give the same series: names, labels and values, target_info included,
    with no difference at all. With the exporter's default the Collector adds two labels (next test)."""
    direct, through = runs["prometheus-otlp"], runs["collector-http"]
    a = normalised(every_series(stack.prometheus, direct), direct)
    b = normalised(every_series(stack.prometheus, through), through)
    only_direct, only_collector = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    print(f"\nOTLP receiver vs Collector: {len(a)} series each; only in one: {only_direct} {only_collector}")
    assert only_direct == only_collector == []
    assert a == b  # and the same values


def test_the_collector_logged_no_warning_or_error(stack: Stack, runs: dict[str, Run]) -> None:
    """After every run above: no deprecated alias or setting, no failed export, nothing dropped; and
    Prometheus 3.14 took every remote write and OTLP request without a warning."""
    assert runs
    assert stack.collector.log_lines() == []
    prometheus_log = stack.prometheus.log_path.read_text(errors="replace").splitlines()
    assert [line for line in prometheus_log if re.search(r"\blevel=(WARN|ERROR)\b", line)] == []
    # The level is where log_lines() looks for it: the ready line is found at "info".
    ready = "Everything is ready. Begin running and processing data."
    assert any(ready in line for line in stack.collector.log_lines(levels=("info",)))
    failed = {
        name: stack.collector.telemetry(name)
        for name in (
            "otelcol_exporter_send_failed_log_records_total",
            "otelcol_exporter_send_failed_metric_points_total",
            "otelcol_exporter_enqueue_failed_log_records_total",
            "otelcol_receiver_refused_log_records_total",
            "otelcol_receiver_refused_metric_points_total",
        )
    }
    assert set(failed.values()) == {0.0}, failed


def test_without_disable_scope_info_the_collector_adds_exactly_the_scope_labels(
    stack: Stack, runs: dict[str, Run], collector_factory: Any
) -> None:
    """Why the shipped config sets disable_scope_info: with the exporter's default (false), the same
    publisher through the Collector gets otel_scope_name and otel_scope_version on every series
    but target_info, and differs from Prometheus' OTLP receiver in exactly those two labels."""
    collector = collector_factory(
        remote_write_url=stack.prometheus.url + "/api/v1/write",
        loki_url=stack.loki.endpoint + "/otlp",
        extra_args=["--set=exporters::prometheus_remote_write::disable_scope_info=false"],
    )
    run = run_origins(stack, "collector-http", "scope", collector)
    series = every_series(stack.prometheus, run)
    for item in series:
        extra = {k: v for k, v in item["metric"].items() if k.startswith("otel_scope_")}
        if item["metric"]["__name__"] == "target_info":
            assert extra == {}
        else:
            assert extra == {"otel_scope_name": "otel_liveview", "otel_scope_version": __version__}
    # Without those two labels, the same series as Prometheus' OTLP receiver made.
    for item in series:
        item["metric"] = {k: v for k, v in item["metric"].items() if not k.startswith("otel_scope_")}
    direct = runs["prometheus-otlp"]
    assert normalised(series, run) == normalised(every_series(stack.prometheus, direct), direct)
