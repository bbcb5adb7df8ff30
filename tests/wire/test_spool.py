"""The spool on the wire: publishers in their own processes, the suite's OTLP receiver as the
collector, refusing, gone, or killed in the middle; `otel-liveview replay` for what is left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.support import ROOT, free_port
from tests.support.processes import publisher_env, run_python, start_python
from tests.support.receiver import Receiver, serving_http, wait_until

PUBLISH = """
import json, sys, time
import otel_liveview
broadcaster = otel_liveview.ExperimentBroadcaster(base_topic="spool")
count, rate = int(sys.argv[1]), float(sys.argv[2])
started = time.monotonic()
for seq in range(count):
    ahead = started + seq / rate - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)
    broadcaster.publish_log_sync("info", "tick", seq=seq)
    broadcaster.publish_metric_sync("seq", seq)
    if seq % 100 == 99:
        print(seq + 1, flush=True)
print(json.dumps({"flushed": otel_liveview.flush(10), **otel_liveview.stats()}), flush=True)
"""
# ...and then waits (up to 30 s) for its spool folder to empty.
PUBLISH_AND_WAIT = (
    PUBLISH
    + """
import os
deadline = time.monotonic() + 30
folder = os.environ["OTEL_LIVEVIEW_SPOOL_DIR"]
while any(name.endswith(".seg") for name in os.listdir(folder)) and time.monotonic() < deadline:
    time.sleep(0.05)
"""
)


def seqs(receiver: Receiver) -> list[int]:
    return [int(row.attributes["seq"]) for row in receiver.log_rows() if "seq" in row.attributes]


def replay(directory: Path, endpoint: str, *extra: str, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = publisher_env(endpoint, **env_vars)
    return subprocess.run(
        [sys.executable, "-m", "otel_liveview.cli", "replay", str(directory), "--endpoint", endpoint, *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def publish(script: str, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )


def test_a_collector_that_refuses_for_a_while_gets_every_record_once_in_order(tmp_path: Path) -> None:
    with serving_http() as receiver:
        receiver.status = 503
        env = publisher_env(
            receiver.endpoint,
            OTEL_LIVEVIEW_SPOOL_DIR=str(tmp_path),
            OTEL_METRIC_EXPORT_INTERVAL="200",
            OTEL_LIVEVIEW_EXIT_TIMEOUT="20",
        )
        process = publish(PUBLISH_AND_WAIT, env, "3000", "500")
        assert process.stdout is not None
        # Refused for the first 1,000 records (2 s), then accepted: the spool drains by itself.
        while int(process.stdout.readline()) < 1000:
            pass
        assert any(tmp_path.glob("*.seg"))
        receiver.status = 200
        out, _ = process.communicate(timeout=90)
        assert process.returncode == 0
        report = json.loads(out.splitlines()[-1])
        wait_until(lambda: len(seqs(receiver)) >= 3000, 30, what="every record")
        received = seqs(receiver)
    assert Counter(received) == Counter(range(3000)), "each record exactly once"
    assert report["dropped"] == {}
    assert not list(tmp_path.glob("*.seg")), "a segment all sent is removed"
    # Everything goes through the spool, sent oldest first: what arrived is in the order published.
    assert received == sorted(received)


def test_a_publisher_killed_mid_run_loses_only_what_it_had_not_yet_written(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    # Batches of 20,000 and a 5 s schedule delay: a spool written only when a batch leaves would
    # lose up to 5 s of records (10,000). Written every 20 ms, it loses a few dozen.
    env = publisher_env(
        dead,
        OTEL_LIVEVIEW_SPOOL_DIR=str(tmp_path),
        OTEL_BLRP_MAX_QUEUE_SIZE="40000",
        OTEL_BLRP_MAX_EXPORT_BATCH_SIZE="20000",
        OTEL_BLRP_SCHEDULE_DELAY="5000",
    )
    process = publish(PUBLISH, env, "100000", "2000")
    assert process.stdout is not None
    published = 0
    while published < 6000:  # three seconds
        published = int(process.stdout.readline())
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with serving_http() as receiver:
        result = replay(tmp_path, receiver.endpoint)
        assert result.returncode == 0, result.stderr
        received = seqs(receiver)
    assert len(received) == len(set(received))
    lost = published - len([seq for seq in received if seq < published])
    print(f"\n{published} published before SIGKILL, {len(received)} replayed, {lost} of them lost")
    # What was not yet written: 20 ms of publishing, 40 records; allowed a second (2,000), for a
    # loaded machine, a third of what waiting for the batch lost here (all 6,000).
    assert 0 <= lost <= 2000
    assert received == sorted(received), "replayed oldest first"


def test_the_next_process_with_the_same_folder_sends_what_a_dead_one_left(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    first = publish(PUBLISH, publisher_env(dead, OTEL_LIVEVIEW_SPOOL_DIR=str(tmp_path)), "3000", "1e9")
    first.communicate(timeout=60)
    assert first.returncode == 0
    assert any(tmp_path.glob("*.seg"))
    with serving_http() as receiver:
        env = publisher_env(receiver.endpoint, OTEL_LIVEVIEW_SPOOL_DIR=str(tmp_path))
        run_python(PUBLISH_AND_WAIT.replace("sys.argv[1]", "'0'").replace("sys.argv[2]", "'1'"), env)
        received = seqs(receiver)
    assert Counter(received) == Counter(range(3000))
    assert not list(tmp_path.glob("*.seg"))


def test_fork_and_spawn_children_share_one_folder_and_nothing_is_sent_twice(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    script = """
import multiprocessing, os, sys
import otel_liveview

