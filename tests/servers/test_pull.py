"""Pull mode: a real Prometheus scrapes the experiment's /metrics endpoint, and sees exactly the
series the push path (library -> vmagent -> Prometheus) gives."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from otel_liveview._internal.tables import Tables
from tests.support import free_port
from tests.support.processes import publisher_env, run_python, start_python
from tests.support.receiver import Receiver, wait_until
from tests.support.servers import PushStack, Server, query, server_binary, wait_for_series

TOPIC = "pull:compare"
# A main process and two children (fork, spawn) of one experiment; push and pull at the same time.
PUBLISHER = f"""
import multiprocessing, sys, threading, time
import otel_liveview

def publish(origin):
    b = otel_liveview.ExperimentBroadcaster({TOPIC!r})
    for step in range(5):
        b.publish_metric_sync("loss", 1 / (step + 1), step=step, epoch=0, phase=origin)
        b.publish_data_sync("sensors", {{"origin_" + origin: step}})

def child(origin, done):
    publish(origin)
    done.wait()

if __name__ == "__main__":
    with otel_liveview.LiveViewExperiment(name="pull", base_topic={TOPIC!r}, totals={{"main": {{"steps": 5}}}}):
        publish("main")
        done = multiprocessing.get_context("spawn").Event()
        children = [multiprocessing.get_context(how).Process(target=child, args=(how, done)) for how in ("fork", "spawn")]
        for process in children:
            process.start()
        print("published", flush=True)
        sys.stdin.readline()
        done.set()
        for process in children:
            process.join()
"""
SERIES = '{__name__=~"liveview_metric|liveview_metric_step|liveview_metric_epoch|liveview_data|liveview_experiment_status",topic="%s"}'


def metadata(prometheus: Server, metric: str) -> list[dict[str, str]]:
    """What Prometheus' metadata API knows of `metric` from its scrapes."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{prometheus.url}/api/v1/metadata?metric={metric}", timeout=10) as response:
        return list(json.load(response)["data"].get(metric, []))


def label_sets(prometheus: PushStack | Server) -> set[frozenset[tuple[str, str]]]:
    return {frozenset(series["metric"].items()) for series in query(prometheus, SERIES % TOPIC)}


@pytest.mark.servers
def test_pull_and_push_give_the_same_series(
    push_stack: PushStack, prometheus_factory: Callable[..., Server], http_receiver: Receiver, tmp_path: Path
) -> None:
    port = free_port()
    pull = prometheus_factory(
        extra_config={
            "scrape_configs": [
                {
                    "job_name": "liveview",
                    "honor_labels": True,  # keep the job and instance of each process
                    "scrape_interval": "1s",
                    "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                }
            ]
        }
    )
    env = publisher_env(
        http_receiver.endpoint,
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=push_stack.otlp_metrics_endpoint,
        OTEL_METRIC_EXPORT_INTERVAL="200",
        OTEL_LIVEVIEW_PROMETHEUS_PORT=str(port),
        OTEL_SERVICE_NAME="pull-compare",
    )
    publisher = start_python(PUBLISHER, env, file=tmp_path / "publisher.py")
    try:
        assert publisher.stdout and publisher.stdout.readline().strip() == "published"
        expected_instances = 3

        def complete(result: list[dict]) -> bool:
            return len({series["metric"]["instance"] for series in result}) == expected_instances

        wait_for_series(pull, SERIES % TOPIC, complete, timeout=30)
        wait_for_series(push_stack, SERIES % TOPIC, complete, timeout=30)
        wait_for_series(pull, 'liveview_data{key="origin_spawn"}', bool, timeout=30)
        wait_for_series(push_stack, 'liveview_data{key="origin_spawn"}', bool, timeout=30)
        pulled, pushed = label_sets(pull), label_sets(push_stack)
        assert pulled == pushed, f"only pulled: {pulled - pushed}\nonly pushed: {pushed - pulled}"
        assert {dict(labels)["job"] for labels in pulled} == {"pull-compare"}
        phases = {
            dict(labels).get("phase") for labels in pulled if dict(labels)["__name__"] == "liveview_metric"
        }
        assert phases == {"main", "fork", "spawn"}
        values = {
            dict(series["metric"].items())["phase"]: float(series["value"][1])
            for series in query(pull, f'liveview_metric_step{{topic="{TOPIC}"}}')
        }
        assert values == {"main": 4.0, "fork": 4.0, "spawn": 4.0}
        counters = query(pull, 'liveview_published_total{job="pull-compare",kind="metric"}')
        assert sorted(float(series["value"][1]) for series in counters) == [5.0, 5.0, 5.0]
        # A scrape carries each family's HELP: Prometheus keeps it as the metric's metadata.
        planned = wait_until(lambda: metadata(pull, "liveview_experiment_planned"), timeout=30)
        assert planned == [
            {"type": "gauge", "help": Tables.description("liveview.experiment.planned"), "unit": ""}
        ]
    finally:
        if publisher.stdin:
            publisher.stdin.write("\n")
            publisher.stdin.flush()
        publisher.wait(timeout=30)

    # Processes that exited stop appearing on the endpoint.
    port_open = socket.socket()
    try:
        assert port_open.connect_ex(("127.0.0.1", port)) != 0, "the endpoint outlived the experiment"
    finally:
        port_open.close()


def test_snapshot_collector_drops_dead_processes(tmp_path: Path) -> None:
    import json
    import time

    from prometheus_client import CollectorRegistry, generate_latest

    from otel_liveview._internal.pull import SnapshotCollector

    alive = {
        "pid": 1,
        "job": "j",
        "instance": "a",
        "time": time.time(),
        "gauges": {"liveview_metric": [[{"metric": "m"}, 1.0]]},
        "counters": {},
    }
    dead = {**alive, "pid": 2**22 + 12345, "instance": "b"}
    stale = {**alive, "instance": "c", "time": time.time() - 60}
    for name, data in (("a", alive), ("b", dead), ("c", stale)):
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(tmp_path, max_age=3))
    text = generate_latest(registry).decode()
    assert 'liveview_metric{instance="a",job="j",metric="m"} 1.0' in text
    assert 'instance="b"' not in text and 'instance="c"' not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_process_that_exits_normally_removes_its_snapshot(tmp_path: Path) -> None:
    script = """
import os, time, otel_liveview
b = otel_liveview.ExperimentBroadcaster("pull:exit")
b.publish_metric_sync("loss", 1.0)
folder = os.environ["OTEL_LIVEVIEW_PROMETHEUS_DIR"]
deadline = time.monotonic() + 20
while not any(name.endswith(".json") for name in os.listdir(folder)) and time.monotonic() < deadline:
    time.sleep(0.05)
print(sorted(os.listdir(folder)))
"""
    env = publisher_env(
        OTEL_LIVEVIEW_PROMETHEUS_PORT=str(free_port()),
        OTEL_LIVEVIEW_PROMETHEUS_DIR=str(tmp_path),
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_METRIC_EXPORT_INTERVAL="100",
    )
    seen = run_python(script, env)
    assert ".json" in seen  # it was written while the process ran
    assert list(tmp_path.glob("*.json")) == []  # and removed when it exited


