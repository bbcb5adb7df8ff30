"""The launchers users start experiments with (Open MPI's mpirun, Slurm's srun and sbatch), run for
real by the tests: a missing one fails the test under CI and skips it elsewhere, like a server."""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.support import ROOT, unavailable

# Debian's packages that bring each launcher (.ci/run installs them).
PACKAGES = {
    "mpirun": "openmpi-bin",
    "munged": "munge",
    **{name: "slurm-wlm" for name in ("slurmctld", "slurmd", "srun", "sbatch", "squeue", "sinfo")},
}


# More ranks than cores, and root (a CI machine's user).
_MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
}


def launcher(name: str) -> str:
    """The path of launcher `name`; fails the test under CI, skips it otherwise, when missing."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found; install Debian's {PACKAGES.get(name, name)}"
    unavailable(message)


def mpirun(ranks: int, module: str, env: dict[str, str], timeout: float = 120) -> str:
    """`mpirun -n ranks python -m module` from the repository root; its stdout (a failed run fails the
    test with its stderr)."""
    env = {**env, **_MPI_ENV}
    command = [launcher("mpirun"), "-n", str(ranks), sys.executable, "-m", module]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def launcher_module(name: str) -> None:
    """A launcher that comes as a Python package (Ray): fails under CI, skips elsewhere, when missing."""
    if importlib.util.find_spec(name) is not None:
        return
    message = f"the Python package {name!r} is not installed (the test extra has it)"
    unavailable(message)


def start_mpirun(ranks: int, module: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`mpirun -n ranks python -m module` in the background, its output on a pipe; the caller ends it."""
    command = [launcher("mpirun"), "-n", str(ranks), sys.executable, "-m", module]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env={**env, **_MPI_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@contextlib.contextmanager
def training(ranks: int, env: dict[str, str], workdir: Path) -> Iterator[subprocess.Popen[str]]:
    """`mpirun -n ranks` of tests/support/rank_training.py for the length of the block; then its ranks
    are told to stop, and the launch must end cleanly."""
    stop = workdir / f"stop-{uuid.uuid4().hex[:8]}"
    launch = start_mpirun(ranks, "tests.support.rank_training", {**env, "LIVEVIEW_TEST_STOP": str(stop)})
    try:
        yield launch
    finally:
        stop.touch()
        output, _ = launch.communicate(timeout=120)
    assert launch.returncode == 0, output[-3000:]


def start_srun(
    slurm_env: dict[str, str], ranks: int, module: str, env: dict[str, str]
) -> subprocess.Popen[str]:
    """`srun -n ranks python -m module` on the cluster `slurm_env` names, in the background."""
    command = [launcher("srun"), "-n", str(ranks), "--chdir", str(ROOT), sys.executable, "-m", module]
    return subprocess.Popen(
        command, env={**env, **slurm_env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
