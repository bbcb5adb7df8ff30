"""Pull mode (otel_liveview/_internal/pull.py) in-process: the snapshot a process writes, the collector
that serves every fresh snapshot of the folder, and the endpoint that writes and serves on a free
port. prometheus_client's own exposition reads the collector; no Prometheus server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from otel_liveview._internal import pull
from otel_liveview._internal.tables import TABLES
from tests.support import free_port

METRIC_KEY = (("metric", "loss"), ("phase", "train"), ("topic", "pull:test"))
STATUS_KEY = (("experiment", "e1"), ("status", "running"), ("topic", "pull:test"))


@pytest.fixture
def tables() -> Iterator[None]:
    """TABLES with one metric, one status and one published count, and nothing else."""
    TABLES.clear()
    TABLES.metric.set(METRIC_KEY, 0.25)
    TABLES.status.set(STATUS_KEY, 1.0)
    for _ in range(3):
        TABLES.published_counter("metric").add()
    yield
    TABLES.clear()


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {predicate}")
        time.sleep(0.01)


def exposition(folder: Path, max_age: float = 60.0) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(pull.SnapshotCollector(folder, max_age))
    return generate_latest(registry).decode()


def write(folder: Path, name: str, data: dict[str, Any]) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def minimal(job: str, instance: str, **changes: Any) -> dict[str, Any]:
    data = {
        "pid": os.getpid(),
        "job": job,
        "instance": instance,
        "identity": {},
        "time": time.time(),
        "gauges": {"liveview_metric": [[{"metric": "m"}, 2.0]]},
        "counters": {},
    }
    data.update(changes)
    return data


def dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    return int(child.stdout)


# -- the folder and the job -------------------------------------------------------------------------------


def test_the_folder_is_the_variable_s_or_one_per_port_in_the_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = tmp_path / "a" / "b"
    monkeypatch.setenv("OTEL_LIVEVIEW_PROMETHEUS_DIR", str(chosen))
    assert pull.snapshot_dir(9464) == chosen and chosen.is_dir()
    monkeypatch.setenv("OTEL_LIVEVIEW_PROMETHEUS_DIR", "")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert pull.snapshot_dir(9464) == tmp_path / "otel-liveview-9464"
    assert (tmp_path / "otel-liveview-9464").is_dir()
    assert pull.snapshot_dir(9464) == tmp_path / "otel-liveview-9464"  # already there: fine


def test_the_job_is_namespace_slash_name_as_on_the_push_path() -> None:
    def job(**attributes: str) -> str:
        return pull.job_of(SimpleNamespace(attributes=attributes))

    assert job(**{"service.name": "trainer", "service.namespace": "lab"}) == "lab/trainer"
    assert job(**{"service.name": "trainer", "service.namespace": ""}) == "trainer"
    assert job(**{"service.name": "trainer"}) == "trainer"
    assert job() == ""


# -- the snapshot --------------------------------------------------------------------------------------------


def test_a_snapshot_is_the_tables_in_prometheus_names(tables: None) -> None:
    before = time.time()
    data = pull.snapshot("lab/trainer", "inst-1", {"liveview.rank": "3", "liveview.run.id": "r7"})
    assert before <= data["time"] <= time.time()
    assert data["pid"] == os.getpid()
    assert (data["job"], data["instance"]) == ("lab/trainer", "inst-1")
    assert data["identity"] == {"liveview_rank": "3", "liveview_run_id": "r7"}
    assert set(data["gauges"]) == {name.replace(".", "_") for name in TABLES.gauges()}
    assert data["gauges"]["liveview_metric"] == [[dict(METRIC_KEY), 0.25]]
    assert data["gauges"]["liveview_experiment_status"] == [[dict(STATUS_KEY), 1.0]]
    assert data["gauges"]["liveview_metric_step"] == []
    assert set(data["counters"]) == {"liveview_published", "liveview_dropped"}
    counts = {json.dumps(labels): value for labels, value in data["counters"]["liveview_published"]}
    assert counts['{"kind": "metric"}'] == 3
    assert not any(value for _, value in data["counters"]["liveview_dropped"])
    json.dumps(data)  # what write() stores
    assert pull.snapshot("j", "i")["identity"] == {}


def test_help_is_each_instrument_s_description() -> None:
    assert pull.HELP["liveview_metric"] == TABLES.description("liveview.metric")
    assert pull.HELP["liveview_launch_step"] == TABLES.description("liveview.launch.step")
    assert pull.HELP["liveview_published"] == TABLES.counters()["liveview.published"][0]
    assert pull.HELP["liveview_dropped"] == TABLES.counters()["liveview.dropped"][0]
    assert len(pull.HELP) == len(TABLES.gauges()) + len(TABLES.counters())


# -- the collector -------------------------------------------------------------------------------------------


def test_every_snapshot_s_series_are_served_with_job_instance_and_identity(
    tables: None, tmp_path: Path
) -> None:
    write(tmp_path, "one", pull.snapshot("lab/trainer", "one", {"liveview.rank": "0"}))
    text = exposition(tmp_path)
    help_metric = TABLES.description("liveview.metric")
    assert f"# HELP liveview_metric {help_metric}\n# TYPE liveview_metric gauge\n" in text
    assert (
        'liveview_metric{instance="one",job="lab/trainer",liveview_rank="0",metric="loss",'
        'phase="train",topic="pull:test"} 0.25\n'
    ) in text
    assert "# TYPE liveview_published_total counter\n" in text
    assert (
        'liveview_published_total{instance="one",job="lab/trainer",kind="metric",liveview_rank="0"} 3.0\n'
        in (text)
    )
    help_dropped = TABLES.counters()["liveview.dropped"][0]
    assert f"# HELP liveview_dropped_total {help_dropped}\n# TYPE liveview_dropped_total counter\n" in text
    assert "liveview_metric_step{" not in text  # an empty table: no samples


def test_the_snapshots_of_several_processes_make_one_family_per_name(tmp_path: Path) -> None:
    write(tmp_path, "a", minimal("job", "a"))
    write(tmp_path, "b", minimal("job", "b", gauges={"liveview_metric": [[{"metric": "m"}, 3.0]]}))
    families = {family.name: family for family in pull.SnapshotCollector(tmp_path, 60).collect()}
    assert list(families) == ["liveview_metric"]
    family = families["liveview_metric"]
    assert (family.type, family.documentation) == ("gauge", TABLES.description("liveview.metric"))
    samples = sorted((s.name, s.labels["instance"], s.value) for s in family.samples)
    assert samples == [("liveview_metric", "a", 2.0), ("liveview_metric", "b", 3.0)]


def test_a_series_label_job_or_instance_is_the_process_s_not_the_point_s(tmp_path: Path) -> None:
    data = minimal(
        "the-job",
        "the-instance",
        identity={"liveview_rank": "1"},
        gauges={"custom_name": [[{"job": "mine", "instance": "x", "liveview_rank": "9", "k": "v"}, 1.0]]},
        counters={"custom_count": [[{"kind": "log"}, 4]]},
    )
    write(tmp_path, "p", data)
    families = {family.name: family for family in pull.SnapshotCollector(tmp_path, 60).collect()}
    (gauge,) = families["custom_name"].samples
    assert gauge.labels == {"job": "the-job", "instance": "the-instance", "liveview_rank": "1", "k": "v"}
    assert families["custom_name"].documentation == "custom_name"  # no description known: its name
    (counter,) = families["custom_count"].samples
    assert (counter.name, counter.value, families["custom_count"].type) == (
        "custom_count_total",
        4,
        "counter",
    )


def test_stale_snapshots_and_those_of_exited_processes_are_dropped_and_deleted(tmp_path: Path) -> None:
    fresh = write(tmp_path, "fresh", minimal("j", "fresh", time=time.time() - 50))
    old = write(tmp_path, "old", minimal("j", "old", time=time.time() - 70))
    gone = write(tmp_path, "gone", minimal("j", "gone", pid=dead_pid()))
    assert [data["instance"] for data in pull.SnapshotCollector(tmp_path, 60).snapshots()] == ["fresh"]
    assert fresh.exists() and not old.exists() and not gone.exists()


def test_a_snapshot_being_replaced_or_unreadable_is_skipped_and_left(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"pid": ')
    (tmp_path / "other.tmp").write_text("not json")  # a write in progress: not a snapshot
    write(tmp_path, "good", minimal("j", "good"))
    assert [data["instance"] for data in pull.SnapshotCollector(tmp_path, 60).snapshots()] == ["good"]
    assert broken.exists()
    assert "liveview_metric" in exposition(tmp_path)


def test_a_process_that_cannot_be_signalled_is_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pull._alive(os.getpid())
    assert not pull._alive(dead_pid())

    def refuse(pid: int, signal: int) -> None:
        raise PermissionError(pid)

    monkeypatch.setattr(os, "kill", refuse)
    assert pull._alive(1)


# -- the endpoint ----------------------------------------------------------------------------------------------


@dataclass
class PullSettings:
    prometheus_port: int
    prometheus_addr: str = "127.0.0.1"
    metric_export_interval: float = 0.05


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())
    except (urllib.error.URLError, ConnectionError):
        return None


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OTEL_LIVEVIEW_PROMETHEUS_DIR", str(tmp_path))
    return tmp_path


def test_the_endpoint_writes_its_snapshot_and_serves_it_until_closed(tables: None, folder: Path) -> None:
    port = free_port()
    resource = SimpleNamespace(attributes={"service.name": "trainer", "service.namespace": "lab"})
    endpoint = pull.start(PullSettings(port), resource, "inst-1", {"liveview.node": "n1"})
    try:
        assert (endpoint.port, endpoint.addr, endpoint.interval) == (port, "127.0.0.1", 0.05)
        assert endpoint.folder == folder and endpoint.path == folder / "inst-1.json"
        text = wait_for(lambda: scrape(port))
        assert (
            'liveview_metric{instance="inst-1",job="lab/trainer",liveview_node="n1",metric="loss",'
            'phase="train",topic="pull:test"} 0.25'
        ) in text
        assert json.loads(endpoint.path.read_text())["job"] == "lab/trainer"
        TABLES.metric.set(METRIC_KEY, 0.5)  # the next interval's snapshot has it
        wait_for(lambda: 'topic="pull:test"} 0.5' in (scrape(port) or ""))
        assert not list(folder.glob("*.tmp"))
    finally:
        endpoint.close()
    assert not endpoint.path.exists()
    assert not endpoint._thread.is_alive()
    assert scrape(port) is None


def test_snapshots_older_than_three_intervals_and_at_least_three_seconds_are_not_served(
    tables: None, folder: Path
) -> None:
    port = free_port()
    write(folder, "recent", minimal("j", "recent", time=time.time() - 2.5))
    write(folder, "stale", minimal("j", "stale", time=time.time() - 3.5))
    endpoint = pull.PullEndpoint(PullSettings(port), port, "j", "self", {})
    try:
        text = wait_for(lambda: scrape(port))
    finally:
        endpoint.close()
    assert 'instance="recent"' in text and 'instance="self"' in text
    assert 'instance="stale"' not in text


def test_a_second_process_serves_once_the_first_is_gone(tables: None, folder: Path) -> None:
    port = free_port()
    first = pull.PullEndpoint(PullSettings(port), port, "j", "first", {})
    try:
        wait_for(lambda: first.server)
        second = pull.PullEndpoint(PullSettings(port), port, "j", "second", {})
        try:
            wait_for(lambda: second.path.exists())
            text = wait_for(lambda: 'instance="second"' in (scrape(port) or "") and scrape(port))
            assert 'instance="first"' in text
            assert second.server is None  # the port is taken: it only writes
            first.close()
            wait_for(lambda: second.server)
            text = wait_for(lambda: scrape(port))
            assert 'instance="second"' in text and 'instance="first"' not in text
        finally:
            second.close()
    finally:
        first.close()


def test_after_fork_the_inherited_socket_is_closed(tables: None, folder: Path) -> None:
    port = free_port()
    endpoint = pull.PullEndpoint(PullSettings(port), port, "j", "self", {})
    server = wait_for(lambda: endpoint.server)
    endpoint._stop.set()  # as in a child, where the parent's thread does not run
    endpoint._thread.join(5)
    try:
        endpoint.release_after_fork()
        assert endpoint.server is None
        assert server.socket.fileno() == -1
        endpoint.release_after_fork()  # nothing left to close
    finally:
        server.shutdown()
        server.server_close()
        endpoint.close()
    assert not endpoint.path.exists()


def test_a_snapshot_without_an_identity_is_served(tmp_path: Path) -> None:
    data = minimal("j", "old-release")
    del data["identity"]
    write(tmp_path, "old", data)
    for index in range(5):
        write(tmp_path, f"other{index}", minimal("j", f"other{index}"))
    (tmp_path / "broken.json").write_text("{")
    instances = {
        sample.labels["instance"]
        for family in pull.SnapshotCollector(tmp_path, 60).collect()
        for sample in family.samples
    }
    assert instances == {"old-release", *(f"other{index}" for index in range(5))}


def test_checking_a_process_sends_it_no_signal() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert pull._alive(child.pid)
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_the_endpoint_s_folder_thread_address_and_log_line(
    tables: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("OTEL_LIVEVIEW_PROMETHEUS_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    caplog.set_level("INFO", logger="otel_liveview")
    port = free_port()
    endpoint = pull.PullEndpoint(PullSettings(port), port, "j", "self", {})
    try:
        assert endpoint.folder == tmp_path / f"otel-liveview-{port}"
        assert endpoint._thread.name == "otel-liveview-pull" and endpoint._thread.daemon
        server = wait_for(lambda: endpoint.server)
        assert server.server_address[0] == "127.0.0.1"
        assert f"otel-liveview serves /metrics on 127.0.0.1:{port}" in [
            r.getMessage() for r in caplog.records
        ]
    finally:
        endpoint.close()


def test_a_long_interval_keeps_snapshots_for_three_of_them(tables: None, folder: Path) -> None:
    port = free_port()
    write(folder, "recent", minimal("j", "recent", time=time.time() - 5))
    write(folder, "stale", minimal("j", "stale", time=time.time() - 7))
    endpoint = pull.PullEndpoint(PullSettings(port, metric_export_interval=2.0), port, "j", "self", {})
    try:
        text = wait_for(lambda: scrape(port))
    finally:
        endpoint.close()
    assert 'instance="recent"' in text and 'instance="stale"' not in text
