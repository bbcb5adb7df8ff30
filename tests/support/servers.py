"""Real Prometheus, vmagent, Alertmanager and OpenTelemetry Collector for the test suite.

Binaries come from `.ci/fetch-servers` (Debian's builds, unpacked into LIVEVIEW_SERVERS_DIR, default
~/.cache/otel-liveview/servers) and `.ci/build-servers` (the Collector, Prometheus and Alertmanager
versions docker-compose.yml pins, built from their Go modules into LIVEVIEW_SERVERS_DIR/build). Every
server runs on free loopback ports with its own data folder, is waited for with a deadline and
stopped afterwards; a failing test gets the tail of the logs of the servers it used. A missing binary
fails the test when CI is set and skips it otherwise. The pinned servers (the Collector, Prometheus 3
and Alertmanager) are found, given their command lines (docker-compose.yml's, with the test's files and
ports) and waited for as scripts/stack does it: scripts/stacklib/servers.py.

The session-wide push path (`push_stack`) stands in for the real stack's OTLP receiver (Debian builds
Prometheus without one): library -> OTLP/HTTP -> vmagent -> remote write -> Prometheus. vmagent is
relabelled so the series carry the labels Prometheus' own OTLP receiver gives them (see
VMAGENT_RELABEL). `collector_factory` runs the real Collector with the shipped configuration.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from scripts.stacklib.servers import ALERTMANAGER, COLLECTOR, PROMETHEUS, command, servers_dir, wait_ready
from tests.support import ROOT, free_port, unavailable
from tests.support.receiver import serving_http

__all__ = [
    "PROMETHEUS_3_FLAGS",
    "VMAGENT_RELABEL",
    "Collector",
    "PushStack",
    "Server",
    "Webhook",
    "alertmanager_factory",
    "collector_factory",
    "prometheus",
    "prometheus_factory",
    "push_stack",
    "pytest_runtest_makereport",
    "query",
    "server_binary",
    "servers_dir",
    "shipped_prometheus_config",
    "start_alertmanager",
    "start_collector",
    "start_prometheus",
    "start_shipped_prometheus_3",
    "start_vmagent",
    "vmagent",
    "vmagent_factory",
    "wait_for_series",
    "webhook_receiver",
]

# Where .ci/fetch-servers unpacks each binary (Debian's builds), and .ci/build-servers builds the
# versions docker-compose.yml pins (under build/, by the tags it pins), relative to the servers folder.
BINARIES = {
    "prometheus": "trixie/usr/bin/prometheus",
    "promtool": "trixie/usr/bin/promtool",
    "promtool3": "sid/usr/bin/promtool",
    "alertmanager": "trixie/usr/bin/prometheus-alertmanager",
    "amtool": "trixie/usr/bin/amtool",
    "vmagent": "trixie/usr/bin/vmagent",
    "docker-compose": "trixie/usr/libexec/docker/cli-plugins/docker-compose",
    "otelcol": COLLECTOR.build_path(),
    "prometheus-3.14": PROMETHEUS.build_path(),
    "promtool-3.14": PROMETHEUS.build_path("promtool"),
    "alertmanager-0.34": ALERTMANAGER.build_path(),
}
SHIPPED_COLLECTOR_CONFIG = ROOT / "deploy" / "otel-collector" / "config.yaml"
ALERTMANAGER_TEMPLATES = "trixie/usr/share/prometheus/alertmanager"
READY_TIMEOUT = 30.0  # seconds a server may take to answer its readiness check (slow CI machines)
LOG_TAIL_LINES = 40

# Loopback requests must never go through a proxy taken from the environment.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- locating binaries ----------------------------------------------------------------------------


def server_binary(name: str) -> Path:
    """Path of a fetched server binary; fails the test under CI, skips it otherwise, when missing."""
    if name not in BINARIES:
        raise ValueError(f"unknown server binary {name!r}; known: {', '.join(BINARIES)}")
    path = servers_dir() / BINARIES[name]
    if path.is_file() and os.access(path, os.X_OK):
        return path
    script = ".ci/build-servers" if BINARIES[name].startswith("build/") else ".ci/fetch-servers"
    message = (
        f"{name} not found at {path}; run `{script}` "
        "(and set LIVEVIEW_SERVERS_DIR if it put them into another folder)"
    )
    unavailable(message)


# -- running a server -----------------------------------------------------------------------------


_running: list[Server] = []  # stopped at interpreter exit if a teardown never ran


@dataclass
class Server:
    """One server process on 127.0.0.1:`port`, its stdout and stderr in `log_path`.

    `ports` holds the further ports of a server that listens on several (the Collector); `argv` and
    `ready_path` let a test kill it and start it again on the same ports and data (`start_again`).
    """

    name: str
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    log_path: Path
    ports: dict[str, int] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)
    ready_path: str = "/"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def servers(self) -> list[Server]:
        return [self]

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as error:
            return f"(no log: {error})"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        if self in _running:
            _running.remove(self)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush of what the server holds in memory."""
        if self in _running:
            _running.remove(self)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def start_again(self, timeout: float = READY_TIMEOUT) -> None:
        """Start the same command (same ports, same data folder) once this one has ended; its log
        goes on in the same file. Returns once `ready_path` answers 200."""
        if self.process.poll() is None:
            raise RuntimeError(f"{self.name} is still running")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        _running.append(self)
        if not _wait_ready(self, timeout):
            self.stop(timeout=5.0)
            raise RuntimeError(
                f"{self.name} not ready again after {timeout:.0f}s; log {self.log_path}:\n{self.log_tail()}"
            )


