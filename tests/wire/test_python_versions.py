"""What differs between the Pythons the package supports (3.10 to 3.13): exit hooks that may not
start threads (CPython 3.12.0 and 3.12.1), and CPython's warning about fork() in a multi-threaded
process (3.12 on). docs/reliability.md ("Fork and Python versions") says what the library does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.processes import publisher_env
from tests.support.receiver import Receiver

EXIT_WITHOUT_THREADS = r"""
import atexit, threading
from otel_liveview import ExperimentBroadcaster

def refuse(thread):
    raise RuntimeError("can't create new thread at interpreter shutdown")

broadcaster = ExperimentBroadcaster("pyver:exit")
for seq in range(50):
    broadcaster.publish_log_sync("info", "step", seq=seq)
    broadcaster.publish_metric_sync("loss", seq / 10, step=seq)
# Registered after the library's exit hook, so it runs first: from then on no thread can start, as
# in every atexit hook of CPython 3.12.0 and 3.12.1.
atexit.register(setattr, threading.Thread, "start", refuse)
"""

FORK = r"""
import os, sys, warnings
from otel_liveview import ExperimentBroadcaster

if sys.argv[1] == "filtered":  # what docs/reliability.md gives
    warnings.filterwarnings("ignore", r"This process .* is multi-threaded, use of fork\(\)", DeprecationWarning)
broadcaster = ExperimentBroadcaster("pyver:fork")
broadcaster.publish_log_sync("info", "before the fork", origin="parent")
pid = os.fork()
origin = "child" if pid == 0 else "parent"
broadcaster.publish_log_sync("info", "after the fork", origin=origin)
broadcaster.publish_metric_sync(f"seq_{origin}", 1.0)
if pid == 0:
    sys.exit(0)
os.waitpid(pid, 0)
"""

FORKSERVER = r"""
import multiprocessing, os
import otel_liveview
from otel_liveview import ExperimentBroadcaster

def child(broadcaster):
    broadcaster.publish_log_sync("info", "from the child", pid=os.getpid())

if __name__ == "__main__":
    otel_liveview.configure(service_name="set-in-the-parent")
    broadcaster = ExperimentBroadcaster("pyver:forkserver")
    broadcaster.publish_log_sync("info", "from the parent", pid=os.getpid())
    process = multiprocessing.get_context("forkserver").Process(target=child, args=(broadcaster,))
    process.start()
    process.join()
    assert process.exitcode == 0
"""

FORK_WARNING = "is multi-threaded, use of fork() may lead to deadlocks"


def run(receiver: Receiver, *arguments: str, **settings: str) -> str:
    """Run `python arguments...` publishing to `receiver` (plus `settings`) to its end; its stderr."""
    result = subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        env=publisher_env(receiver.endpoint, **settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


def test_the_exit_ships_everything_when_no_thread_can_start(http_receiver: Receiver) -> None:
    # Nothing leaves before the exit on its own schedule: the exit hook alone must ship it.
    stderr = run(
        http_receiver,
        "-c",
        EXIT_WITHOUT_THREADS,
        OTEL_BLRP_SCHEDULE_DELAY="60000",
        OTEL_METRIC_EXPORT_INTERVAL="60000",
    )
    assert stderr == ""
    logs = [row for row in http_receiver.log_rows() if row.event_name == ""]
    assert sorted(row.attributes["seq"] for row in logs) == list(range(50))
    assert list(http_receiver.latest("liveview.metric").values()) == [4.9]


@pytest.mark.parametrize("warnings", ["default", "filtered"])
def test_a_fork_keeps_both_sides_data_and_warns_as_cpython_does(
    http_receiver: Receiver, warnings: str
) -> None:
    stderr = run(http_receiver, "-c", FORK, warnings)
    # The library's export threads run on through the fork: from 3.12 on CPython says so once, in
    # the parent (shown by default for a fork in __main__), unless the application filters it.
    warns = sys.version_info >= (3, 12) and warnings == "default"
    assert stderr.count(FORK_WARNING) == (1 if warns else 0), stderr
    others = [
        line for line in stderr.splitlines() if FORK_WARNING not in line and line.strip() != "pid = os.fork()"
    ]
    assert others == []  # nothing else: the warning and (3.13) its source line
    logs = [(row.attributes["origin"], row.body) for row in http_receiver.log_rows() if row.event_name == ""]
    assert sorted(logs) == [
        ("child", "after the fork"),
        ("parent", "after the fork"),
        ("parent", "before the fork"),
    ]
    metrics = {dict(labels)["metric"] for _, labels in http_receiver.latest("liveview.metric")}
    assert metrics == {"seq_parent", "seq_child"}


def test_a_forkserver_child_publishes_with_the_broadcaster_but_not_the_settings_of_its_parent(
    http_receiver: Receiver, tmp_path: Path
) -> None:
    # Python 3.14's default start method on Linux: the child starts from a fresh server process.
    script = tmp_path / "forkserver_publisher.py"  # forkserver imports the main module by its path
    script.write_text(FORKSERVER)
    assert run(http_receiver, str(script)) == ""
    logs = {row.body: row for row in http_receiver.log_rows() if row.event_name == ""}
    assert sorted(logs) == ["from the child", "from the parent"]
    parent, child = logs["from the parent"], logs["from the child"]
    assert child.attributes["topic"] == "pyver:forkserver"  # the pickled broadcaster's
    assert child.resource["process.pid"] == child.attributes["pid"] != parent.attributes["pid"]
    assert child.resource["service.instance.id"] != parent.resource["service.instance.id"]
    assert parent.resource["service.name"] == "set-in-the-parent"
    assert child.resource["service.name"] == "otel-liveview"  # configure() stays in the parent
