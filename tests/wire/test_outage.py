"""Export failure lines: one per signal and outage, naming the signal, for a whole process tree.

A parent, its forked child and its spawned child publish in step (a multiprocessing barrier) while
the test turns the receiver's answers from success to errors and back: every transition must be
reported exactly once across the three processes, naming the signal that failed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT
from tests.support.processes import publisher_env
from tests.support.receiver import serving_http

SCRIPT = r"""
import multiprocessing, os, sys
import otel_liveview

PHASES = 4

def publish_in_step(barrier, main):
    broadcaster = otel_liveview.ExperimentBroadcaster("outage:tree")
    for phase in range(PHASES):
        barrier.wait()  # the receiver answers as the test set it for this phase
        broadcaster.publish_metric_sync("m", phase, pid=str(os.getpid()))
        broadcaster.publish_log_sync("info", "phase", phase=phase)
        otel_liveview.flush(10)
        barrier.wait()  # all three flushed
        if main:
            print("flushed", phase, flush=True)
            sys.stdin.readline()  # the test switched the receiver for the next phase

if __name__ == "__main__":
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    pid = os.fork()
    if pid == 0:
        publish_in_step(barrier, False)
        sys.exit(0)
    spawned = context.Process(target=publish_in_step, args=(barrier, False))
    spawned.start()
    publish_in_step(barrier, True)
    os.waitpid(pid, 0)
    spawned.join()
"""

# The receiver's answer in each phase: fine, an outage, back, a second outage (still on at exit).
STATUSES = (200, 400, 200, 400)


def test_one_line_per_signal_and_outage_across_a_process_tree(tmp_path: Path) -> None:
    script = tmp_path / "tree.py"  # spawn imports the main module again: it must be a file
    script.write_text(SCRIPT)
    with serving_http() as receiver:
        env = publisher_env(receiver.endpoint, OTEL_METRIC_EXPORT_INTERVAL="200", TMPDIR=str(tmp_path))
        process = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdin is not None and process.stdout is not None
        for phase, status in enumerate(STATUSES):
            receiver.status = status
            if phase:
                process.stdin.write("next\n")
                process.stdin.flush()
            assert process.stdout.readline().split() == ["flushed", str(phase)]
        process.stdin.write("end\n")
        process.stdin.close()
        stderr = process.stderr.read() if process.stderr else ""
        assert process.wait(timeout=60) == 0, stderr[-3000:]
    lines = stderr.splitlines()
    print("\n" + "\n".join(lines))
    url = re.escape(receiver.endpoint)
    for signal, path in (("metrics", "/v1/metrics"), ("events and logs", "/v1/logs")):
        failed = [
            line for line in lines if re.match(f"otel-liveview: cannot export {signal} to {url}{path} ", line)
        ]
        back = [
            line
            for line in lines
            if re.match(f"otel-liveview: exporting {signal} to {url}{path} again", line)
        ]
        assert len(failed) == 2, signal  # two outages, each said once for the three processes
        assert len(back) == 1, signal
    assert len(lines) == 6  # nothing else: no line per process or per attempt
    # The tree's first process removed its markers at exit, though the second outage was still on.
    assert not list(tmp_path.glob("otel-liveview-outage-*"))


def test_a_script_that_publishes_only_metrics_is_told_about_metrics() -> None:
    """Its gauges go on the metrics signal and its updates' events on the logs signal: both fail
    against a refused endpoint, and each says so (it was told only `cannot export logs`)."""
    script = "import otel_liveview\notel_liveview.ExperimentBroadcaster().publish_metric_sync('m', 1.0)\n"
    env = publisher_env("http://127.0.0.1:1", OTEL_LIVEVIEW_EXIT_TIMEOUT="1")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0
    assert sorted(line.split(" to ")[0] for line in result.stderr.splitlines()) == [
        "otel-liveview: cannot export events and logs",
        "otel-liveview: cannot export metrics",
    ]