def _stop_all() -> None:
    for server in list(_running):
        server.stop(timeout=5.0)


atexit.register(_stop_all)


def _wait_ready(server: Server, timeout: float) -> bool:
    return wait_ready(server.url + server.ready_path, lambda: server.process.poll() is None, timeout)


def start_server(
    name: str,
    command: Callable[..., Sequence[str | os.PathLike[str]]],
    workdir: Path,
    ready_path: str,
    timeout: float = READY_TIMEOUT,
    *,
    extra_ports: Sequence[str] = (),
    server_class: type[Server] = Server,
) -> Server:
    """Start `command(port)` on a free port in `workdir`; return once GET `ready_path` answers 200.

    With `extra_ports` (names), the command is called as `command(port, ports)`, `ports` a dict of
    further free ports by name, kept as the server's `ports`. Ports taken between choosing and
    binding them are retried with others.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        port = free_port()
        ports = {key: free_port() for key in extra_ports}
        argv = [os.fspath(part) for part in (command(port, ports) if extra_ports else command(port))]
        log_path = workdir / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = server_class(name, process, port, workdir, log_path, ports, argv, ready_path)
        _running.append(server)
        if _wait_ready(server, timeout):
            return server
        server.stop(timeout=5.0)
        tail = server.log_tail()
        if "address already in use" in tail and attempt < 2:
            continue
        state = f"exited with {process.returncode}" if process.returncode is not None else "not ready"
        raise RuntimeError(f"{name} {state} after {timeout:.0f}s at most; log {log_path}:\n{tail}")
    raise AssertionError("unreachable")


# -- Prometheus ------------------------------------------------------------------------------------


def prometheus_config(
    rule_files: Sequence[str | os.PathLike[str]] = (),
    evaluation_interval: str = "1s",
    alertmanager_url: str | None = None,
    extra_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Prometheus configuration: out-of-order samples within the shipped window
    (deploy/prometheus/prometheus.yml's `storage`), optional rule files and Alertmanager;
    `extra_config` is merged in at the top level."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": "15s", "evaluation_interval": evaluation_interval},
        "storage": yaml.safe_load(SHIPPED_PROMETHEUS_CONFIG.read_text())["storage"],
    }
    if rule_files:
        config["rule_files"] = [os.fspath(Path(path).resolve()) for path in rule_files]
    if alertmanager_url:
        parsed = urllib.parse.urlsplit(alertmanager_url)
        target: dict[str, Any] = {
            "scheme": parsed.scheme or "http",
            "static_configs": [{"targets": [parsed.netloc]}],
        }
        if parsed.path.strip("/"):
            target["path_prefix"] = parsed.path
        config["alerting"] = {"alertmanagers": [target]}
    for key, value in (extra_config or {}).items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def start_prometheus(
    workdir: Path,
    *,
    binary: str = "prometheus",
    rule_files: Sequence[str | os.PathLike[str]] = (),
    evaluation_interval: str = "1s",
    alertmanager_url: str | None = None,
    extra_config: dict[str, Any] | None = None,
    config_text: str | None = None,
    extra_args: Sequence[str] = (),
) -> Server:
    """Prometheus with the flags docker-compose.yml gives it (its remote-write receiver on, the
    lifecycle API) but PROMETHEUS_3_FLAGS, on a free port, a fresh TSDB in `workdir`.

    `binary`: "prometheus" (Debian's 2.53) or "prometheus-3.14" (the build docker-compose.yml pins;
    pass extra_args=PROMETHEUS_3_FLAGS for its OTLP receiver). `config_text`, when given, is the
    whole configuration file instead of the one made from the other arguments.
    """
    path = server_binary(binary)
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yml"
    if config_text is None:
        config = prometheus_config(rule_files, evaluation_interval, alertmanager_url, extra_config)
        config_text = yaml.safe_dump(config, sort_keys=False)
    config_file.write_text(config_text)

    flags = [flag for flag in PROMETHEUS.flags if flag not in PROMETHEUS_3_FLAGS]

    def argv(port: int) -> list[str]:
        # Prometheus finds its Alertmanagers about 5 s after start and sends a firing alert again
        # only after --rules.alert.resend-delay (default 1m): keep alert tests short.
        return command(
            PROMETHEUS,
            path,
            flags,
            config=config_file,
            data=workdir / "data",
            listen=f"127.0.0.1:{port}",
            extra=["--rules.alert.resend-delay=1s", *extra_args],
        )

    return start_server("prometheus", argv, workdir, PROMETHEUS.ready_path)


SHIPPED_PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
SHIPPED_RULES = ROOT / "deploy" / "prometheus" / "rules"
# The flags docker-compose.yml gives Prometheus 3.14 that Debian's 2.53 does not take; start_prometheus
# gives every build compose's other flags (--web.enable-remote-write-receiver, --web.enable-lifecycle).
PROMETHEUS_3_FLAGS = ("--web.enable-otlp-receiver",)
assert set(PROMETHEUS_3_FLAGS) <= set(PROMETHEUS.flags), "docker-compose.yml no longer gives Prometheus these"


def shipped_prometheus_config(alertmanager: str) -> str:
    """deploy/prometheus/prometheus.yml with two things changed for a test: its rule_files point at
    the repository's rules instead of /etc/prometheus/rules (where compose mounts them), and its
    Alertmanager target is `alertmanager` (host:port) instead of alertmanager:9093."""
    text = SHIPPED_PROMETHEUS_CONFIG.read_text()
    replaced = text.replace("/etc/prometheus/rules/*.yml", f"{SHIPPED_RULES}/*.yml").replace(
        '"alertmanager:9093"', f'"{alertmanager}"'
    )
    if replaced.count(str(SHIPPED_RULES)) != 1 or f'"{alertmanager}"' not in replaced:
        raise AssertionError(
            "deploy/prometheus/prometheus.yml no longer names the rule path or target it did"
        )
    return replaced


def start_shipped_prometheus_3(
    workdir: Path, rule_files: Sequence[str | os.PathLike[str]] | None = None
) -> Server:
    """Prometheus 3.14 as compose runs it (the OTLP receiver, the shipped `otlp:` settings and rules,
    or `rule_files`), the rules evaluated every second rather than every 15 s so that alerts show soon."""
    otlp = yaml.safe_load(SHIPPED_PROMETHEUS_CONFIG.read_text())["otlp"]
    return start_prometheus(
        workdir,
        binary="prometheus-3.14",
        rule_files=sorted(SHIPPED_RULES.glob("*.yml")) if rule_files is None else rule_files,
        evaluation_interval="1s",
        extra_config={"otlp": otlp},
        extra_args=PROMETHEUS_3_FLAGS,
    )


@contextlib.contextmanager
def collector_into_prometheus_3(
    workdir: Path, rule_files: Sequence[str | os.PathLike[str]] | None = None
) -> Iterator[tuple[Server, Collector]]:
    """The shipped stack's metrics path: the Collector (shipped configuration; what would go to Loki
    goes to an in-suite stand-in) remote-writing into start_shipped_prometheus_3."""
    prometheus = start_shipped_prometheus_3(workdir / "prometheus", rule_files)
    try:
        with serving_http() as loki:
            collector = start_collector(
                workdir / "otelcol",
                remote_write_url=prometheus.url + "/api/v1/write",
                loki_url=loki.endpoint + "/otlp",
            )
            try:
                yield prometheus, collector
            finally:
                collector.stop()
    finally:
        prometheus.stop()


SHIPPED_ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def shipped_alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """deploy/alertmanager/alertmanager.yml with only its receivers' webhook pointed at `webhook_url`
    and its group waits shortened (0 s, 1 s) for a test."""
    config: dict[str, Any] = yaml.safe_load(SHIPPED_ALERTMANAGER.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url
    for route in [config["route"], *config["route"].get("routes", [])]:
        route["group_wait"], route["group_interval"] = "0s", "1s"
    return config


def active_alertmanagers(prometheus: Server) -> list[dict[str, Any]]:
    """The Alertmanagers a Prometheus has found (it finds them a few seconds after it starts)."""
    with _http.open(prometheus.url + "/api/v1/alertmanagers", timeout=10) as response:
        found: list[dict[str, Any]] = json.load(response)["data"]["activeAlertmanagers"]
    return found


# -- vmagent ---------------------------------------------------------------------------------------

# vmagent turns every OTLP resource attribute into a label and sets neither `job` nor `instance`.
# Prometheus' OTLP receiver (and the Collector's prometheus_remote_write exporter) set
# job = service.namespace/service.name (or service.name alone) and instance = service.instance.id,
# and keep the other resource attributes in target_info only. These rules do the same; the resource
# labels dropped are the OpenTelemetry semantic-convention namespaces plus our liveview.topic.
VMAGENT_RELABEL = """\
- action: replace
  source_labels: [service_name]
  target_label: job
