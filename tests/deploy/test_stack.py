"""scripts/stack: docker-compose.yml run without Docker, on the ports compose publishes.

`scripts/stack up` brings up what this machine has binaries for (the Collector, Prometheus 3.14 and
Alertmanager 0.34 from .ci/build-servers, and the demo; Loki and Grafana only when a binary is given)
with the shipped configuration files, and these tests check it as a user would: `status`, Prometheus'
loaded configuration and rules, the demo's metrics arriving through the Collector, Prometheus' view of
Alertmanager, a clean Collector log, and `down` leaving no process and no port behind. Run as root, the
servers run as their images' users; as another user (where bwrap may make user namespaces), as that
user – tests/deploy/test_stack_unprivileged.py runs a service so.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.stacklib import processes, sandbox
from scripts.stacklib.compose import StackError
from tests.support import ROOT, unavailable
from tests.support.servers import query, server_binary, wait_for_series

pytestmark = pytest.mark.servers

STACK = ROOT / "scripts" / "stack"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
PROMETHEUS = "http://127.0.0.1:9090"
# Every port compose publishes, plus the Collector's unpublished ones (health_check, its own metrics).
PORTS = sorted(
    {
        int(str(port).split(":")[-2])
        for service in COMPOSE["services"].values()
        for port in service.get("ports", [])
    }
    | {13133, 8888}
)
# Paths the images have that the host need not: the sandboxes hold them, the host must not get them.
IMAGE_PATHS = (
    "/etc/prometheus",
    "/etc/alertmanager",
    "/etc/otelcol-contrib",
    "/usr/bin/prometheus",
    "/usr/bin/alertmanager",
    "/otelcol-contrib",
    "/prometheus",
    "/alertmanager",
)
UP_TIMEOUT = 180.0  # Alertmanager, then Prometheus: each healthy at its first probe, 10 s after start
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


def run_stack(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STACK), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def status(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    result = run_stack("status", "--json", env=env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return {row["service"]: row for row in json.loads(result.stdout)}


def session_processes(leader: int) -> list[int]:
    """Live processes whose session is `leader`'s (every service runs in a session of its own)."""
    return processes.session_members(leader)


def can_run_stack() -> None:
    """scripts/stack's own check of this machine: a bwrap with overlays, and root or user namespaces."""
    try:
        sandbox.check(sandbox.find_bwrap())
    except StackError as error:
        unavailable(f"scripts/stack cannot run here: {error}")


