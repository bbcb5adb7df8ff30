"""`otel-liveview view` and `demo --view` as a user runs them: in a real terminal (tmux), fed by the
library over gRPC and OTLP/HTTP from every kind of origin, read back from the screen.

Each test starts its own tmux server (a private socket) and polls `capture-pane` until the expected
text is on screen or a generous deadline passes: the machine running the suite may be loaded.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import requests
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from tests.support import ROOT, free_port
from tests.support.processes import publisher_env, run_python

pytestmark = pytest.mark.timeout(120)

CLI = str(Path(sys.executable).parent / "otel-liveview")
EXIT = "otel-liveview-test-exit="
DEADLINE = 45.0  # seconds for anything to show up on screen
_sockets = itertools.count()


def port_is_free(port: int) -> bool:
    """Nothing listens on it (connections the view had may still linger in TIME_WAIT)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Terminal:
    """A 200x60 tmux pane running `command`; the pane stays after it exits, with its exit code."""

    def __init__(self, command: str, width: int = 200, height: int = 60) -> None:
        if shutil.which("tmux") is None:
            pytest.fail("tmux is needed for the terminal tests (apt-get install tmux)")
        self.socket = f"otel-liveview-test-{os.getpid()}-{next(_sockets)}"
        shell = f"cd {ROOT} && {command}; echo {EXIT}$?; sleep 3600"
        self.tmux("new-session", "-d", "-s", "view", "-x", str(width), "-y", str(height), shell)

    def tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30, check=True
        )
        return result.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "view")

    def wait_for(self, *patterns: str, timeout: float = DEADLINE) -> str:
        """Poll the screen until every regex in `patterns` matches it; the screen then."""
        return self.wait_until(
            lambda s: all(re.search(p, s, re.MULTILINE) for p in patterns), patterns, timeout
        )

    def wait_until(self, check: Callable[[str], bool], what: object, timeout: float = DEADLINE) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if check(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"not on screen after {timeout}s: {what}\n--- screen ---\n{screen}")
            time.sleep(0.2)

    def exit_code(self, timeout: float = DEADLINE) -> tuple[int, str]:
        screen = self.wait_for(EXIT + r"\d+", timeout=timeout)
        code = re.search(EXIT + r"(\d+)", screen)
        assert code is not None
        return int(code.group(1)), screen

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def terminal() -> Iterator[Callable[[str], Terminal]]:
    opened: list[Terminal] = []

    def open_terminal(command: str) -> Terminal:
        opened.append(Terminal(command))
        return opened[-1]

    yield open_terminal
    for term in opened:
        term.close()


def view_command(grpc_port: int, http_port: int, *extra: str) -> str:
    return f"{CLI} view --grpc 127.0.0.1:{grpc_port} --http 127.0.0.1:{http_port} {' '.join(extra)}"


def stop_and_check_clean_exit(term: Terminal, *ports: int) -> None:
    term.tmux("send-keys", "-t", "view", "C-c")
    code, screen = term.exit_code()
    assert code == 0, screen
    assert "Traceback" not in screen and "otel-liveview view: stopped after" in screen, screen
    assert all(port_is_free(port) for port in ports), "a server kept its port after the view exited"


PUBLISHER = textwrap.dedent(
    """
    import sys
    from otel_liveview import LiveViewExperiment
    from tests.support.publisher import main
    topic, count, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with LiveViewExperiment(name=name, base_topic=topic) as experiment:
        main(topic, count, ["main", "threads", "tasks", "fork", "spawn"])
        experiment.broadcaster.publish_log_sync("warning", f"{name} says the last word", disk="sda")
    """
)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_view_shows_every_panel_from_every_origin_and_stops_on_ctrl_c(
    terminal: Callable[[str], Terminal], protocol: str
) -> None:
    grpc_port, http_port = free_port(), free_port()
    term = terminal(view_command(grpc_port, http_port))
    term.wait_for(rf"listening grpc 127\.0\.0\.1:{grpc_port} http 127\.0\.0\.1:{http_port}")

    count = 20
    name = "exp-" + protocol.split("/")[0]
    port = grpc_port if protocol == "grpc" else http_port
    env = publisher_env(
        f"http://127.0.0.1:{port}",
        protocol=protocol,
        OTEL_EXPORTER_OTLP_INSECURE="true",
        OTEL_SERVICE_NAME="view-test",
        OTEL_EXPORTER_OTLP_COMPRESSION="gzip",  # gzip bodies over HTTP, gRPC's own compression
    )
    run_python(
        PUBLISHER.replace("sys.argv[1], int(sys.argv[2]), sys.argv[3]", f"'view:test', {count}, {name!r}"),
        env,
    )

    last = count - 1
    origins = ["main", "fork", "spawn", *(f"thread{i}" for i in range(4)), *(f"task{i}" for i in range(4))]
    screen = term.wait_for(
        # metrics: one row per series with value and step, whichever origin published it; the
        # labels and topic every row has are said once in the title
        r"Metrics \(11 series\) · phase=test · topic view:test ─",
        *(rf"seq_{origin}\s+{last}\s+{last}\s" for origin in origins),
        # data stream: the latest value per key
        r"wire\s+origin\s+\w+\s+\d+",
        r"│\s+pid\s+\d+\s",
        rf"│\s+seq\s+{last}\s",
        # the experiment, completed, and the log it wrote last
        rf"{name}\s+completed\s",
        rf"WARN\s+(view-test/\d+\s+)?{name} says the last word\s+disk=sda",  # the source unless shared
        r"Logs \(last 20\)",
        # three processes: the parent, the forked and the spawned child
        r"Publishers \(\d alive of 3\)",
        r"publishers \d alive of 3 \| 11 series",
    )
    published = re.findall(r"data (\d+) (?:info 1 )?log (\d+) metric (\d+)", screen)  # info: the experiment's
    assert sorted(published) == sorted([("180", "181", "180"), ("20", "20", "20"), ("20", "20", "20")]), (
        screen
    )
    assert "0 rejected" in screen
    stop_and_check_clean_exit(term, grpc_port, http_port)


