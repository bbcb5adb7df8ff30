"""Who this process is within its launch: rank, node and run, read from what the launcher already set.

torchrun / torchelastic, Slurm, Open MPI and PMI/PMIx export a process's place in the job as
environment variables; a Ray worker has a runtime context. `detect()` reads them once at start-up, so
experiment code needs no change to be grouped by run and told apart by rank. The innermost launcher
wins for the rank (torchrun started by srun: torch's rank; mpirun inside an sbatch allocation: MPI's),
while the run id falls back outwards (a plain `RANK` launch under Slurm is one run of that job).

`OTEL_LIVEVIEW_RUN_ID`, `_RANK`, `_WORLD_SIZE` and `_NODE` say the same for a launcher this module
does not know, and win over what it found. A malformed value is left out with one warning, never
raised: telemetry must not stop a job from starting. docs/naming.md lists the attributes and why they are named as they are.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from otel_liveview import names

_log = logging.getLogger("otel_liveview")

# Per launcher, the variables of (rank, local rank, world size), innermost launcher first.
_RANKS: tuple[tuple[str, tuple[str, str, str]], ...] = (
    ("torchrun", ("RANK", "LOCAL_RANK", "WORLD_SIZE")),
    ("mpi", ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_SIZE")),
    ("mpi", ("PMIX_RANK", "", "")),  # PMIx has no size variable; a PMI launcher also sets PMI_SIZE
    ("mpi", ("PMI_RANK", "PMI_LOCAL_RANK", "PMI_SIZE")),
    ("slurm", ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS")),
)
# Where the run id comes from, innermost first: torchelastic's rendezvous id, MPI's job, Slurm's job.
_RUN_IDS = ("TORCHELASTIC_RUN_ID", "PMIX_NAMESPACE", "OMPI_MCA_ess_base_jobid", "SLURM_JOB_ID")


@dataclass(frozen=True)
class Launch:
    """This process's place in its launch; None where the launcher does not say."""

    launcher: str | None = None  # torchrun, mpi, slurm or ray
    run_id: str | None = None  # the same on every process of one launch
    rank: int | None = None
    local_rank: int | None = None  # rank on this node
    world_size: int | None = None
    node_rank: int | None = None  # torchrun's GROUP_RANK, Slurm's SLURM_NODEID
    node: str | None = None  # the node's name as the launcher knows it
    restart_count: int | None = None  # torchelastic restarts of the worker group
    array_job_id: str | None = None  # a Slurm job array: the array's job, shared by its tasks
    array_task_id: int | None = None
    ray_job_id: str | None = None
    ray_node_id: str | None = None
    ray_actor_id: str | None = None

    def attributes(self) -> dict[str, str | int]:
        """The resource attributes of docs/naming.md, for the fields that are known."""
        return {
            ATTRIBUTES[field.name]: value
            for field in fields(self)
            if (value := getattr(self, field.name)) is not None
        }


# Resource attribute of each Launch field.
ATTRIBUTES = {
    "launcher": names.LAUNCHER,
    "run_id": names.RUN_ID,
    "rank": names.RANK,
    "local_rank": names.LOCAL_RANK,
    "world_size": names.WORLD_SIZE,
    "node_rank": names.NODE_RANK,
    "node": names.NODE,
    "restart_count": names.RESTART_COUNT,
    "array_job_id": names.ARRAY_JOB_ID,
    "array_task_id": names.ARRAY_TASK_ID,
    "ray_job_id": names.RAY_JOB_ID,
    "ray_node_id": names.RAY_NODE_ID,
    "ray_actor_id": names.RAY_ACTOR_ID,
}


def point_attributes(resource: Mapping[str, object]) -> dict[str, str]:
    """The launch attributes every metric point of a process with this resource carries."""
    return {name: str(resource[name]) for name in names.POINT_ATTRIBUTES if name in resource}