# One process of every instrument: a finished and a running experiment with planned steps, a NaN,
# a data stream wider than its 64 keys (a drop), and a torchrun launch that restarted once.
EVERY_INSTRUMENT = """
import math, sys, otel_liveview
with otel_liveview.LiveViewExperiment(name="done", base_topic="pull:lint"):
    pass
with otel_liveview.LiveViewExperiment(name="lint", base_topic="pull:lint", totals={"train": {"steps": 10, "epochs": 2}}, seed=7):
    b = otel_liveview.ExperimentBroadcaster("pull:lint")
    b.publish_metric_sync("loss", 0.5, step=1, epoch=0, phase="train")
    b.publish_metric_sync("acc", math.nan, step=1, phase="train")
    b.publish_data_sync("wide", {f"k{i}": i for i in range(65)})
    print("published", flush=True)
    sys.stdin.readline()
"""
TORCHRUN = {"TORCHELASTIC_RUN_ID": "lint", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}


def scrape(port: int) -> str:
    """The endpoint's exposition; empty while no process serves it yet."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def sampled(text: str) -> set[str]:
    """The names of the exposition's samples."""
    lines = (line for line in text.splitlines() if line and not line.startswith("#"))
    return {line.split("{")[0].split(" ")[0] for line in lines}


@pytest.mark.servers
def test_promtool_finds_nothing_to_lint_in_pull_modes_metrics(tmp_path: Path) -> None:
    """Prometheus' own lint over /metrics with a sample of every instrument: no gauge named like a
    counter (_total) or a summary (_count), and each HELP the instrument's description."""
    promtool = server_binary("promtool-3.14")
    port = free_port()
    env = publisher_env(
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_METRIC_EXPORT_INTERVAL="200",
        OTEL_LIVEVIEW_PROMETHEUS_PORT=str(port),
        OTEL_LIVEVIEW_PROMETHEUS_DIR=str(tmp_path),
        TORCHELASTIC_RESTART_COUNT="1",
        **TORCHRUN,
    )
    tables = Tables()
    instruments = {name.replace(".", "_") for name in tables.gauges()}
    instruments |= {name.replace(".", "_") + "_total" for name in tables.counters()}
    publisher = start_python(EVERY_INSTRUMENT, env)
    try:
        assert publisher.stdout and publisher.stdout.readline().strip() == "published"

        def complete() -> str | None:
            text = scrape(port)
            return text if sampled(text) >= instruments else None

        text = wait_until(complete, timeout=30, what="a sample of every instrument on /metrics")
    finally:
        if publisher.stdin:
            publisher.stdin.write("\n")
            publisher.stdin.flush()
        publisher.wait(timeout=30)
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert (lint.returncode, lint.stdout + lint.stderr) == (0, ""), lint.stdout + lint.stderr
    helps = dict(line.split(" ", 3)[2:] for line in text.splitlines() if line.startswith("# HELP "))
    for name, (description, _) in tables.counters().items():
        assert helps[name.replace(".", "_") + "_total"] == description
    for name in tables.gauges():
        assert helps[name.replace(".", "_")] == tables.description(name)
