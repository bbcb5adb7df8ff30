"""Runs of many ranks through the real stack: the launchers' processes -> the Collector (shipped
configuration) -> Prometheus 3.14 (shipped OTLP settings) evaluating the built-in run rules, rendered
with short `runs` settings so that a stall, a straggler and a missing rank show within seconds."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_liveview.alerts import rules as alerts
from tests.deploy.test_dashboard_ranks import Board
from tests.support import ROOT, grafana
from tests.support.launchers import start_mpirun, start_srun
from tests.support.processes import publisher_env, run_module
from tests.support.receiver import wait_until
from tests.support.servers import Collector, Server, collector_into_prometheus_3, query, wait_for_series
from tests.support.slurm import SlurmCluster

pytestmark = pytest.mark.servers

RUNS = {
    "stalled_after": "15s",
    "straggler_steps": 20,
    "straggler_percent": 5,
    "straggler_for": "5s",
    "missing_after": "10s",
}
RUN_ALERTS = ("LiveViewRunStalled", "LiveViewRankStraggling", "LiveViewRanksMissing", "LiveViewRankRestarted")
QUIET = 20.0  # seconds a healthy run is watched for alerts: longer than every window above


@dataclass
class Stack:
    prometheus: Server
    collector: Collector

    def env(self, service: str, **settings: str) -> dict[str, str]:
        return publisher_env(
            self.collector.otlp_http_endpoint,
            OTEL_METRIC_EXPORT_INTERVAL="500",
            OTEL_SERVICE_NAME=service,
            **settings,
        )

    def firing(self, service: str) -> set[tuple[str, str]]:
        """(alert, rank or run) of the run alerts firing for `service`."""
        result = query(self.prometheus, f'ALERTS{{alertstate="firing",job="{service}"}}')
        return {
            (
                r["metric"]["alertname"],
                r["metric"].get("liveview_rank", r["metric"].get("liveview_run_id", "")),
            )
            for r in result
            if r["metric"]["alertname"] in RUN_ALERTS
        }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("ranks-e2e")
    thresholds = workdir / "thresholds.yaml"
    thresholds.write_text(yaml.safe_dump({"thresholds": [], "runs": RUNS}))
    alerts.render(thresholds, workdir / "deploy")
    with collector_into_prometheus_3(workdir, [workdir / "deploy" / alerts.BUILTIN_RULES]) as (
        prometheus,
        collector,
    ):
        yield Stack(prometheus, collector)


Starter = Callable[[int, str, dict[str, str]], subprocess.Popen[str]]


@pytest.fixture(params=["mpirun", "srun"])
def start(request: pytest.FixtureRequest) -> Starter:
    """How a launch of tests/support/rank_training.py starts: Open MPI, or Slurm on its one-node cluster."""
    if request.param == "mpirun":
        return start_mpirun
    slurm: SlurmCluster = request.getfixturevalue("slurm_cluster")
    return functools.partial(start_srun, slurm.env)


@pytest.fixture
def job(request: pytest.FixtureRequest) -> str:
    """A service (Prometheus' job) of the test's own, its launcher's included."""
    return "ranks-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[-50:]


class Launch:
    """Four ranks of tests/support/rank_training.py, their output read as it comes (the ranks' pids)."""

    def __init__(self, start: Starter, env: dict[str, str], workdir: Path) -> None:
        self.stop_file = workdir / f"stop-{uuid.uuid4().hex[:8]}"
        self.process = start(
            4, "tests.support.rank_training", {**env, "LIVEVIEW_TEST_STOP": str(self.stop_file)}
        )
        self.pids: dict[int, int] = {}
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            match = re.match(r"rank (\d+) pid (\d+) step", line)
            if match:
                self.pids[int(match.group(1))] = int(match.group(2))

    def end(self) -> None:
        for pid in self.pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.stop_file.touch()
        self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        assert self.process.returncode == 0, "".join(self.output)[-3000:]


@contextlib.contextmanager
def launched(stack: Stack, start: Starter, tmp_path: Path, service: str, **settings: str) -> Iterator[Launch]:
    launch = Launch(start, stack.env(service, LIVEVIEW_TEST_TOPIC=f"ranks:{service}", **settings), tmp_path)
    try:
        yield launch
    finally:
        launch.end()


def ranks_stepping(stack: Stack, service: str, past: float) -> list[dict[str, Any]]:
    """The four ranks' step series once each is past `past`."""
    return wait_for_series(
        stack.prometheus,
        f'max by (liveview_run_id, liveview_rank, liveview_node_name) (liveview_metric_step{{job="{service}"}})',
        lambda result: len(result) == 4 and all(float(r["value"][1]) > past for r in result),
        timeout=90,
    )


def stays_quiet(stack: Stack, service: str, seconds: float = QUIET) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert stack.firing(service) == set()
        time.sleep(0.5)


def test_a_healthy_run_reaches_prometheus_with_rank_node_and_run_and_pages_no_one(
    stack: Stack, start: Starter, job: str, tmp_path: Path
) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    with launched(stack, start, tmp_path, job, LIVEVIEW_TEST_BARRIER=str(barrier)):
        series = ranks_stepping(stack, job, past=5)
        assert sorted(r["metric"]["liveview_rank"] for r in series) == ["0", "1", "2", "3"]
        assert {r["metric"]["liveview_node_name"] for r in series} == {socket.gethostname()}
        assert len({r["metric"]["liveview_run_id"] for r in series}) == 1
        (world,) = query(
            stack.prometheus, f'max by (liveview_run_id) (liveview_launch_world_size{{job="{job}"}})'
        )
        assert (
            float(world["value"][1]) == 4
            and world["metric"]["liveview_run_id"] == series[0]["metric"]["liveview_run_id"]
        )
        # Selectable without target_info: every series of a rank carries its labels.
        ranked = query(stack.prometheus, f'count by (__name__) ({{job="{job}",liveview_rank="2"}})')
        assert {r["metric"]["__name__"] for r in ranked} >= {
            "liveview_metric",
            "liveview_metric_step",
            "liveview_published_total",
            "liveview_experiment_status",
        }
        stays_quiet(stack, job)


def test_a_paused_rank_stalls_its_run_and_goes_missing(
    stack: Stack, start: Starter, job: str, tmp_path: Path
) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    with launched(stack, start, tmp_path, job, LIVEVIEW_TEST_BARRIER=str(barrier)) as launch:
        series = ranks_stepping(stack, job, past=10)
        run_id = series[0]["metric"]["liveview_run_id"]
        wait_until(lambda: 2 in launch.pids, what="rank 2's pid")
        os.kill(launch.pids[2], signal.SIGSTOP)  # the others wait for it in their collective
        paused = time.monotonic()
        found = wait_until(
            lambda: (
                {("LiveViewRunStalled", run_id), ("LiveViewRanksMissing", run_id)} <= stack.firing(job)
                and stack.firing(job)
            ),
            timeout=90,
            what="the stall and the missing rank",
        )
        assert time.monotonic() - paused >= 10  # not before the rules' windows passed
        assert not {alert for alert, _ in found} & {"LiveViewRankStraggling"}  # all ranks wait alike


def test_a_slowed_rank_straggles(stack: Stack, start: Starter, job: str, tmp_path: Path) -> None:
    with launched(stack, start, tmp_path, job, LIVEVIEW_TEST_SLOW_RANK="3"):
        ranks_stepping(stack, job, past=2)
        found = wait_until(lambda: stack.firing(job), timeout=90, what="the straggler")
        assert found == {("LiveViewRankStraggling", "3")}


def test_a_run_that_never_published_a_step_never_stalls(
    stack: Stack, start: Starter, job: str, tmp_path: Path
) -> None:
    with launched(stack, start, tmp_path, job, LIVEVIEW_TEST_NO_STEPS="1"):
        wait_for_series(
            stack.prometheus,
            f'count(liveview_experiment_status{{job="{job}",status="running"}} == 1) == 4',
            timeout=60,
        )
        assert query(stack.prometheus, f'liveview_metric_step{{job="{job}"}}') == []
        stays_quiet(stack, job)


def test_slurm_tasks_reach_prometheus_with_their_labels(stack: Stack, slurm_cluster: SlurmCluster) -> None:
    slurm_cluster.command(
        "srun", "-n", "4", "--chdir", str(ROOT), sys.executable, "-m", "tests.support.rank_publisher",
        env=stack.env("ranks-slurm"),
    )  # fmt: skip
    series = wait_for_series(
        stack.prometheus,
        'liveview_metric_step{job="ranks-slurm"}',
        lambda result: len(result) == 4,
        timeout=60,
    )
    assert sorted(r["metric"]["liveview_rank"] for r in series) == ["0", "1", "2", "3"]
    assert {r["metric"]["liveview_node_name"] for r in series} == {socket.gethostname()}
    assert len({r["metric"]["liveview_run_id"] for r in series}) == 1


def test_ray_actors_reach_prometheus_with_their_run(stack: Stack) -> None:
    run_module("tests.support.ray_job", env=stack.env("ranks-ray"), timeout=240)
    series = wait_for_series(
        stack.prometheus, 'liveview_metric{job="ranks-ray"}', lambda result: len(result) == 4, timeout=60
    )
    assert len({r["metric"]["liveview_run_id"] for r in series}) == 1  # the Ray job
    assert {r["metric"]["liveview_node_name"] for r in series} == {socket.gethostname()}
    assert "liveview_rank" not in series[0]["metric"]  # an actor has no rank


def test_64_ranks_through_the_collector_fill_every_rank_panel(stack: Stack, tmp_path: Path) -> None:
    """mpirun -n 64 of the training loop (rank 5 a straggler) through the Collector: every query of
    the dashboard's Ranks row, its variables resolved as Grafana resolves them, has its values."""
    service, topic = "ranks-64", "ranks:64"
    env = stack.env(
        service,
        LIVEVIEW_TEST_TOPIC=topic,
        LIVEVIEW_TEST_SLOW_RANK="5",
        LIVEVIEW_TEST_STEP_SECONDS="0.2",
        LIVEVIEW_TEST_STOP=str(tmp_path / "stop"),
    )
    launch = start_mpirun(64, "tests.support.rank_training", env)
    try:
        job = f'job="{service}"'
        wait_for_series(
            stack.prometheus,
            f"count(deriv(liveview_metric_step{{{job}}}[1m]) > 0) == 64 and min(liveview_metric_step{{{job}}}) >= 4",
            timeout=240,
        )
        now = time.time()
        board = Board.on_load(stack.prometheus.url, {"service": service, "topic": topic}, now)
        fetch = functools.partial(
            grafana.label_values, stack.prometheus.url, start=now - grafana.DEFAULT_RANGE, end=now
        )

        assert board.values["run"] and fetch(f"liveview_metric_step{{{job}}}", "liveview_rank") != []
        assert [board.one("Ranks alive", ref) for ref in "AB"] == [64, 64]
        steps = board.per_rank("Step per rank")
        assert sorted(steps) == list(range(64))
        assert board.per_rank("Lag behind the leading rank") == {
            rank: max(steps.values()) - step for rank, step in steps.items()
        }
        slowest = board.per_rank("Slowest ranks")
        assert len(slowest) == 5 and max(slowest, key=slowest.__getitem__) == 5
        fastest, median, most = (board.one("Step time", ref) for ref in "ABC")
        assert 0.1 < fastest <= median <= most == pytest.approx(slowest[5])
        assert board.run("Rank status") == []  # every rank runs
        assert board.one("Experiment status") == 3  # running
    finally:
        (tmp_path / "stop").touch()
        output, _ = launch.communicate(timeout=120)
    assert launch.returncode == 0, output[-3000:]