def publish(who):
    broadcaster = otel_liveview.ExperimentBroadcaster(base_topic="shared")
    for seq in range(2000):
        broadcaster.publish_log_sync("info", "tick", seq=seq, who=who)
    otel_liveview.flush(10)

if __name__ == "__main__":
    publish("parent")
    children = [multiprocessing.get_context(method).Process(target=publish, args=(method,))
                for method in ("fork", "spawn")]
    for child in children:
        child.start()
    pid = os.fork()
    if pid == 0:
        publish("os.fork")
        otel_liveview.shutdown()
        os._exit(0)
    os.waitpid(pid, 0)
    for child in children:
        child.join()
        assert child.exitcode == 0
"""
    env = publisher_env(dead, OTEL_LIVEVIEW_SPOOL_DIR=str(tmp_path), OTEL_LIVEVIEW_EXIT_TIMEOUT="5")
    path = tmp_path / "script" / "shared.py"
    path.parent.mkdir()
    process = start_python(script, env, file=path)
    process.communicate(timeout=120)
    assert process.returncode == 0
    pids = {name.name.rsplit("-", 3)[1] for name in tmp_path.glob("*.seg")}
    assert len(pids) == 4, "one writer per process"
    with serving_http() as receiver:
        result = replay(tmp_path, receiver.endpoint, "--jobs", "3")
        assert result.returncode == 0, result.stderr
        rows = [row for row in receiver.log_rows() if "seq" in row.attributes]
    by_who = Counter(str(row.attributes["who"]) for row in rows)
    assert by_who == {"parent": 2000, "fork": 2000, "spawn": 2000, "os.fork": 2000}
    pairs = Counter((row.attributes["who"], row.attributes["seq"]) for row in rows)
    assert max(pairs.values()) == 1


def test_replay_resumes_after_an_interruption_and_says_what_it_did(tmp_path: Path) -> None:
    env = publisher_env(
        "http://127.0.0.1:9", OTEL_LIVEVIEW_OFFLINE="true", OTEL_LIVEVIEW_SPOOL_DIR=str(tmp_path)
    )
    run_python(PUBLISH.replace("sys.argv[1]", "'3000'").replace("sys.argv[2]", "'1e9'"), env)
    with serving_http() as receiver:
        receiver.status = 503  # the first attempt fails: replay stops, keeps its progress
        failed = replay(tmp_path, receiver.endpoint, OTEL_EXPORTER_OTLP_TIMEOUT="500")
        assert failed.returncode == 1
        assert "stopped" in failed.stderr and str(tmp_path) in failed.stderr
        receiver.status = 200
        done = replay(tmp_path, receiver.endpoint)
        assert done.returncode == 0, done.stderr
        assert "log records" in done.stdout
        assert "\r" not in done.stdout + done.stderr, "no progress line into a pipe"
        again = replay(tmp_path, receiver.endpoint)
        received = seqs(receiver)
    assert Counter(received) == Counter(range(3000))
    assert "replayed 0 requests" in again.stdout


def test_replay_interrupted_by_ctrl_c_goes_on_where_it_stopped(tmp_path: Path) -> None:
    env = publisher_env(
        "http://127.0.0.1:9",
        OTEL_LIVEVIEW_OFFLINE="true",
        OTEL_LIVEVIEW_SPOOL_DIR=str(tmp_path),
        OTEL_BLRP_MAX_QUEUE_SIZE="100000",
    )
    # About 4 MB: replay sends consecutive records in requests of up to 1 MiB, so several requests.
    run_python(PUBLISH.replace("sys.argv[1]", "'50000'").replace("sys.argv[2]", "'1e9'"), env)
    with serving_http() as receiver:
        receiver.delay = 0.5  # a slow collector: the replay is still under way when Ctrl-C comes
        command = [sys.executable, "-m", "otel_liveview.cli", "replay", str(tmp_path), "--jobs", "1"]
        command += ["--endpoint", receiver.endpoint]
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=publisher_env(receiver.endpoint),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: len(receiver.logs) >= 2, 30, what="a few requests replayed")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 130, err
        assert "interrupted" in err
        first = len(seqs(receiver))
        assert 0 < first < 50000
        receiver.delay = 0.0
        done = replay(tmp_path, receiver.endpoint)
        assert done.returncode == 0, done.stderr
        received = seqs(receiver)
    assert Counter(received) == Counter(range(50000)), (
        "the request on the wire at Ctrl-C was kept, and not sent again"
    )


def test_the_terminal_view_shows_a_spooled_run_and_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    env = publisher_env(
        "http://127.0.0.1:9", OTEL_LIVEVIEW_OFFLINE="true", OTEL_LIVEVIEW_SPOOL_DIR=str(tmp_path)
    )
    script = """