def detect(environ: Mapping[str, str] | None = None) -> Launch:
    """The launch this process belongs to; an empty Launch outside any launcher."""
    env = _Environment(os.environ if environ is None else environ)
    launcher, rank, local_rank, world_size = None, None, None, None
    for name, (rank_var, local_var, size_var) in _RANKS:
        rank = env.count(rank_var)
        if rank is not None:
            launcher, local_rank, world_size = name, env.count(local_var), env.count(size_var, least=1)
            if world_size is not None and rank >= world_size:
                env.warn(f"{size_var}={world_size} is not above {rank_var}={rank}; the size is left out")
                world_size = None
            break
    ray = _ray_context()
    found = Launch(
        launcher=launcher or ("slurm" if env.text("SLURM_JOB_ID") else None) or ray.get("launcher"),
        run_id=next((value for var in _RUN_IDS if (value := env.text(var))), None) or ray.get("job"),
        rank=rank,
        local_rank=local_rank,
        world_size=world_size,
        node_rank=env.count("GROUP_RANK") if launcher == "torchrun" else env.count("SLURM_NODEID"),
        node=env.text("SLURMD_NODENAME") or (socket.gethostname() if launcher or ray else None),
        restart_count=env.count("TORCHELASTIC_RESTART_COUNT"),
        array_job_id=env.text("SLURM_ARRAY_JOB_ID"),
        array_task_id=env.count("SLURM_ARRAY_TASK_ID"),
        ray_job_id=ray.get("job"),
        ray_node_id=ray.get("node"),
        ray_actor_id=ray.get("actor"),
    )
    return _explicit(found, env)


# What a launcher the library does not know (or a user) says: wins over what was detected.
EXPLICIT = {
    "run_id": "OTEL_LIVEVIEW_RUN_ID",
    "rank": "OTEL_LIVEVIEW_RANK",
    "world_size": "OTEL_LIVEVIEW_WORLD_SIZE",
    "node": "OTEL_LIVEVIEW_NODE",
}


def _explicit(found: Launch, env: _Environment) -> Launch:
    given: dict[str, object] = {
        "run_id": env.text(EXPLICIT["run_id"]),
        "rank": env.count(EXPLICIT["rank"]),
        "world_size": env.count(EXPLICIT["world_size"], least=1),
        "node": env.text(EXPLICIT["node"]),
    }
    given = {name: value for name, value in given.items() if value is not None}
    if not given:
        return found
    updated = replace(found, **given)  # type: ignore[arg-type]
    if updated.rank is not None and updated.world_size is not None and updated.rank >= updated.world_size:
        env.warn(
            f"the world size {updated.world_size} is not above the rank {updated.rank}; the size is left out"
        )
        updated = replace(updated, world_size=None)
    if updated.node is None:
        updated = replace(updated, node=socket.gethostname())
    return updated


class _Environment:
    """Reads launcher variables; a malformed one warns once and reads as unset."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values

    def text(self, var: str) -> str | None:
        value = self.values.get(var, "").strip() if var else ""
        return value or None

    def count(self, var: str, least: int = 0) -> int | None:
        raw = self.text(var)
        if raw is None:
            return None
        if raw.isdigit() and int(raw) >= least:
            return int(raw)
        self.warn(f"{var}={raw!r} is not a whole number of at least {least}; left out")
        return None

    @staticmethod
    def warn(message: str) -> None:
        _log.warning("otel_liveview: launch identity: %s", message)


def _ray_context() -> dict[str, str]:
    """Job, node and actor of a Ray worker: only when the application already imported and started
    Ray (importing it here would cost seconds)."""
    ray = sys.modules.get("ray")
    if ray is None:
        return {}
    try:
        if not ray.is_initialized():
            return {}
        context = ray.get_runtime_context()
        found = {
            "launcher": "ray",
            "job": context.get_job_id(),
            "node": context.get_node_id(),
            "actor": context.get_actor_id(),
        }
    except Exception as error:  # a Ray version with another API: no identity rather than no telemetry
        _Environment.warn(f"cannot read Ray's runtime context ({type(error).__name__}: {error})")
        return {}
    return {key: str(value) for key, value in found.items() if value}
