"""Launch identity: what torchrun, Slurm, MPI and Ray set becomes rank, node and run attributes."""

from __future__ import annotations

import json
import logging
import socket
import sys
import types
from pathlib import Path

import pytest

from otel_liveview._internal import config, launch, pipeline, pull
from otel_liveview._internal.tables import TABLES

TORCHRUN = {
    "RANK": "5",
    "LOCAL_RANK": "1",
    "WORLD_SIZE": "8",
    "GROUP_RANK": "2",
    "ROLE_RANK": "5",
    "TORCHELASTIC_RUN_ID": "job-42",
    "TORCHELASTIC_RESTART_COUNT": "1",
}
SLURM = {
    "SLURM_JOB_ID": "1234",
    "SLURM_PROCID": "3",
    "SLURM_LOCALID": "0",
    "SLURM_NTASKS": "4",
    "SLURM_NODEID": "3",
    "SLURMD_NODENAME": "gpu-node-07",
}
OPEN_MPI = {
    "OMPI_COMM_WORLD_RANK": "2",
    "OMPI_COMM_WORLD_LOCAL_RANK": "2",
    "OMPI_COMM_WORLD_SIZE": "4",
    "PMIX_RANK": "2",
    "PMIX_NAMESPACE": "prterun-host-81722@1",
}


def test_outside_any_launcher_nothing_is_added() -> None:
    assert launch.detect({"HOME": "/root", "PATH": "/usr/bin"}).attributes() == {}


def test_torchrun_gives_rank_node_run_and_restarts() -> None:
    assert launch.detect(TORCHRUN).attributes() == {
        "liveview.launcher": "torchrun",
        "liveview.run.id": "job-42",
        "liveview.rank": 5,
        "liveview.local_rank": 1,
        "liveview.world_size": 8,
        "liveview.node.rank": 2,
        "liveview.node.name": socket.gethostname(),  # the launcher names no node: this machine
        "liveview.restart_count": 1,
    }


def test_slurm_task_and_its_node() -> None:
    assert launch.detect(SLURM).attributes() == {
        "liveview.launcher": "slurm",
        "liveview.run.id": "1234",
        "liveview.rank": 3,
        "liveview.local_rank": 0,
        "liveview.world_size": 4,
        "liveview.node.rank": 3,
        "liveview.node.name": "gpu-node-07",
    }


def test_slurm_array_task_keeps_its_own_job_and_names_the_array() -> None:
    found = launch.detect({**SLURM, "SLURM_ARRAY_JOB_ID": "1230", "SLURM_ARRAY_TASK_ID": "4"})
    assert (found.run_id, found.array_job_id, found.array_task_id) == ("1234", "1230", 4)


def test_open_mpi_rank_and_pmix_namespace_as_the_run() -> None:
    found = launch.detect(OPEN_MPI)
    assert (found.launcher, found.rank, found.local_rank, found.world_size) == ("mpi", 2, 2, 4)
    assert found.run_id == "prterun-host-81722@1"


def test_pmi_launchers_without_open_mpi_variables() -> None:
    found = launch.detect({"PMI_RANK": "7", "PMI_SIZE": "16"})
    assert (found.launcher, found.rank, found.world_size, found.run_id) == ("mpi", 7, 16, None)


def test_the_innermost_launcher_gives_the_rank_and_the_outer_one_the_run() -> None:
    # torchrun started by srun, one task per node: torch's ranks, Slurm's job and node name.
    found = launch.detect({**SLURM, "RANK": "13", "LOCAL_RANK": "1", "WORLD_SIZE": "16"})
    assert (found.launcher, found.rank, found.world_size) == ("torchrun", 13, 16)
    assert (found.run_id, found.node) == ("1234", "gpu-node-07")
    # mpirun inside an sbatch allocation: MPI's rank and run, not the batch step's.
    found = launch.detect({**SLURM, "SLURM_PROCID": "0", **OPEN_MPI})
    assert (found.launcher, found.rank, found.run_id) == ("mpi", 2, "prterun-host-81722@1")


def test_an_allocation_alone_names_slurm_without_a_rank() -> None:
    found = launch.detect({"SLURM_JOB_ID": "99"})
    assert (found.launcher, found.run_id, found.rank) == ("slurm", "99", None)