- action: replace
  source_labels: [service_namespace, service_name]
  regex: "(.+);(.+)"
  target_label: job
  replacement: "$1/$2"
- action: replace
  source_labels: [service_instance_id]
  target_label: instance
- action: labeldrop
  regex: "(service|telemetry|process|host|os|deployment|container|k8s|cloud|liveview)_.+"
"""


def start_vmagent(
    workdir: Path,
    remote_write_url: str,
    *,
    flush_interval: str = "100ms",
    relabel: str | None = VMAGENT_RELABEL,
    extra_args: Sequence[str] = (),
) -> Server:
    """vmagent taking OTLP/HTTP at /opentelemetry/v1/metrics and remote-writing to `remote_write_url`."""
    binary = server_binary("vmagent")
    workdir.mkdir(parents=True, exist_ok=True)
    relabel_args = []
    if relabel is not None:
        relabel_file = workdir / "relabel.yml"
        relabel_file.write_text(relabel)
        relabel_args.append(f"-remoteWrite.relabelConfig={relabel_file}")

    def command(port: int) -> list[str | os.PathLike[str]]:
        return [
            binary,
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-remoteWrite.url={remote_write_url}",
            f"-remoteWrite.tmpDataPath={workdir / 'queue'}",
            f"-remoteWrite.flushInterval={flush_interval}",
            "-opentelemetry.usePrometheusNaming",
            "-remoteWrite.forcePromProto",  # no probe for VictoriaMetrics' own protocol
            *relabel_args,
            *extra_args,
        ]

    return start_server("vmagent", command, workdir, "/health")


@dataclass
class PushStack:
    """vmagent in front of Prometheus: OTLP metrics in at `otlp_metrics_endpoint`, PromQL at `prometheus`."""

    vmagent: Server
    prometheus: Server

    @property
    def otlp_metrics_endpoint(self) -> str:
        return self.vmagent.url + "/opentelemetry/v1/metrics"

    @property
    def servers(self) -> list[Server]:
        return [self.vmagent, self.prometheus]


# -- Alertmanager ----------------------------------------------------------------------------------

# Debian's Alertmanager reads its default templates from this folder instead of embedding them.
DEBIAN_TEMPLATE_DIR = b"/usr/share/prometheus/alertmanager"
# The same number of bytes, relative: the folder "alertmanager" in the server's working directory.
LOCAL_TEMPLATE_DIR = b"./" + b"/" * (len(DEBIAN_TEMPLATE_DIR) - len(b"./alertmanager")) + b"alertmanager"
_patched: dict[Path, Path] = {}


def alertmanager_binary(name: str = "alertmanager") -> tuple[Path, Path | None]:
    """The Alertmanager binary to run, and the folder of templates it needs next to it (or None).

    Debian's build looks for default.tmpl and email.tmpl in /usr/share/prometheus/alertmanager, a
    path compiled in with no flag or setting to change it. Rather than write into /usr/share, run a
    copy whose template folder names the same number of bytes, relative to the working directory.
    The path is a string of its own in the binary (the UI path is a separate string), so nothing
    else changes. Upstream builds embed the templates and are used as they are.
    """
    binary = server_binary(name)
    templates = servers_dir() / ALERTMANAGER_TEMPLATES
    if binary in _patched:
        return _patched[binary], templates
    content = binary.read_bytes()
    marker = DEBIAN_TEMPLATE_DIR + b"timeout"  # the template folder's string, not the UI path's
    if DEBIAN_TEMPLATE_DIR not in content:
        return binary, None
    if content.count(marker) != 1 or not (templates / "default.tmpl").is_file():
        raise RuntimeError(
            f"{binary} looks for templates in {DEBIAN_TEMPLATE_DIR.decode()}, but this build is not the "
            f"one tests/support/servers.py knows how to point elsewhere (or {templates} is missing)"
        )
    folder = Path(tempfile.mkdtemp(prefix="otel-liveview-alertmanager-"))
    atexit.register(shutil.rmtree, folder, True)
    patched = folder / "alertmanager"
    patched.write_bytes(content.replace(marker, LOCAL_TEMPLATE_DIR + b"timeout"))
    patched.chmod(0o755)
    _patched[binary] = patched
    return patched, templates


def start_alertmanager(
    workdir: Path,
    config: str | os.PathLike[str] | dict[str, Any],
    *,
    binary: str = "alertmanager",
    extra_args: Sequence[str] = (),
) -> Server:
    """Alertmanager with `config` (a file, or a dict written to one) and the flags docker-compose.yml
    gives it, loopback only, no clustering.

    `binary`: "alertmanager" (Debian's 0.28, run with its templates pointed at a local folder) or
    "alertmanager-0.34" (the upstream build docker-compose.yml pins; templates embedded)."""
    path, templates = alertmanager_binary(binary)
    workdir.mkdir(parents=True, exist_ok=True)
    if isinstance(config, dict):
        config_file = workdir / "alertmanager.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    else:
        config_file = Path(config).resolve()
    if templates is not None:
        local = workdir / "alertmanager"
        local.mkdir(exist_ok=True)
        for template in templates.glob("*.tmpl"):
            with contextlib.suppress(FileExistsError):
                (local / template.name).symlink_to(template)

    def argv(port: int) -> list[str]:
        return command(  # compose's --cluster.listen-address= (empty): no gossip port on all interfaces
            ALERTMANAGER,
            path,
            ALERTMANAGER.flags,
            config=config_file,
            data=workdir / "data",
            listen=f"127.0.0.1:{port}",
            extra=["--log.level=debug", *extra_args],  # notifications and their failures show in the log
        )

    return start_server("alertmanager", argv, workdir, ALERTMANAGER.ready_path)


# -- OpenTelemetry Collector ---------------------------------------------------------------------

# Component ids in deploy/otel-collector/config.yaml whose addresses the tests override.
COLLECTOR_REMOTE_WRITE = "prometheus_remote_write"
COLLECTOR_LOKI = "otlp_http/loki"


@dataclass(eq=False)
class Collector(Server):
    """The Collector: health_check on `port`; OTLP gRPC, OTLP/HTTP and its own metrics on `ports`."""

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['grpc']}"

    @property
    def otlp_http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    def log_lines(self, levels: Sequence[str] = ("warn", "error", "dpanic", "panic", "fatal")) -> list[str]:
        """The log lines at one of `levels` (the Collector logs `time<TAB>level<TAB>...`)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.split("\t")[1:2] and line.split("\t")[1] in levels]

    def telemetry(self, name: str, **labels: str) -> float:
        """Sum of the Collector's own metric `name` (as it serves it, e.g.
        "otelcol_exporter_sent_log_records_total") over the series matching `labels`; 0 if none."""
        with _http.open(f"http://127.0.0.1:{self.ports['telemetry']}/metrics", timeout=5) as response:
            text = response.read().decode()
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total


