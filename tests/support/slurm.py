"""A one-node Slurm cluster on loopback for the tests: munged, slurmctld and slurmd from Debian's
slurm-wlm and munge, started as root in a temporary folder with their own key, ports and state, so
that `srun` and `sbatch` run real job steps and job arrays."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_port, unavailable
from tests.support.launchers import launcher

__all__ = ["SlurmCluster", "cluster", "slurm_cluster"]

_CONF = """\
ClusterName=liveview
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={dir}/munge.socket
CredType=cred/munge
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# The node's CPUs as configured here, not as counted: four tasks on a two-core machine.
SlurmdParameters=config_overrides
ReturnToService=2
NodeName={host} NodeAddr=127.0.0.1 CPUs=8 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""


@dataclass
class SlurmCluster:
    folder: Path

    @property
    def env(self) -> dict[str, str]:
        """What a client command (srun, sbatch, squeue) needs to find this cluster."""
        return {"SLURM_CONF": str(self.folder / "slurm.conf")}

    def command(self, *arguments: str, env: dict[str, str], timeout: float = 120) -> str:
        """Run a Slurm client command to its end; its stdout (a failure fails the test)."""
        result = subprocess.run(
            [launcher(arguments[0]), *arguments[1:]],
            env={**env, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, f"{' '.join(arguments)}: {result.stderr[-3000:]}"
        return result.stdout

    def wait_for_jobs(self, timeout: float = 120) -> None:
        """Poll until no job is pending or running."""
        deadline = time.monotonic() + timeout
        while self.command("squeue", "-h", "-o", "%i %t", env=dict(os.environ)).strip():
            assert time.monotonic() < deadline, "Slurm jobs still queued: " + self.log_tail()
            time.sleep(0.2)

    def log_tail(self) -> str:
        return "".join(
            f"\n--- {path.name}\n" + path.read_text(errors="replace")[-2000:]
            for path in sorted(self.folder.glob("*.log"))
        )


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    with cluster(tmp_path_factory.mktemp("slurm")) as started:
        yield started


@contextlib.contextmanager
def cluster(folder: Path) -> Iterator[SlurmCluster]:
    """munged, slurmctld and slurmd with their state in `folder`, until the block ends."""
    for name in ("munged", "slurmctld", "slurmd", "srun", "sbatch", "squeue", "sinfo"):
        launcher(name)
    if os.geteuid() != 0:  # slurmd starts job steps as their user: it must be root
        message = "a Slurm cluster needs root (slurmd)"
        unavailable(message)
    for sub in ("state", "spool"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    conf = folder / "slurm.conf"
    conf.write_text(
        _CONF.format(host=socket.gethostname(), dir=folder, ctld_port=free_port(), slurmd_port=free_port())
    )
    started = SlurmCluster(folder)
    daemons = [
        [
            launcher("munged"),
            "--force",
            f"--key-file={key}",
            f"--socket={folder}/munge.socket",
            f"--pid-file={folder}/munged.pid",
            f"--seed-file={folder}/munge.seed",
            f"--log-file={folder}/munged.log",
        ],
        [launcher("slurmctld"), "-f", str(conf)],
        [launcher("slurmd"), "-f", str(conf)],
    ]
    try:
        for daemon in daemons:  # each forks into the background and writes its pid file
            subprocess.run(daemon, check=True, capture_output=True, timeout=30)
        _wait_for_idle_node(started)
        yield started
    finally:
        for pid_file in ("slurmd.pid", "slurmctld.pid", "munged.pid"):
            _stop(folder / pid_file)


def _wait_for_idle_node(cluster: SlurmCluster, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        result = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], env={**os.environ, **cluster.env}, capture_output=True, text=True
        )
        state = result.stdout.strip()
        if state == "idle":
            return
        time.sleep(0.2)
    raise AssertionError(f"the Slurm node is {state!r}, not idle, after {timeout}s" + cluster.log_tail())


def _stop(pid_file: Path, timeout: float = 10) -> None:
    """SIGTERM the daemon, and wait for it to be gone (its ports and socket free for the next run)."""
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
