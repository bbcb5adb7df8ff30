"""A collector that is down never holds the experiment: flush() keeps its timeout and a process
exits promptly, whether the endpoint refuses connections, accepts and never answers, answers
slowly or answers with errors; forked and spawned children and LiveViewExperiment alike.

The bounds here are generous (a loaded 2-core CI machine); the measured figures are printed
(`pytest -s tests/wire/test_exit.py`) and kept in docs/reliability.md.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otel_liveview._internal import config, otlp
from tests.support import ROOT
from tests.support.processes import publisher_env
from tests.support.receiver import Receiver, serving_http, silent_listener

SCRIPT = r"""
import multiprocessing, os, sys, time, warnings
import otel_liveview
from otel_liveview import ExperimentBroadcaster, LiveViewExperiment

def publish(seconds):
    broadcaster = ExperimentBroadcaster("exit:bounded")
    end, i = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        broadcaster.publish_metric_sync("loss", i, step=i)
        broadcaster.publish_log_sync("info", "step", i=i)
        broadcaster.publish_data_sync("sensors", {"i": i})
        i += 1
        if i % 200 == 0:
            time.sleep(0.01)  # a loop that does some work of its own

def child(seconds):
    publish(seconds)
    print("child-last", time.time(), flush=True)

if __name__ == "__main__":
    publish(0.3)
    started = time.monotonic()
    print("flush", otel_liveview.flush(1.0), time.monotonic() - started, flush=True)
    started = time.monotonic()
    with LiveViewExperiment("exit-test", base_topic="exit:bounded"):
        publish(0.2)
        started = time.monotonic()
    print("experiment-exit", time.monotonic() - started, flush=True)
    # Python 3.12+ warns about fork() beside the export threads; docs/reliability.md gives this filter.
    warnings.filterwarnings("ignore", r"This process .* is multi-threaded, use of fork\(\)", DeprecationWarning)
    pid = os.fork()
    if pid == 0:
        child(0.5)
        sys.exit(0)  # an ordinary exit of the forked child: atexit hooks run
    _, status = os.waitpid(pid, 0)
    print("fork-end", time.time(), os.waitstatus_to_exitcode(status), flush=True)
    spawned = multiprocessing.get_context("spawn").Process(target=child, args=(0.5,))
    spawned.start()
    spawned.join()
    print("spawn-end", time.time(), spawned.exitcode, flush=True)
    print("last", time.time(), flush=True)
"""

EXIT_TIMEOUT = 1.0  # OTEL_LIVEVIEW_EXIT_TIMEOUT for these runs
SLACK = 2.0  # what a loaded CI machine may add to any bound


def run(tmp_path: Path, endpoint: str, protocol: str) -> dict[str, float]:
    """Run the script against `endpoint`; every figure it reports, plus the exit delays."""
    script = tmp_path / "exit_publisher.py"
    script.write_text(SCRIPT)
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_LIVEVIEW_EXIT_TIMEOUT": str(EXIT_TIMEOUT),
    }
    process = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = process.communicate(timeout=120)
    ended = time.time()
    assert process.returncode == 0, stderr[-3000:]
    lines = [line.split() for line in stdout.splitlines()]
    figures: dict[str, float] = {}
    children = iter(float(words[1]) for words in lines if words[0] == "child-last")
    for words in lines:
        if words[0] == "flush":
            figures["flush"] = float(words[2])
        elif words[0] == "experiment-exit":
            figures["experiment_exit"] = float(words[1])
        elif words[0] in ("fork-end", "spawn-end"):
            # A child that died (a signal: a negative code) or raised never printed its last line.
            assert words[2] == "0", f"the {words[0][:-4]}ed child ended with {words[2]}:\n{stderr[-3000:]}"
            figures[words[0].replace("-end", "_exit")] = float(words[1]) - next(children)
        elif words[0] == "last":
            figures["exit"] = ended - float(words[1])
    assert set(figures) == {"flush", "experiment_exit", "fork_exit", "spawn_exit", "exit"}, stdout
    figures["warnings"] = stderr.count("otel-liveview: cannot export")
    figures["stderr_lines"] = len(stderr.splitlines())
    print(f"\n{protocol} {endpoint}: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))
    return figures


def refused_endpoint(protocol: str) -> str:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def black_hole() -> Iterator[str]:
    """Accepts connections and never answers (a hung collector or a stuck proxy)."""
    with silent_listener() as listener:
        yield listener.url


PROTOCOLS = ["grpc", "http/protobuf"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_refused_collector_costs_nothing(tmp_path: Path, protocol: str) -> None:
    figures = run(tmp_path, refused_endpoint(protocol), protocol)
    assert figures["flush"] < 1.0 + 0.1 * SLACK
    for exit_kind in ("experiment_exit", "fork_exit", "spawn_exit", "exit"):
        assert figures[exit_kind] < 0.5 + SLACK, exit_kind  # nothing is waited for
    # One line per signal for the outage, whatever the processes (main, fork, spawn) and attempts.
    assert figures["warnings"] == 2
    assert figures["stderr_lines"] == figures["warnings"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_collector_that_never_answers_costs_at_most_the_timeouts(
    tmp_path: Path, protocol: str, black_hole: str
) -> None:
    figures = run(tmp_path, black_hole, protocol)
    assert figures["flush"] < 1.0 + 0.1 * SLACK  # flush(1.0) keeps its word
    for exit_kind in ("fork_exit", "spawn_exit", "exit"):
        assert figures[exit_kind] < EXIT_TIMEOUT + SLACK, exit_kind
    assert figures["experiment_exit"] < EXIT_TIMEOUT + SLACK  # its flush is within the exit budget


def test_slow_failing_answers_keep_the_bounds(tmp_path: Path) -> None:
    with serving_http() as receiver:
        receiver.status = 503  # retryable: the export thread retries, flush and exit do not wait
        receiver.delay = 0.5
        figures = run(tmp_path, receiver.endpoint, "http/protobuf")
        assert receiver.requests == 0  # nothing was accepted
        assert sum(receiver.attempts.values()) > 0  # but the endpoint was tried
    assert figures["flush"] < 1.0 + 0.1 * SLACK
    for exit_kind in ("fork_exit", "spawn_exit", "exit"):
        assert figures[exit_kind] < EXIT_TIMEOUT + SLACK, exit_kind


def test_a_healthy_collector_gets_everything_before_exit(tmp_path: Path, http_receiver: Receiver) -> None:
    figures = run(tmp_path, http_receiver.endpoint, "http/protobuf")
    assert figures["warnings"] == 0
    pids = {row.resource["process.pid"] for row in http_receiver.log_rows()}
    assert len(pids) == 3  # main, forked and spawned processes all delivered
    statuses = [row.body["status"] for row in http_receiver.log_rows() if row.event_name == "liveview.status"]
    assert statuses == ["initializing", "running", "completed"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_deadline_already_passed_sends_nothing_and_reports_no_outage(protocol: str) -> None:
    """A flush or exit whose time ran out while records were built: no attempt, no error, no warning."""
    with silent_listener() as listener:
        sender = otlp.OtlpSender(otlp.resolve(config.load(protocol=protocol, endpoint=listener.url), "logs"))
        outcome = sender.send(ExportLogsServiceRequest(), time.monotonic() - 1)
        sender.close()
        assert (outcome.ok, outcome.reason) == (False, "the deadline passed before an attempt")
        assert not sender.down
        assert listener.connections == []


BUDGET_SCRIPT = r"""
import sys, time
import otel_liveview
from otel_liveview import ExperimentBroadcaster, LiveViewExperiment