# The shipped config's loopback leg of the metrics path (its disk queue sends to the Collector itself).
COLLECTOR_QUEUE_RECEIVER = "otlp/queue"
COLLECTOR_QUEUE_EXPORTER = "otlp_http/queue"


def _collector_storage_flags(config: Path, storage: Path) -> list[str]:
    """--set flags that move the folders `config` keeps on disk (the file_storage extension's) under
    `storage`: the same folder for a Collector started again on the same workdir
    (Server.start_again), as compose's volume is for a restarted container."""
    tree = yaml.safe_load(config.read_text()) or {}
    flags = []
    for name, settings in (tree.get("extensions") or {}).items():
        if name.split("/")[0] == "file_storage":
            folder = storage / name.replace("/", "_")
            flags.append(f"--set=extensions::{name}::directory={folder}")
            if (settings or {}).get("compaction"):
                flags.append(f"--set=extensions::{name}::compaction::directory={folder}")
    return flags


def _collector_queue_flags(config: Path, port: int) -> list[str]:
    """--set flags that move the loopback leg of the metrics path (receiver otlp/queue, fixed at
    127.0.0.1:4319 in the shipped config, and the exporter that sends to it) to `port`."""
    tree = yaml.safe_load(config.read_text()) or {}
    if COLLECTOR_QUEUE_RECEIVER not in (tree.get("receivers") or {}):
        return []
    return [
        f"--set=receivers::{COLLECTOR_QUEUE_RECEIVER}::protocols::http::endpoint=127.0.0.1:{port}",
        f"--set=exporters::{COLLECTOR_QUEUE_EXPORTER}::endpoint=http://127.0.0.1:{port}",
    ]