class Stack:
    def __init__(self, env: dict[str, str], state: Path, up: subprocess.CompletedProcess[str]) -> None:
        self.env, self.state, self.up = env, state, up
        self.host_paths: dict[str, bool] = {}
        self.down: subprocess.CompletedProcess[str] | None = None

    @property
    def without(self) -> set[str]:
        """Services `up` could not run here (no binary given for Loki / Grafana)."""
        return {name for name, row in status(self.env).items() if row["state"] == "unavailable"}

    def log(self, service: str) -> str:
        return (self.state / "logs" / f"{service}.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    for name in ("otelcol", "prometheus-3.14", "alertmanager-0.34"):
        server_binary(name)  # fails under CI, skips otherwise, when a build is missing
    can_run_stack()
    taken = {port: owners for port in PORTS if (owners := processes.listeners(port))}
    if taken:
        pytest.fail(
            "the stack's ports are fixed (compose publishes them) and these are taken: "
            + "; ".join(f"{port} by {', '.join(owners)}" for port, owners in taken.items())
            + ". Stop what holds them (a running `scripts/stack up`: `scripts/stack down`) and run again.",
            pytrace=False,
        )
    state = tmp_path_factory.mktemp("stack")
    env = {**os.environ, "LIVEVIEW_STACK_DIR": str(state)}
    try:
        host_paths = {path: Path(path).exists() for path in IMAGE_PATHS}
        up = run_stack("up", "--timeout", f"{UP_TIMEOUT:g}", env=env, timeout=UP_TIMEOUT + 60)
        stack = Stack(env, state, up)
        stack.host_paths = host_paths
        assert up.returncode == 0, f"scripts/stack up failed:\n{up.stdout}{up.stderr}" + "".join(
            f"\n--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            for log in sorted((state / "logs").glob("*.log"))
        )
        yield stack
    finally:
        result = run_stack("down", env=env, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr


def test_up_runs_what_it_can_and_says_what_it_cannot(stack: Stack) -> None:
    out = stack.up.stdout
    for service in ("alertmanager", "prometheus", "otel-collector", "demo"):
        assert f"stack: {service}: started (pid " in out, out
    assert "stack: alertmanager: healthy after" in out and "stack: prometheus: healthy after" in out, out
    # Started in depends_on order: Prometheus waits for a healthy Alertmanager, the Collector for Prometheus.
    assert out.index("alertmanager: healthy") < out.index("prometheus: started (pid"), out
    assert out.index("prometheus: healthy") < out.index("otel-collector: started (pid"), out
    assert out.index("otel-collector: started (pid") < out.index("demo: started (pid"), out
    # No healthcheck in compose: the Collector is running once its health_check extension answers.
    assert (
        "stack: otel-collector: running (no healthcheck in compose; http://127.0.0.1:13133/ answers)" in out
    )
    for missing in stack.without:
        assert f"stack: {missing}: unavailable – " in out, out
    if "loki" in stack.without:
        assert "notice: otel-collector depends_on loki (service_healthy): waived" in out, out
        assert "notice: grafana" not in out, out  # Grafana itself is not run without a binary


def test_status_reports_every_service(stack: Stack) -> None:
    rows = status(stack.env)
    assert set(rows) == set(COMPOSE["services"])
    expected = {
        "alertmanager": "healthy",
        "prometheus": "healthy",
        "otel-collector": "running",
        "demo": "running",
    }
    for service, state in expected.items():
        assert rows[service]["state"] == state, rows[service]
        assert isinstance(rows[service]["pid"], int) and Path(f"/proc/{rows[service]['pid']}").exists()
    assert rows["prometheus"]["ports"] == ["127.0.0.1:9090"]
    assert rows["otel-collector"]["ports"] == ["127.0.0.1:4317", "127.0.0.1:4318"]
    for service in stack.without:
        assert rows[service]["state"] == "unavailable" and "LIVEVIEW_STACK_" in rows[service]["detail"]
    text = run_stack("status", env=stack.env, timeout=60)
    assert text.returncode == 0 and "prometheus" in text.stdout and "healthy" in text.stdout, text.stdout


def service_process(row: dict[str, Any]) -> int:
    """The server's own process: the one in the sandbox, under bwrap (the session's leader)."""
    members = [pid for pid in session_processes(row["pid"]) if pid != row["pid"]]
    assert len(members) == 1, (row, members)
    return members[0]


def test_each_server_runs_in_a_sandbox_of_its_own(stack: Stack) -> None:
    rows = status(stack.env)
    users = {"prometheus": 65534, "alertmanager": 65534, "otel-collector": 10001}  # the images' USERs
    for service, image_user in users.items():
        pid = service_process(rows[service])
        uid = next(
            line.split()[1]
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("Uid:")
        )
        assert int(uid) == (image_user if os.geteuid() == 0 else os.geteuid()), (service, uid)
        assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"), service
        root = Path(f"/proc/{pid}/root")
        hosts = (root / "etc" / "hosts").read_text()
        assert all(name in hosts.split() for name in COMPOSE["services"]), hosts
        assert not (root / "etc").stat().st_mode & 0o002
    prometheus = Path(f"/proc/{service_process(rows['prometheus'])}/root")
    # At the image's paths, bound as they are on the host (same file): the binary, compose's mounts.
    for inside, outside in (
        ("bin/prometheus", server_binary("prometheus-3.14")),
        ("etc/prometheus/prometheus.yml", ROOT / "deploy" / "prometheus" / "prometheus.yml"),
    ):
        assert (prometheus / inside).stat().st_ino == outside.stat().st_ino, inside
    # Nothing the sandboxes hold at those paths was made on the host.
    assert {path: Path(path).exists() for path in IMAGE_PATHS} == stack.host_paths


def _contains(loaded: Any, shipped: Any, where: str = "") -> list[str]:
    """Where `shipped` (a parsed YAML file) is not part of `loaded` (the same with defaults filled in)."""
    if isinstance(shipped, dict):
        if not isinstance(loaded, dict):
            return [f"{where}: {loaded!r} is not a mapping"]
        return [
            d for key, value in shipped.items() for d in _contains(loaded.get(key), value, f"{where}.{key}")
        ]
    if isinstance(shipped, list):
        if not isinstance(loaded, list) or len(loaded) != len(shipped):
            return [f"{where}: {loaded!r} != {shipped!r}"]
        return [
            d
            for i, (a, b) in enumerate(zip(loaded, shipped, strict=True))
            for d in _contains(a, b, f"{where}[{i}]")
        ]
    return [] if loaded == shipped else [f"{where}: loaded {loaded!r}, shipped {shipped!r}"]


def _get(path: str) -> Any:
    with _http.open(PROMETHEUS + path, timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]


def test_prometheus_runs_the_shipped_configuration_and_rules(stack: Stack) -> None:
    loaded = yaml.safe_load(_get("/api/v1/status/config")["yaml"])
    shipped = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert not _contains(loaded, shipped), _contains(loaded, shipped)
    flags = _get("/api/v1/status/flags")
    assert (
        flags["config.file"] == "/etc/prometheus/prometheus.yml"
        and flags["storage.tsdb.path"] == "/prometheus"
    )
    assert flags["web.enable-remote-write-receiver"] == "true" and flags["web.enable-lifecycle"] == "true"

    shipped_rules = {}
    for path in sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            shipped_rules[group["name"]] = (f"/etc/prometheus/rules/{path.name}", group["rules"])
    groups = {group["name"]: group for group in _get("/api/v1/rules")["groups"]}
    assert set(groups) == set(shipped_rules)
    for name, (file, rules) in shipped_rules.items():
        assert groups[name]["file"] == file
        loaded_rules = groups[name]["rules"]
        assert [rule["name"] for rule in loaded_rules] == [rule["alert"] for rule in rules]
        for loaded_rule, rule in zip(loaded_rules, rules, strict=True):
            assert (
                loaded_rule["labels"] == rule["labels"] and loaded_rule["annotations"] == rule["annotations"]
            )
            assert loaded_rule["health"] != "err", loaded_rule


def test_demo_metrics_arrive_in_prometheus_through_the_collector(stack: Stack) -> None:
    series = wait_for_series(PROMETHEUS, 'liveview_metric{job="liveview-demo"}', timeout=90, interval=0.5)
    assert {"loss", "accuracy"} <= {s["metric"]["metric"] for s in series}, series
    # Both of the demo's processes (the training loop and its evaluation worker) publish.
    wait_for_series(
        PROMETHEUS,
        'count(count by (instance) (liveview_published_total{job="liveview-demo"})) >= 2',
        timeout=90,
        interval=0.5,
    )
    running = query(PROMETHEUS, 'liveview_experiment_status{job="liveview-demo",status="running"} == 1')
    assert [s["metric"]["experiment"] for s in running] == ["demo-mnist"], running  # the sweep fails early


def test_prometheus_sees_alertmanager(stack: Stack) -> None:
    deadline = time.monotonic() + 60
    while True:
        active = [am["url"] for am in _get("/api/v1/alertmanagers")["activeAlertmanagers"]]
        if active or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert active == ["http://alertmanager:9093/api/v2/alerts"]  # the compose service name, resolved
    wait_for_series(
        PROMETHEUS, "prometheus_notifications_alertmanagers_discovered == 1", timeout=60, interval=0.5
    )


def test_collector_log_has_no_warnings_or_errors(stack: Stack) -> None:
    wait_for_series(PROMETHEUS, 'liveview_metric{job="liveview-demo"}', timeout=90, interval=0.5)
    lines = stack.log("otel-collector").splitlines()
    assert any("Everything is ready" in line for line in lines), lines[-20:]
    levels = ("warn", "error", "dpanic", "panic", "fatal")
    bad = [line for line in lines if line.split("\t")[1:2] and line.split("\t")[1] in levels]
    if "loki" in stack.without:  # its log exporter has nowhere to send; that is all it may report
        bad = [line for line in bad if '"otelcol.component.id": "otlp_http/loki"' not in line]
    assert not bad, "\n".join(bad)


def test_down_stops_everything_and_frees_the_ports(stack: Stack) -> None:
    rows = status(stack.env)
    pids = [row["pid"] for row in rows.values() if row["pid"]]
    assert len(pids) >= 4
    result = run_stack("down", env=stack.env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for service in ("demo", "otel-collector", "prometheus", "alertmanager"):
        assert f"stack: {service}: stopped (pid" in result.stdout, result.stdout
    assert result.stdout.index("demo: stopped") < result.stdout.index("alertmanager: stopped")
    left = {pid: session_processes(pid) for pid in pids if session_processes(pid)}
    assert not left, f"processes left behind: {left}"
    taken = {port: owners for port in PORTS if (owners := processes.listeners(port))}
    assert not taken, f"ports still held after down: {taken}"
    assert {row["state"] for row in status(stack.env).values()} <= {"stopped", "unavailable"}
    assert not list((stack.state / "run").glob("*.json")), "pid files left behind"