@pytest.mark.parametrize(
    ("environ", "missing", "named"),
    [
        ({**TORCHRUN, "RANK": "abc"}, "rank", "RANK='abc'"),
        ({**TORCHRUN, "RANK": "-1"}, "rank", "RANK='-1'"),
        ({**TORCHRUN, "WORLD_SIZE": "0"}, "world_size", "WORLD_SIZE='0'"),
        ({**TORCHRUN, "WORLD_SIZE": "4"}, "world_size", "WORLD_SIZE=4 is not above RANK=5"),
        ({**SLURM, "SLURM_NODEID": "x1"}, "node_rank", "SLURM_NODEID='x1'"),
        ({**TORCHRUN, "TORCHELASTIC_RESTART_COUNT": "1.5"}, "restart_count", "RESTART_COUNT='1.5'"),
    ],
)
def test_a_malformed_value_is_left_out_with_one_warning(
    environ: dict[str, str], missing: str, named: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_liveview"):
        found = launch.detect(environ)
    assert getattr(found, missing) is None
    assert [record.getMessage() for record in caplog.records if named in record.getMessage()]
    assert len(caplog.records) == 1


def test_a_bad_rank_leaves_the_rest_of_the_launch() -> None:
    found = launch.detect({**TORCHRUN, "RANK": "abc"})
    # No rank from torchrun: nothing claims the process, but the run is still known.
    assert (found.rank, found.run_id, found.restart_count) == (None, "job-42", 1)


class _FakeRayContext:
    def get_job_id(self) -> str:
        return "02000000"

    def get_node_id(self) -> str:
        return "a1b2c3"

    def get_actor_id(self) -> str | None:
        return "actor-9"


def test_a_ray_worker_is_known_by_job_node_and_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    ray = types.SimpleNamespace(is_initialized=lambda: True, get_runtime_context=_FakeRayContext)
    monkeypatch.setitem(sys.modules, "ray", ray)
    assert launch.detect({}).attributes() == {
        "liveview.launcher": "ray",
        "liveview.run.id": "02000000",
        "liveview.ray.job_id": "02000000",
        "liveview.ray.node_id": "a1b2c3",
        "liveview.ray.actor_id": "actor-9",
        "liveview.node.name": socket.gethostname(),
    }


def test_ray_imported_but_not_started_or_broken_gives_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(is_initialized=lambda: False))
    assert launch.detect({}).attributes() == {}

    def broken() -> object:
        raise RuntimeError("no context")

    monkeypatch.setitem(
        sys.modules, "ray", types.SimpleNamespace(is_initialized=lambda: True, get_runtime_context=broken)
    )
    with caplog.at_level(logging.WARNING, logger="otel_liveview"):
        assert launch.detect({}).attributes() == {}
    assert "Ray's runtime context" in caplog.text


def test_the_resource_carries_the_launch_and_explicit_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in TORCHRUN.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "liveview.run.id=named-run")
    resource = pipeline.make_resource(config.load(resource_attributes={"liveview.rank": 0}), None)
    attributes = resource.attributes
    assert attributes["liveview.launcher"] == "torchrun"
    assert attributes["liveview.world_size"] == 8
    assert attributes["liveview.run.id"] == "named-run"  # OTEL_RESOURCE_ATTRIBUTES over the launcher
    assert attributes["liveview.rank"] == 0  # configure() over both


def test_points_carry_run_rank_and_node_only() -> None:
    resource = {**launch.detect(TORCHRUN).attributes(), "host.name": "h", "service.name": "s"}
    assert launch.point_attributes(resource) == {
        "liveview.run.id": "job-42",
        "liveview.rank": "5",
        "liveview.node.name": socket.gethostname(),
    }
    assert launch.point_attributes({"service.name": "s"}) == {}


def test_explicit_variables_win_over_the_launcher_and_serve_an_unknown_one() -> None:
    found = launch.detect({**TORCHRUN, "OTEL_LIVEVIEW_RANK": "7", "OTEL_LIVEVIEW_RUN_ID": "mine"})
    assert (found.launcher, found.rank, found.run_id, found.world_size) == ("torchrun", 7, "mine", 8)
    custom = launch.detect(
        {"OTEL_LIVEVIEW_RANK": "2", "OTEL_LIVEVIEW_WORLD_SIZE": "3", "OTEL_LIVEVIEW_NODE": "n1"}
    )
    assert custom.attributes() == {
        "liveview.rank": 2,
        "liveview.world_size": 3,
        "liveview.node.name": "n1",
    }


def test_a_bad_explicit_value_is_left_out_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_liveview"):
        found = launch.detect(
            {"OTEL_LIVEVIEW_RANK": "x", "OTEL_LIVEVIEW_WORLD_SIZE": "4", "OTEL_LIVEVIEW_RUN_ID": "r"}
        )
    assert (found.rank, found.world_size, found.run_id) == (None, 4, "r")
    assert "OTEL_LIVEVIEW_RANK='x'" in caplog.text
    with caplog.at_level(logging.WARNING, logger="otel_liveview"):
        found = launch.detect({"OTEL_LIVEVIEW_RANK": "4", "OTEL_LIVEVIEW_WORLD_SIZE": "4"})
    assert (found.rank, found.world_size) == (4, None)
    assert "not above the rank 4" in caplog.text


def test_pull_mode_series_carry_run_rank_and_node(tmp_path: Path) -> None:
    key = (("metric", "launch-test"), ("topic", "t"))
    TABLES.metric.set(key, 1.5)
    try:
        data = pull.snapshot("j", "i", {"liveview.rank": "3", "liveview.run.id": "r"})
        (tmp_path / "i.json").write_text(json.dumps(data))
        samples = [
            sample
            for family in pull.SnapshotCollector(tmp_path, 60).collect()
            for sample in family.samples
            if sample.labels.get("metric") == "launch-test"
        ]
    finally:
        TABLES.metric.values.pop(key, None)
    assert [s.labels for s in samples] == [
        {
            "metric": "launch-test",
            "topic": "t",
            "liveview_rank": "3",
            "liveview_run_id": "r",
            "job": "j",
            "instance": "i",
        }
    ]
