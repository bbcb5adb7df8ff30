"""Real launchers: every rank of a launch arrives with its rank, world size, node and the launch's
run id, read by the library from the launcher's environment alone."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from otel_liveview.view import panels, screen
from otel_liveview.view.board import ExperimentRow
from tests.support import ROOT
from tests.support.launchers import launcher_module, mpirun, training
from tests.support.processes import publisher_env, run_module
from tests.support.receiver import Receiver, wait_until
from tests.support.slurm import SlurmCluster
from tests.wire.test_board import replay

pytestmark = pytest.mark.launchers


def _resources(receiver: Receiver) -> list[dict[str, object]]:
    """One resource per process that sent its `loss` point."""
    by_instance = {
        row.resource["service.instance.id"]: row.resource for row in receiver.point_rows("liveview.metric")
    }
    return sorted(by_instance.values(), key=lambda resource: int(str(resource.get("liveview.rank", -1))))


def test_mpirun_ranks_arrive_as_one_run_of_four(http_receiver: Receiver) -> None:
    mpirun(4, "tests.support.rank_publisher", publisher_env(http_receiver.endpoint))
    resources = wait_until(
        lambda: len(_resources(http_receiver)) == 4 and _resources(http_receiver), what="4 ranks"
    )
    assert [resource["liveview.rank"] for resource in resources] == [0, 1, 2, 3]
    assert {resource["liveview.world_size"] for resource in resources} == {4}
    assert {resource["liveview.launcher"] for resource in resources} == {"mpi"}
    assert {resource["liveview.local_rank"] for resource in resources} == {0, 1, 2, 3}  # one node
    run_ids = {resource["liveview.run.id"] for resource in resources}
    assert len(run_ids) == 1 and run_ids != {""}
    # Every point carries run, rank and node, so PromQL selects by them without target_info.
    for row in http_receiver.point_rows():
        assert row.attributes["liveview.rank"] == str(row.resource["liveview.rank"]), row
        assert row.attributes["liveview.run.id"] == row.resource["liveview.run.id"]
        assert row.attributes["liveview.node.name"] == socket.gethostname()
    sizes = {row.value for row in http_receiver.point_rows("liveview.launch.world_size")}
    assert sizes == {4.0}
    # Each rank's log record carries the same identity.
    logs = {row.resource["liveview.rank"] for row in http_receiver.log_rows() if row.body == "rank ready"}
    assert logs == {0, 1, 2, 3}


def test_two_launches_are_two_runs(http_receiver: Receiver) -> None:
    env = publisher_env(http_receiver.endpoint)
    mpirun(2, "tests.support.rank_publisher", env)
    mpirun(2, "tests.support.rank_publisher", env)
    resources = wait_until(
        lambda: len(_resources(http_receiver)) == 4 and _resources(http_receiver), what="4 processes"
    )
    assert len({resource["liveview.run.id"] for resource in resources}) == 2


def test_srun_tasks_arrive_with_slurm_rank_node_and_job(
    slurm_cluster: SlurmCluster, http_receiver: Receiver
) -> None:
    slurm_cluster.command(
        "srun",
        "-n",
        "4",
        "--chdir",
        str(ROOT),
        sys.executable,
        "-m",
        "tests.support.rank_publisher",
        env=publisher_env(http_receiver.endpoint),
    )
    resources = wait_until(
        lambda: len(_resources(http_receiver)) == 4 and _resources(http_receiver), what="4 tasks"
    )
    assert [resource["liveview.rank"] for resource in resources] == [0, 1, 2, 3]
    assert {resource["liveview.launcher"] for resource in resources} == {"slurm"}
    assert {resource["liveview.world_size"] for resource in resources} == {4}
    assert {resource["liveview.node.name"] for resource in resources} == {socket.gethostname()}
    assert {resource["liveview.node.rank"] for resource in resources} == {0}
    assert len({resource["liveview.run.id"] for resource in resources}) == 1


def test_sbatch_array_tasks_are_runs_of_one_array(
    slurm_cluster: SlurmCluster, http_receiver: Receiver, tmp_path: Path
) -> None:
    slurm_cluster.command(
        "sbatch",
        "--array=0-3",
        "--chdir",
        str(ROOT),
        "--output",
        str(tmp_path / "task-%a.out"),
        "--wrap",
        f"{sys.executable} -m tests.support.rank_publisher",
        env=publisher_env(http_receiver.endpoint),
    )
    slurm_cluster.wait_for_jobs()
    resources = wait_until(
        lambda: len(_resources(http_receiver)) == 4 and _resources(http_receiver), what="4 array tasks"
    )
    assert sorted(resource["liveview.array.task_id"] for resource in resources) == [0, 1, 2, 3]
    assert len({resource["liveview.array.job_id"] for resource in resources}) == 1
    assert len({resource["liveview.run.id"] for resource in resources}) == 4  # a run per task


def test_ray_actors_arrive_with_their_job_node_and_actor(http_receiver: Receiver) -> None:
    launcher_module("ray")
    run_module("tests.support.ray_job", env=publisher_env(http_receiver.endpoint), timeout=240)
    resources = wait_until(
        lambda: len(_resources(http_receiver)) == 4 and _resources(http_receiver), what="4 actors"
    )
    assert {resource["liveview.launcher"] for resource in resources} == {"ray"}
    jobs = {resource["liveview.ray.job_id"] for resource in resources}
    assert len(jobs) == 1
    assert {resource["liveview.run.id"] for resource in resources} == jobs
    assert len({resource["liveview.ray.actor_id"] for resource in resources}) == 4
    assert len({resource["liveview.ray.node_id"] for resource in resources}) == 1


def test_ray_tune_trials_arrive_as_experiments_with_their_metrics(http_receiver: Receiver) -> None:
    launcher_module("ray")
    run_module("tests.support.tune_job", env=publisher_env(http_receiver.endpoint), timeout=300)

    def statuses() -> dict[str, str]:
        latest = http_receiver.latest("liveview.experiment.status")
        return {
            dict(labels)["experiment"]: dict(labels)["status"]
            for (_, labels), value in latest.items()
            if value == 1
        }

    final = wait_until(
        lambda: len(statuses()) == 4 and "running" not in statuses().values() and statuses(),
        what="4 trials ended",
    )
    assert sorted(final.values()) == ["completed", "completed", "completed", "failed"]
    errors = [
        row.attributes.get("error")
        for row in http_receiver.log_rows()
        if row.event_name == "liveview.status" and row.attributes.get("status") == "failed"
    ]
    assert errors and "FloatingPointError" in errors[0]
    info = [row.body for row in http_receiver.log_rows() if row.event_name == "liveview.info"]
    assert sorted(body["info"]["lr"] for body in info) == [0.1, 0.2, 0.3, 0.4]
    steps = {
        (update["trial"], update["step"])
        for update in http_receiver.metric_updates()
        if update["metric"] == "loss"
    }
    assert len({trial for trial, _ in steps}) == 4
    assert sorted(step for _, step in steps).count(3.0) == 3  # the three healthy trials reached step 3


def test_the_view_shows_one_run_of_four_ranks_with_the_failed_and_the_lagging(
    http_receiver: Receiver, tmp_path: Path
) -> None:
    """mpirun -n 4 of a training loop, every rank running the experiment: rank 2 fails at step 10
    and stays up, rank 3 steps at a quarter of the pace."""
    env = publisher_env(
        http_receiver.endpoint,
        OTEL_METRIC_EXPORT_INTERVAL="200",
        LIVEVIEW_TEST_SLOW_RANK="3",
        LIVEVIEW_TEST_FAILING_RANK="2",
        LIVEVIEW_TEST_TOPIC="view:ranks",
    )
    with training(4, env, tmp_path):

        def run_row() -> ExperimentRow | None:
            rows = [row for row in replay(http_receiver).snapshot().experiments if row.experiment == "ddp"]
            ranks = rows[0].ranks if rows else ()
            steps = {r.rank: r.step or 0 for r in ranks}
            ready = len(ranks) == 4 and steps.get("0", 0) > 60 and rows[0].status == "failed"
            return rows[0] if ready else None

        row = wait_until(run_row, timeout=90, what="four ranks, rank 0 past step 60, rank 2 failed")
    assert (row.status, row.error) == ("failed", "FloatingPointError: loss diverged to NaN")
    assert row.world_size == 4
    assert [(r.rank, r.node, r.alive) for r in row.ranks] == [
        (str(n), socket.gethostname(), True) for n in range(4)
    ]
    statuses = {r.rank: r.status for r in row.ranks}
    assert statuses == {"0": "running", "1": "running", "2": "failed", "3": "running"}
    text = panels.ranks_text(row)
    assert text.startswith("4/4 alive  failed r2  lagging ") and set(text.split()[-2:]) == {"r2", "r3"}
    # The metrics panel names the metric, not the launch: run, rank and node are the publisher's.
    snapshot = replay(http_receiver).snapshot()
    losses = [dict(m.labels) for m in snapshot.metrics if m.name == "loss"]
    assert losses == [{"phase": "train"}] * 4
    # Publishers by rank and node, in rank order.
    assert [p.rank for p in snapshot.publishers] == [f"rank {n} on {socket.gethostname()}" for n in range(4)]
    plain = screen.render_plain(snapshot, {"http": http_receiver.endpoint})
    ranks = plain.split("--- ranks\n")[1].split("\n--- ")[0].splitlines()
    assert ranks[0].split() == ["experiment", "rank", "node", "status", "step", "lag", "mark"]
    marks = {line.split()[1]: line.split()[-1] for line in ranks[1:]}
    assert marks["3"] == "lagging" and marks["2"] == "lagging"


def test_the_experiment_on_rank_0_alone_gives_the_same_run(http_receiver: Receiver, tmp_path: Path) -> None:
    env = publisher_env(
        http_receiver.endpoint,
        OTEL_METRIC_EXPORT_INTERVAL="200",
        LIVEVIEW_TEST_EXPERIMENT_RANK="0",
        LIVEVIEW_TEST_TOPIC="view:rank0",
    )
    with training(4, env, tmp_path):

        def run_row() -> ExperimentRow | None:
            rows = [row for row in replay(http_receiver).snapshot().experiments if row.experiment == "ddp"]
            ready = rows and len(rows[0].ranks) == 4 and all((r.step or 0) > 20 for r in rows[0].ranks)
            return rows[0] if ready else None

        row = wait_until(run_row, timeout=90, what="four ranks past step 20")
    assert row.status == "running" and row.world_size == 4
    assert [(r.rank, r.status) for r in row.ranks] == [
        ("0", "running"),
        ("1", None),
        ("2", None),
        ("3", None),
    ]
    assert panels.ranks_text(row) == "4/4 alive"