def test_a_taken_port_is_one_clear_line_and_exit_code_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for flag, args in (
            ("--grpc", ["--grpc", f"127.0.0.1:{port}", "--http", f"127.0.0.1:{free_port()}"]),
            ("--http", ["--grpc", f"127.0.0.1:{free_port()}", "--http", f"127.0.0.1:{port}"]),
        ):
            for command in (["view"], ["demo", "--view", "--duration", "1"]):
                result = subprocess.run(
                    [CLI, *command, *args], capture_output=True, text=True, timeout=60, cwd=ROOT
                )
                assert result.returncode == 2, result
                assert result.stderr == (
                    f"otel-liveview {command[0]}: cannot listen on 127.0.0.1:{port} "
                    f"(address already in use); pass {flag} ADDR\n"
                ), result.stderr
                assert result.stdout == ""


def gauge_request(name: str, value: float) -> ExportMetricsServiceRequest:
    point = NumberDataPoint(as_double=value, time_unix_nano=time.time_ns())
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="raw-client"))])
    return ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=resource,
                scope_metrics=[ScopeMetrics(metrics=[Metric(name=name, gauge=Gauge(data_points=[point]))])],
            )
        ]
    )


def test_malformed_requests_get_otlp_errors_and_the_view_keeps_going(
    terminal: Callable[[str], Terminal],
) -> None:
    grpc_port, http_port = free_port(), free_port()
    term = terminal(view_command(grpc_port, http_port))
    term.wait_for(r"listening grpc")
    url = f"http://127.0.0.1:{http_port}"
    protobuf = {"Content-Type": "application/x-protobuf"}

    bad = requests.post(f"{url}/v1/metrics", data=b"\xff\xff\xff not protobuf", headers=protobuf, timeout=10)
    assert bad.status_code == 400 and bad.headers["Content-Type"] == "application/x-protobuf"
    status = status_pb2.Status.FromString(bad.content)
    assert status.code == code_pb2.INVALID_ARGUMENT and "ExportMetricsServiceRequest" in status.message

    not_gzip = requests.post(
        f"{url}/v1/logs", data=b"plain", headers={**protobuf, "Content-Encoding": "gzip"}, timeout=10
    )
    assert not_gzip.status_code == 400
    assert "gzip" in status_pb2.Status.FromString(not_gzip.content).message
    assert requests.post(f"{url}/v1/traces", data=b"", headers=protobuf, timeout=10).status_code == 404
    assert requests.get(f"{url}/v1/metrics", timeout=10).status_code == 405

    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    export = channel.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export")
    with pytest.raises(grpc.RpcError) as error:
        export(b"\xff\xff\xff not protobuf", timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ExportMetricsServiceRequest" in (error.value.details() or "")

    # ... and it still takes good requests, gzip-compressed, JSON and over gRPC
    good = gzip.compress(gauge_request("after_bad_gzip", 1.5).SerializeToString())
    response = requests.post(
        f"{url}/v1/metrics", data=good, headers={**protobuf, "Content-Encoding": "gzip"}, timeout=10
    )
    assert response.status_code == 200
    body = {
        "resourceMetrics": [
            {
                "scopeMetrics": [
                    {"metrics": [{"name": "after_bad_json", "gauge": {"dataPoints": [{"asDouble": 2.5}]}}]}
                ]
            }
        ]
    }
    response = requests.post(
        f"{url}/v1/metrics", data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    export(gauge_request("after_bad_grpc", 3.5).SerializeToString(), timeout=10)
    channel.close()

    term.wait_for(
        r"after_bad_gzip\s+1\.5\s",
        r"after_bad_json\s+2\.5\s",
        r"after_bad_grpc\s+3\.5\s",
        r"\| 5 rejected",  # bad protobuf, bad gzip, unknown path, GET, bad gRPC
    )
    stop_and_check_clean_exit(term, grpc_port, http_port)


def test_plain_frames_have_no_escape_sequences_on_a_terminal_or_a_pipe(
    terminal: Callable[[str], Terminal], tmp_path: Path
) -> None:
    # On a terminal, with --plain: what the program writes to it, byte for byte.
    grpc_port, http_port = free_port(), free_port()
    raw = tmp_path / "pane.raw"
    term = terminal(view_command(grpc_port, http_port, "--plain", "--refresh", "0.3"))
    term.tmux("pipe-pane", "-t", "view", "-o", f"cat >> {raw}")
    term.wait_for(r"=== otel-liveview view frame \d+")
    term.wait_until(
        lambda _: raw.exists() and raw.read_bytes().count(b"=== otel-liveview view frame") >= 3, "3 frames"
    )
    stop_and_check_clean_exit(term, grpc_port, http_port)
    output = raw.read_bytes()
    assert b"\x1b" not in output, output[:500]
    assert output.count(b"=== otel-liveview view frame") >= 3 and b"--- metrics (0 series)" in output

    # On a pipe, without --plain: plain frames too, one header line each.
    grpc_port, http_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            CLI,
            "view",
            "--grpc",
            f"127.0.0.1:{grpc_port}",
            "--http",
            f"127.0.0.1:{http_port}",
            "--refresh",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        headers: list[bytes] = []
        deadline = time.monotonic() + DEADLINE
        while len(headers) < 2 and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "the view closed its output"
            assert b"\x1b" not in line, line
            if line.startswith(b"=== otel-liveview view frame"):
                headers.append(line)
        assert len(headers) == 2 and b"publishers 0 alive of 0" in headers[0], headers
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0 and b"Traceback" not in stderr, stderr


def test_demo_view_runs_the_demo_into_an_embedded_view_and_ends_by_itself(
    terminal: Callable[[str], Terminal],
) -> None:
    grpc_port, http_port = free_port(), free_port()
    command = f"{CLI} demo --view --duration 12 --step-seconds 0.05 --name tmux-demo --topic demo:view"
    term = terminal(f"{command} --grpc 127.0.0.1:{grpc_port} --http 127.0.0.1:{http_port}")
    term.wait_for(
        r"tmux-demo\s+running\s+(\d+s ago\s+)?0:\d\d\s+.*train \d+/1000 \d+%",  # status, elapsed, progress
        r"loss\s+phase=train\s+\d",
        r"accuracy\s+phase=train\s+\d",
        r"accuracy\s+phase=eval\s+\d",  # from the spawned evaluation process
        r"sensors\s+arm\.x\s+-?\d",
        r"temperature\s+\d",
        r"DEBUG\s+(otel-liveview/\d+\s+)?step \d+ loss",
        r"Publishers \(2 alive of 2\)",
    )
    code, screen = term.exit_code(timeout=60)
    assert code == 0 and "Traceback" not in screen and "done" in screen, screen
    assert port_is_free(grpc_port) and port_is_free(http_port)


def test_demo_view_plain_ends_with_the_completed_experiment_and_nothing_else_on_stdout() -> None:
    grpc_port, http_port = free_port(), free_port()
    listen = ["--grpc", f"127.0.0.1:{grpc_port}", "--http", f"127.0.0.1:{http_port}"]
    demo = ["demo", "--view", "--plain", "--duration", "4", "--step-seconds", "0.05", "--name", "plain-demo"]
    result = subprocess.run([CLI, *demo, *listen], capture_output=True, timeout=90, cwd=ROOT)
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0 and "Traceback" not in stderr, stderr
    assert "\x1b" not in stdout, stdout[:300]
    assert not re.search(r"step\s+\d+\s+epoch\s+\d+\s+loss", stdout)  # the demo's step line stays off
    frames = stdout.split("=== otel-liveview view frame ")
    assert len(frames) >= 3 and frames[0] == "", stdout[:300]
    last = frames[-1]
    assert re.search(r"plain-demo\s+completed\s", last), last
    assert re.search(r"loss\s+phase=train\s+\d", last) and re.search(r"sensors\s+arm\.x\s", last), last
    assert re.search(r"accuracy\s+phase=eval\s", last), last  # the spawned evaluation worker
    assert last.rstrip().endswith("done"), last[-300:]