broadcaster = ExperimentBroadcaster("exit:budget")
broadcaster.publish_metric_sync("loss", 0.5, step=1)
started = time.monotonic()
otel_liveview.flush(1.0)  # the user's own flush, mid-run: not part of the exit allowance
print("mid-run-flush", time.monotonic() - started, flush=True)
for run in ("first", "second"):
    with LiveViewExperiment(run, base_topic="exit:budget") as experiment:
        experiment.broadcaster.publish_log_sync("info", "step", run=run)
        ended = time.monotonic()
    print("experiment-exit", time.monotonic() - ended, flush=True)
print("last", time.monotonic(), flush=True)
"""

BUDGET = 3.0  # OTEL_LIVEVIEW_EXIT_TIMEOUT for the budget runs


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_experiment_flush_and_the_exit_share_one_budget(protocol: str, black_hole: str) -> None:
    """Against a collector that never answers, an experiment's end waits at most the exit budget, and
    the interpreter's exit after it does not wait a second time. Each experiment's end gets the
    whole budget (it is the end of the experiment for its run), and a flush the user called
    mid-run takes nothing from it."""
    env = publisher_env(black_hole, protocol=protocol, OTEL_LIVEVIEW_EXIT_TIMEOUT=str(BUDGET))
    process = subprocess.Popen(
        [sys.executable, "-c", BUDGET_SCRIPT], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    stdout, _ = process.communicate(timeout=120)
    ended = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
    assert process.returncode == 0
    figures: dict[str, list[float]] = {}
    for words in (line.split() for line in stdout.splitlines()):
        figures.setdefault(words[0], []).append(float(words[1]))
    interpreter_exit = ended - figures["last"][0]
    print(f"\n{protocol}: {figures}, interpreter exit {interpreter_exit:.2f}")
    assert figures["mid-run-flush"][0] < 1.0 + 0.1 * SLACK
    for experiment_exit in figures["experiment-exit"]:
        # The whole budget (nothing answers, so the flush waits it out), and not more.
        assert BUDGET - 0.2 < experiment_exit < BUDGET + SLACK
    assert interpreter_exit < BUDGET - 1.0  # the exit did not wait again (it did: BUDGET more)


def readme_quick_start() -> str:
    """The Python block of the README's Quick start, as a user copies it."""
    section = (ROOT / "README.md").read_text().split("## Quick start", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_quick_start_script_exits_within_the_budget(tmp_path: Path, black_hole: str) -> None:
    """The README's promise: whatever the collector does, the script ends at most
    OTEL_LIVEVIEW_EXIT_TIMEOUT after its experiment (it took 5 s more: the experiment's flush,
    then the exit hook's)."""
    script = tmp_path / "quickstart.py"
    script.write_text(readme_quick_start())
    env = publisher_env(black_hole, protocol="grpc", OTEL_LIVEVIEW_EXIT_TIMEOUT="0.5")
    started = time.monotonic()
    subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, timeout=120)
    took = time.monotonic() - started
    print(f"\nquick start against a black hole: {took:.2f} s")
    # The budget, plus starting an interpreter on a loaded machine (before: 5.5 s and that).
    assert took < 0.5 + 2 * SLACK
