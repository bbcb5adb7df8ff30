"""Real launchers: every rank of a launch arrives with its rank, world size, node and the launch's
run id, read by the library from the launcher's environment alone."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from tests.support import ROOT
from tests.support.launchers import mpirun
from tests.support.processes import publisher_env
from tests.support.receiver import Receiver, wait_until
from tests.support.slurm import SlurmCluster


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