def start_collector(
    workdir: Path,
    *,
    remote_write_url: str,
    loki_url: str,
    config: str | os.PathLike[str] = SHIPPED_COLLECTOR_CONFIG,
    binary: str = "otelcol",
    extra_args: Sequence[str] = (),
) -> Collector:
    """The Collector built from deploy/otel-collector/builder.yaml, running `config` (the shipped file,
    unmodified) with only its addresses overridden by its own --set flags: the OTLP receiver's gRPC and
    HTTP endpoints, the health_check extension, the remote-write URL (`remote_write_url`, e.g. a test
    Prometheus' /api/v1/write), the Loki exporter's endpoint (`loki_url`: Loki's is http://loki:3100/otlp;
    tests point it at an in-suite OTLP receiver standing in for Loki, which no test here runs), the
    Collector's own metrics (fixed at localhost:8888 otherwise), and the folders it keeps its queues in
    (under `workdir`/storage instead of /var/lib/otelcol). Ready when health_check answers 200."""
    path = server_binary(binary)
    config_file = Path(config).resolve()
    storage = _collector_storage_flags(config_file, workdir / "storage")

    def argv(port: int, ports: dict[str, int]) -> list[str]:
        telemetry = (
            f"[{{pull: {{exporter: {{prometheus: {{host: 127.0.0.1, port: {ports['telemetry']}}}}}}}}}]"
        )
        return command(
            COLLECTOR,
            path,
            COLLECTOR.flags,
            config=config_file,
            extra=[
                f"--set=receivers::otlp::protocols::grpc::endpoint=127.0.0.1:{ports['grpc']}",
                f"--set=receivers::otlp::protocols::http::endpoint=127.0.0.1:{ports['http']}",
                f"--set=extensions::health_check::endpoint=127.0.0.1:{port}",
                f"--set=exporters::{COLLECTOR_REMOTE_WRITE}::http::endpoint={remote_write_url}",
                f"--set=exporters::{COLLECTOR_LOKI}::endpoint={loki_url}",
                f"--set=service::telemetry::metrics::readers={telemetry}",
                *storage,
                *_collector_queue_flags(config_file, ports["queue"]),
                *extra_args,
            ],
        )

    server = start_server(
        "otelcol",
        argv,
        workdir,
        COLLECTOR.ready_path,
        extra_ports=("grpc", "http", "telemetry", "queue"),
        server_class=Collector,
    )
    assert isinstance(server, Collector)
    return server


