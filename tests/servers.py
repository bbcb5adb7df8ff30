"""Real Prometheus, vmagent and Alertmanager for the test suite.

Binaries come from `.ci/fetch-servers` (Debian's builds, unpacked into LIVEVIEW_SERVERS_DIR, default
~/.cache/otel-liveview/servers). Every server runs on a free loopback port with its own data folder,
is waited for with a deadline and stopped afterwards; a failing test gets the tail of the logs of the
servers it used. A missing binary fails the test when CI is set and skips it otherwise.

The push path used here stands in for the real stack's OTLP receiver (Debian builds Prometheus without
one): library -> OTLP/HTTP -> vmagent -> remote write -> Prometheus. vmagent is relabelled so the
series carry the labels Prometheus' own OTLP receiver gives them (see VMAGENT_RELABEL).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
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

__all__ = [
    "VMAGENT_RELABEL",
    "PushStack",
    "Server",
    "Webhook",
    "alertmanager_factory",
    "free_port",
    "prometheus",
    "prometheus_factory",
    "push_stack",
    "pytest_runtest_makereport",
    "query",
    "server_binary",
    "servers_dir",
    "start_alertmanager",
    "start_prometheus",
    "start_vmagent",
    "vmagent",
    "vmagent_factory",
    "wait_for_series",
    "webhook_receiver",
]

# Where .ci/fetch-servers unpacks each binary, relative to the servers folder.
BINARIES = {
    "prometheus": "trixie/usr/bin/prometheus",
    "promtool": "trixie/usr/bin/promtool",
    "promtool3": "sid/usr/bin/promtool",
    "alertmanager": "trixie/usr/bin/prometheus-alertmanager",
    "amtool": "trixie/usr/bin/amtool",
    "vmagent": "trixie/usr/bin/vmagent",
    "docker-compose": "trixie/usr/libexec/docker/cli-plugins/docker-compose",
}
ALERTMANAGER_TEMPLATES = "trixie/usr/share/prometheus/alertmanager"
READY_TIMEOUT = 30.0  # seconds a server may take to answer its readiness check (slow CI machines)
LOG_TAIL_LINES = 40

# Loopback requests must never go through a proxy taken from the environment.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- locating binaries ----------------------------------------------------------------------------


def servers_dir() -> Path:
    return Path(os.environ.get("LIVEVIEW_SERVERS_DIR") or "~/.cache/otel-liveview/servers").expanduser()


def server_binary(name: str) -> Path:
    """Path of a fetched server binary; fails the test under CI, skips it otherwise, when missing."""
    if name not in BINARIES:
        raise ValueError(f"unknown server binary {name!r}; known: {', '.join(BINARIES)}")
    path = servers_dir() / BINARIES[name]
    if path.is_file() and os.access(path, os.X_OK):
        return path
    message = (
        f"{name} not found at {path}; run `.ci/fetch-servers` "
        "(and set LIVEVIEW_SERVERS_DIR if it fetched into another folder)"
    )
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


# -- running a server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_running: list[Server] = []  # stopped at interpreter exit if a teardown never ran


@dataclass
class Server:
    """One server process on 127.0.0.1:`port`, its stdout and stderr in `log_path`."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    log_path: Path

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


def _stop_all() -> None:
    for server in list(_running):
        server.stop(timeout=5.0)


atexit.register(_stop_all)


def _answers(url: str) -> bool:
    try:
        with _http.open(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def start_server(
    name: str,
    command: Callable[[int], Sequence[str | os.PathLike[str]]],
    workdir: Path,
    ready_path: str,
    timeout: float = READY_TIMEOUT,
) -> Server:
    """Start `command(port)` on a free port in `workdir`; return once GET `ready_path` answers 200.

    A port taken between choosing and binding it is retried with another one.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        port = free_port()
        log_path = workdir / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [os.fspath(part) for part in command(port)],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = Server(name, process, port, workdir, log_path)
        _running.append(server)
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            if _answers(server.url + ready_path):
                return server
            time.sleep(0.05)
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
    """Prometheus configuration: out-of-order samples within 10 minutes (as the real stack allows),
    optional rule files and Alertmanager; `extra_config` is merged in at the top level."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": "15s", "evaluation_interval": evaluation_interval},
        "storage": {"tsdb": {"out_of_order_time_window": "10m"}},
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
    rule_files: Sequence[str | os.PathLike[str]] = (),
    evaluation_interval: str = "1s",
    alertmanager_url: str | None = None,
    extra_config: dict[str, Any] | None = None,
    extra_args: Sequence[str] = (),
) -> Server:
    """Prometheus with its remote-write receiver on, a fresh TSDB in `workdir`."""
    binary = server_binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yml"
    config = prometheus_config(rule_files, evaluation_interval, alertmanager_url, extra_config)
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))

    def command(port: int) -> list[str | os.PathLike[str]]:
        return [
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-remote-write-receiver",
            "--web.enable-lifecycle",
            # Prometheus finds its Alertmanagers about 5 s after start and sends a firing alert
            # again only after this delay (default 1m): keep alert tests short.
            "--rules.alert.resend-delay=1s",
            *extra_args,
        ]

    return start_server("prometheus", command, workdir, "/-/ready")


# -- vmagent ---------------------------------------------------------------------------------------

# vmagent turns every OTLP resource attribute into a label and sets neither `job` nor `instance`.
# Prometheus' OTLP receiver (and the Collector's prometheusremotewrite exporter) set
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


def alertmanager_binary() -> tuple[Path, Path | None]:
    """The Alertmanager binary to run, and the folder of templates it needs next to it (or None).

    Debian's build looks for default.tmpl and email.tmpl in /usr/share/prometheus/alertmanager, a
    path compiled in with no flag or setting to change it. Rather than write into /usr/share, run a
    copy whose template folder names the same number of bytes, relative to the working directory.
    The path is a string of its own in the binary (the UI path is a separate string), so nothing
    else changes. Upstream builds embed the templates and are used as they are.
    """
    binary = server_binary("alertmanager")
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
            f"one tests/servers.py knows how to point elsewhere (or {templates} is missing)"
        )
    folder = Path(tempfile.mkdtemp(prefix="otel-liveview-alertmanager-"))
    atexit.register(shutil.rmtree, folder, True)
    patched = folder / "alertmanager"
    patched.write_bytes(content.replace(marker, LOCAL_TEMPLATE_DIR + b"timeout"))
    patched.chmod(0o755)
    _patched[binary] = patched
    return patched, templates


def start_alertmanager(
    workdir: Path, config: str | os.PathLike[str] | dict[str, Any], *, extra_args: Sequence[str] = ()
) -> Server:
    """Alertmanager with `config` (a file, or a dict written to one), loopback only, no clustering."""
    binary, templates = alertmanager_binary()
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

    def command(port: int) -> list[str | os.PathLike[str]]:
        return [
            binary,
            f"--config.file={config_file}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # empty: no gossip port on all interfaces
            "--log.level=debug",  # notifications and their failures show in the log tail
            *extra_args,
        ]

    return start_server("alertmanager", command, workdir, "/-/ready")


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