from otel_liveview import LiveViewExperiment
with LiveViewExperiment(name="offline-mnist", totals={"train": {"steps": 100}}) as run:
    for step in range(100):
        run.broadcaster.publish_metric_sync("accuracy", step / 100, step=step, phase="train")
    run.broadcaster.publish_log_sync("warning", "a spooled warning")
"""
    run_python(script, env)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    command = [sys.executable, "-m", "otel_liveview.cli", "view", "--replay", str(tmp_path)]
    command += ["--grpc", "off", "--http", "off", "--plain", "--refresh", "0.2"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    frame: list[str] = []
    deadline = time.monotonic() + 30
    for line in process.stdout:  # frames keep coming: each line is a poll
        frame.append(line)
        if "a spooled warning" in line or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    text = "".join(frame)
    assert "offline-mnist" in text and "completed" in text and "train 99/100" in text
    assert "accuracy" in text and "0.99" in text
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_over_gRPC_an_outage_spooled_and_replayed_arrives_once(
    tmp_path: Path, grpc_receiver: Receiver
) -> None:
    grpc_receiver.status = 503  # UNAVAILABLE: the publisher spools everything
    env = publisher_env(grpc_receiver.endpoint, protocol="grpc", OTEL_LIVEVIEW_SPOOL_DIR=str(tmp_path))
    process = publish(PUBLISH, env, "2000", "1e9")
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert json.loads(out.splitlines()[-1])["dropped"] == {}
    assert not seqs(grpc_receiver)
    grpc_receiver.status = 200
    result = replay(tmp_path, grpc_receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    assert result.returncode == 0, result.stderr
    assert Counter(seqs(grpc_receiver)) == Counter(range(2000))


def test_an_exhausted_budget_counts_every_record_it_refuses(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    env = publisher_env(
        dead,
        OTEL_LIVEVIEW_SPOOL_DIR=str(tmp_path),
        OTEL_LIVEVIEW_SPOOL_MAX_BYTES="100000",  # about 1,500 of these logs
        OTEL_LIVEVIEW_METRIC_EVENTS="false",
        OTEL_METRICS_EXPORTER="none",
    )
    process = publish(PUBLISH, env, "10000", "1e9")
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    dropped = json.loads(out.splitlines()[-1])["dropped"]
    assert set(dropped) == {"log/spool_full"}
    assert sum(path.stat().st_size for path in tmp_path.glob("*.seg")) <= 100_000
    with serving_http() as receiver:
        assert replay(tmp_path, receiver.endpoint).returncode == 0
        received = seqs(receiver)
    print(
        f"\n10,000 published, {len(received)} spooled and replayed, {dropped['log/spool_full']} counted spool_full"
    )
    assert len(received) + dropped["log/spool_full"] == 10_000
    assert received == list(range(len(received))), "the oldest kept, the newest refused"