# -- webhook receiver ----------------------------------------------------------------------------


@dataclass
class Webhook:
    """Collects the JSON bodies Alertmanager (or anything else) POSTs to `url`."""

    url: str = ""
    notifications: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def add(self, path: str, payload: dict[str, Any]) -> None:
        with self.changed:
            self.paths.append(path)
            self.notifications.append(payload)
            self.changed.notify_all()

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification, in arrival order."""
        with self.changed:
            return [alert for payload in self.notifications for alert in payload.get("alerts", [])]

    def wait_for_alert(self, name: str, status: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The alerts named `name` with `status` ("firing", "resolved"), once there is one."""
        alerts: list[dict[str, Any]] = self.wait_for(
            lambda notifications: [
                alert
                for notification in notifications
                for alert in notification["alerts"]
                if alert["labels"]["alertname"] == name and alert["status"] == status
            ],
            timeout,
        )
        return alerts

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], Any], timeout: float = 30.0) -> Any:
        """Wait until `predicate(notifications)` is truthy and return its value; fail after `timeout`."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                result = predicate(list(self.notifications))
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"webhook: no matching notification within {timeout}s; got {len(self.notifications)}:"
                        f"\n{json.dumps(self.notifications, indent=1)[-4000:]}"
                    )
                self.changed.wait(left)


def _webhook_handler(webhook: Webhook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                payload = {"unparsed": body.decode(errors="replace")}
            webhook.add(self.path, payload)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


# -- querying Prometheus ---------------------------------------------------------------------------


def _base_url(prom: str | Server | PushStack) -> str:
    if isinstance(prom, PushStack):
        return prom.prometheus.url
    if isinstance(prom, Server):
        return prom.url
    return prom.rstrip("/")


def query(prom: str | Server | PushStack, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    """Instant query over the HTTP API; the result list ({"metric": labels, "value": [t, "v"]} each)."""
    form = {"query": promql}
    if at is not None:
        form["time"] = f"{at:.3f}"
    request = urllib.request.Request(
        _base_url(prom) + "/api/v1/query", data=urllib.parse.urlencode(form).encode(), method="POST"
    )
    try:
        with _http.open(request, timeout=10) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as error:
        raise AssertionError(f"query {promql!r} failed: {error.code} {error.read().decode()[:500]}") from None
    if answer.get("status") != "success":
        raise AssertionError(f"query {promql!r} failed: {answer}")
    result = answer["data"]["result"]
    return list(result) if isinstance(result, list) else [result]


def wait_for_series(
    prom: str | Server | PushStack,
    promql: str,
    predicate: Callable[[list[dict[str, Any]]], Any] | None = None,
    timeout: float = 20.0,
    interval: float = 0.05,
) -> list[dict[str, Any]]:
    """Poll `promql` until `predicate(result)` is truthy (default: any series); return the result."""
    check = predicate or bool
    deadline = time.monotonic() + timeout
    while True:
        result = query(prom, promql)
        if check(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting on {promql!r}; last result:\n"
                f"{json.dumps(result, indent=1)[-4000:]}"
            )
        time.sleep(interval)


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One Prometheus for the session (remote-write receiver on); tests keep apart by topic/service."""
    server = start_prometheus(tmp_path_factory.mktemp("prometheus"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vmagent(tmp_path_factory: pytest.TempPathFactory, prometheus: Server) -> Iterator[Server]:
    server = start_vmagent(tmp_path_factory.mktemp("vmagent"), prometheus.url + "/api/v1/write")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def push_stack(vmagent: Server, prometheus: Server) -> PushStack:
    return PushStack(vmagent, prometheus)


class _Factory:
    """Starts servers for one test and stops them at its end; `servers` lists them for the log hook."""

    def __init__(self, start: Callable[..., Server], tmp_path: Path, name: str) -> None:
        self._start = start
        self._tmp_path = tmp_path
        self._name = name
        self.servers: list[Server] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Server:
        workdir = self._tmp_path / f"{self._name}{len(self.servers)}"
        server = self._start(workdir, *args, **kwargs)
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """prometheus_factory(rule_files=[...], evaluation_interval="1s", alertmanager_url=..., ...)"""
    factory = _Factory(start_prometheus, tmp_path, "prometheus")
    yield factory
    factory.stop_all()


@pytest.fixture
def vmagent_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """vmagent_factory(remote_write_url, flush_interval="100ms", relabel=VMAGENT_RELABEL)"""
    factory = _Factory(start_vmagent, tmp_path, "vmagent")
    yield factory
    factory.stop_all()


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """alertmanager_factory(config_file_or_dict)"""
    factory = _Factory(start_alertmanager, tmp_path, "alertmanager")
    yield factory
    factory.stop_all()


@pytest.fixture
def collector_factory(tmp_path: Path) -> Iterator[Callable[..., Collector]]:
    """collector_factory(remote_write_url=..., loki_url=...): the shipped Collector configuration."""
    factory = _Factory(start_collector, tmp_path, "otelcol")
    yield factory  # type: ignore[misc]
    factory.stop_all()


@pytest.fixture
def webhook_receiver() -> Iterator[Webhook]:
    """An HTTP endpoint on 127.0.0.1 that records every POSTed JSON body (Alertmanager's webhooks)."""
    webhook = Webhook()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _webhook_handler(webhook))
    server.daemon_threads = True
    webhook.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    thread = threading.Thread(target=server.serve_forever, name="webhook", daemon=True)
    thread.start()
    yield webhook
    server.shutdown()
    server.server_close()


# -- server logs on failure ------------------------------------------------------------------------


def _servers_in(value: Any, depth: int = 0) -> list[Server]:
    if isinstance(value, Server):
        return [value]
    servers = getattr(value, "servers", None)
    if isinstance(servers, list) and all(isinstance(s, Server) for s in servers):
        return list(servers)
    if depth < 2 and isinstance(value, (list, tuple)):
        return [s for item in value for s in _servers_in(item, depth + 1)]
    if depth < 2 and isinstance(value, dict):
        return [s for item in value.values() for s in _servers_in(item, depth + 1)]
    return []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On failure, attach the log tail of every server the test's fixtures hold."""
    report = yield
    if report.failed:
        seen: set[int] = set()
        for value in getattr(item, "funcargs", {}).values():
            for server in _servers_in(value):
                if id(server) not in seen:
                    seen.add(id(server))
                    report.sections.append(
                        (f"{server.name} log, last lines ({server.log_path})", server.log_tail())
                    )
    return report
