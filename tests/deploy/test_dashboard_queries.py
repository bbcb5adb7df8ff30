"""Every Prometheus query of the LiveView dashboard, its variables resolved as Grafana resolves them
(tests/support/grafana.py: each variable query run against Prometheus – the label values API, or an instant
query for query_result –, regexes applied, datasource variables on their provisioned defaults,
$__range from the dashboard's 15 minutes), against the Prometheus 3.14 docker-compose.yml pins,
with the shipped OTLP settings and rules, fed through its OTLP receiver by a publishing experiment:
a running experiment with declared totals and info, a second one in the same process that diverges
to NaN and fails, a worker process of the same service, and another service on the same topic that
must stay out of every panel."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.deploy.test_dashboard_ranks import RANK_PANELS
from tests.support import grafana
from tests.support.processes import publisher_env, run_python, start_python
from tests.support.receiver import serving_http
from tests.support.servers import (
    query,
    start_shipped_prometheus_3,
    wait_for_series,
)

pytestmark = pytest.mark.servers

DASHBOARD = grafana.load()
TOPIC = "dashboard:queries"
SERVICE = "research/dashboard-queries"  # job: service.namespace/service.name

PUBLISHER = f"""
import math, sys, threading, time
from otel_liveview import LiveViewExperiment
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), done.set()), daemon=True).start()
totals = {{"train": {{"steps": 100, "epochs": 4}}, "eval": {{"steps": 10}}, "test": {{"epochs": 5}}, "export": {{"steps": 3}}}}
with LiveViewExperiment("dash", base_topic={TOPIC!r}, totals=totals, lr=0.001, model={{"depth": 3}}, seed=7) as experiment:
    b = experiment.broadcaster
    try:  # a second experiment of the same process, which diverges and fails
        with LiveViewExperiment("dash-sweep", base_topic={TOPIC!r}, lr=0.5) as sweep:
            sweep.broadcaster.publish_metric_sync("sweep_loss", 1.0, step=1, phase="sweep")
            time.sleep(0.5)
            sweep.broadcaster.publish_metric_sync("sweep_loss", math.nan, step=1, phase="sweep")
            raise FloatingPointError("loss diverged to NaN")
    except FloatingPointError:
        pass
    for step in range(40):
        b.publish_metric_sync("loss", 1 / (step + 1), step=step, epoch=step // 10, phase="train")
        b.publish_data_sync("sensors", {{"temperature": 20 + step, "arm": {{"x": step}}}})
        time.sleep(0.025)  # let the export thread take each sample off the one-record queue
    b.publish_metric_sync("accuracy", 0.5, step=3, phase="eval")  # one step only: not advancing
    b.publish_metric_sync("test_accuracy", 0.7, epoch=2, phase="test")  # epochs, no steps
    b.publish_metric_sync("warm", 1.0, step=7, phase="warmup")  # no total declared
    b.publish_metric_sync("tune", 1.0, epoch=1, phase="finetune")  # no total, epochs only
    print("published", flush=True)
    while not done.wait(0.05):  # keep overflowing the one-record queue until the test is done
        for _ in range(3):
            b.publish_log_sync("info", "more logs than the queue holds")
"""

# A second process of the same service and topic, until the test ends.
WORKER = f"""
import sys
from otel_liveview import ExperimentBroadcaster, flush
b = ExperimentBroadcaster(base_topic={TOPIC!r})
b.publish_metric_sync("worker_loss", 0.25, step=5, epoch=0, phase="train")
flush()
print("published", flush=True)
sys.stdin.readline()
"""

OTHER = f"""
import time
from otel_liveview import LiveViewExperiment, flush
with LiveViewExperiment("other-run", base_topic={TOPIC!r}, totals={{"train": {{"steps": 7}}}}, lr=99) as run:
    for _ in range(3):
        run.broadcaster.publish_metric_sync("loss", 99.0, step=1000, epoch=100, phase="train")
        run.broadcaster.publish_metric_sync("other_nan", float("nan"), phase="train")
        run.broadcaster.publish_data_sync("sensors", {{"temperature": -1}})
        time.sleep(0.3)
flush()
"""


@dataclass
class Board(grafana.Board):
    """The dashboard as Grafana would show it at `at`, with the pid of the publishing experiment."""

    publisher_pid: int = 0


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Board]:
    prometheus = start_shipped_prometheus_3(tmp_path_factory.mktemp("dashboard-prometheus"))
    processes = []
    try:
        with serving_http() as logs:
            env = publisher_env(
                metrics=prometheus.url + "/api/v1/otlp/v1/metrics",
                logs=logs.endpoint + "/v1/logs",
                OTEL_METRIC_EXPORT_INTERVAL="200",
                OTEL_BLRP_MAX_QUEUE_SIZE="1",  # so that the drop-rate panel has something to show
                OTEL_LIVEVIEW_METRIC_EVENTS="false",
                OTEL_SERVICE_NAME="dashboard-queries",
                OTEL_RESOURCE_ATTRIBUTES="service.namespace=research",
            )
            # Another service publishing to the same topic: the dashboard must not mix it in.
            other = {**env, "OTEL_SERVICE_NAME": "dashboard-queries-other", "OTEL_RESOURCE_ATTRIBUTES": ""}
            run_python(OTHER, other)
            for script in (PUBLISHER, WORKER):
                process = start_python(script, env)
                processes.append(process)
                assert process.stdout and process.stdout.readline().strip() == "published"
            job = f'job="{SERVICE}"'
            waits: list[tuple[str, Callable[[list[dict[str, Any]]], Any]]] = [
                # Rates need two samples of a counter; alerts an evaluation of the rules.
                (f"sum(rate(liveview_dropped_total{{{job}}}[1m])) > 0", bool),
                (f'liveview_metric_nonfinite{{{job},value="nan"}} == 1', bool),
                (f'liveview_experiment_end_time_seconds{{{job},experiment="dash-sweep"}}', bool),
                (f'changes(liveview_metric_step{{{job},phase="train",metric="loss"}}[1m]) > 0', bool),
                (f'liveview_metric{{{job},metric="worker_loss"}}', bool),
                (f'liveview_metric_epoch{{{job},phase="finetune"}}', bool),
                ('liveview_metric{job="dashboard-queries-other"}', bool),
                (
                    f'ALERTS{{alertstate="firing",{job}}}',
                    lambda r: (
                        {"LiveViewExperimentFailed", "LiveViewMetricNotFinite"}
                        <= {s["metric"]["alertname"] for s in r}
                    ),
                ),
            ]
            for promql, check in waits:
                wait_for_series(prometheus, promql, check, timeout=30)
            # The variables as Grafana resolves them on load, the user having picked the service.
            now = time.time()
            values, options = grafana.on_load(prometheus.url, {"service": SERVICE, "topic": TOPIC}, now)
            yield Board(prometheus.url, values, options, round(now, 3), publisher_pid=processes[0].pid)
    finally:
        for process in processes:
            process.kill()
            process.wait()
        prometheus.stop()


def test_the_variables_resolve_to_the_service_topic_and_running_experiment(board: Board) -> None:
    values, options = board.values, board.options
    assert values["prometheus"] == "liveview-prometheus" and values["loki"] == "liveview-loki"
    assert (values["service_name"], values["service_namespace"]) == ("dashboard-queries", "research")
    assert values["metric"] == values["stream"] == values["instance"] == ".*"
    # Every variable query found values, but run and rank: no launcher started these processes.
    launch = {key for key in options if "liveview_run_id" in key}
    assert len(launch) == 2 and not any(options[key] for key in launch)
    assert (values["run"], values["rank"]) == ("", ".*")  # the rank panels then select the unlaunched
    assert all(found for key, found in options.items() if key not in launch), options
    assert options[f'topic of {{job="{SERVICE}",topic!=""}}'] == [TOPIC]
    assert len(_instances(board)) == 2
    assert set(options[f'metric of liveview_metric{{job="{SERVICE}",topic="{TOPIC}"}}']) == {
        "loss", "accuracy", "test_accuracy", "warm", "tune", "sweep_loss", "worker_loss",
    }  # fmt: skip
    # The running experiment first, then the finished one; not the other service's "other-run".
    (texts,) = [
        found
        for expr, found in options.items()
        if "liveview_experiment_start_time_seconds" in expr and "liveview_run_id" not in expr
    ]
    assert [re.search(r'experiment="([^"]+)"', text).group(1) for text in texts] == ["dash", "dash-sweep"]  # type: ignore[union-attr]
    assert values["experiment"] == "dash"
    assert values["__range"] == "900s"


def test_every_dashboard_query_returns_its_series_of_the_service_alone(board: Board) -> None:
    for title, target in grafana.targets(DASHBOARD, "prometheus"):
        if title in RANK_PANELS:  # a launch of many ranks: tests/deploy/test_dashboard_ranks.py
            continue
        expr = grafana.interpolate(target["expr"], board.values)
        result = query(board.base_url, expr, at=board.at)
        assert result, f"{title} {target['refId']}: {expr} returned nothing"
        jobs = {r["metric"]["job"] for r in result if "job" in r["metric"]}
        assert jobs <= {SERVICE}, (title, jobs)
    # Without the service, the same topic mixes both services: the narrowing is what keeps them apart.
    assert board.one("Step") == 39  # not the other service's 1000
    unnarrowed = board.expr("Step").replace(f'job="{SERVICE}",', "")
    assert float(query(board.base_url, unnarrowed, at=board.at)[0]["value"][1]) == 1000


def test_the_status_row(board: Board) -> None:
    # One value per experiment, mapped to its word: 5 failed, 4 aborted, 3 running, 2 initializing, 1 completed.
    assert board.by("experiment", "Experiment status") == {"dash": 3, "dash-sweep": 5}
    assert board.one("Processes alive") == 2  # the publisher and the worker
    assert board.one("Epoch") == 3
    # The current mode: only train advanced; eval, warmup and the sweep published one step each.
    assert set(board.by("phase", "Phase")) == {"train"}
    # Elapsed: now - start while running ...
    start = f'max(liveview_experiment_start_time_seconds{{job="{SERVICE}",experiment="%s"}})'
    end = f'max(liveview_experiment_end_time_seconds{{job="{SERVICE}",experiment="%s"}})'
    started = float(query(board.base_url, start % "dash", at=board.at)[0]["value"][1])
    assert board.one("Elapsed") == pytest.approx(board.at - started, abs=1e-3)
    assert 0 < board.one("Elapsed") < 300
    # ... its duration, end - start, once finished.
    sweep_start = float(query(board.base_url, start % "dash-sweep", at=board.at)[0]["value"][1])
    sweep_end = float(query(board.base_url, end % "dash-sweep", at=board.at)[0]["value"][1])
    assert board.one("Elapsed", experiment="dash-sweep") == pytest.approx(sweep_end - sweep_start, abs=1e-6)
    assert 0.4 < sweep_end - sweep_start < 60  # the sweep slept 0.5 s, and the value is not now - start


def test_experiment_info_shows_the_name_host_pid_and_every_info_key(board: Board) -> None:
    (series,) = board.run("Experiment info")
    # labelsToFields (mode rows) makes one key/value row of each label: these are the table's rows.
    assert series["metric"] == {
        "experiment": "dash",
        "host": socket.gethostname(),
        "pid": str(board.publisher_pid),
        "lr": "0.001",
        "model_depth": "3",
        "seed": "7",
    }
    (sweep,) = board.run("Experiment info", experiment="dash-sweep")
    assert {k: v for k, v in sweep["metric"].items() if k not in ("host", "pid")} == {
        "experiment": "dash-sweep",
        "lr": "0.5",
    }


def test_progress_per_phase_against_the_declared_totals(board: Board) -> None:
    # Steps where declared (train 39 of 100, not epoch 3 of 4), else epochs (test: 2 of 5); a declared
    # phase that has not started (export) at 0.
    assert board.by("phase", "Progress", "A") == pytest.approx(
        {"train": 0.39, "eval": 0.3, "test": 0.4, "export": 0.0}
    )
    # Phases without a total: their current step, else their epoch.
    assert board.by("phase", "Progress", "B") == {"warmup": 7, "sweep": 1}
    assert board.by("phase", "Progress", "C") == {"finetune": 1}
    # The failed sweep declared nothing: every phase shows its step (or epoch) only.
    assert board.by("phase", "Progress", "A", experiment="dash-sweep") == {}
    assert board.by("phase", "Progress", "B", experiment="dash-sweep") == {
        "train": 39, "eval": 3, "warmup": 7, "sweep": 1,
    }  # fmt: skip
    assert board.by("phase", "Progress", "C", experiment="dash-sweep") == {"test": 2, "finetune": 1}


def test_rate_and_eta(board: Board) -> None:
    assert board.by("phase", "Rate and ETA", "A") == {"train": 39, "eval": 3, "test": 2}
    assert board.by("phase", "Rate and ETA", "B") == {"train": 100, "eval": 10, "test": 5, "export": 3}
    rates = board.by("phase", "Rate and ETA", "C")
    assert set(rates) == {"train", "eval", "test"}
    assert rates["train"] > 0 and rates["eval"] == rates["test"] == 0  # these two never advanced
    # Time left at that rate, only where there is a rate; only while the experiment runs.
    assert board.by("phase", "Rate and ETA", "D") == pytest.approx({"train": (100 - 39) / rates["train"]})
    assert board.by("phase", "Rate and ETA", "D", experiment="dash-sweep") == {}


def test_errors_row_shows_the_non_finite_metric_of_the_failed_run(board: Board) -> None:
    (series,) = board.run("Non-finite now")
    labels = series["metric"]
    assert (labels["metric"], labels["value"], labels["phase"]) == ("sweep_loss", "nan", "sweep")
    assert float(series["value"][1]) == 1  # not the other service's other_nan
    firing = {r["metric"]["alertname"] for r in board.run("Firing alerts")}
    assert {"LiveViewExperimentFailed", "LiveViewMetricNotFinite"} <= firing


def test_the_process_row_repeats_per_instance_with_that_process_alone(board: Board) -> None:
    ((row, inside),) = grafana.repeated_rows(DASHBOARD)
    instances = _instances(board)
    metrics_of = {}
    for instance in instances:  # Grafana sets the variable to one value per repeat
        for panel in inside:
            for target in panel["targets"]:
                if target["datasource"]["type"] != "prometheus":
                    continue
                expr = grafana.interpolate(target["expr"], {**board.values, row["repeat"]: instance})
                result = query(board.base_url, expr, at=board.at)
                assert result and {r["metric"]["instance"] for r in result} == {instance}, expr
                if target["refId"] == "A":
                    metrics_of[instance] = {r["metric"]["metric"] for r in result}
    assert sorted(metrics_of.values(), key=len) == [
        {"worker_loss"},
        {"loss", "accuracy", "test_accuracy", "warm", "tune", "sweep_loss"},  # its last finite value
    ]


def _instances(board: Board) -> list[str]:
    """The options of the per-process variable: the instances (shown by rank and node when launched)."""
    (texts,) = [found for expr, found in board.options.items() if "label_join" in expr]
    return grafana.regex_options(grafana.variable(DASHBOARD, "instance")["regex"], texts)
