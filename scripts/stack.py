"""docker-compose.yml without Docker: every service a local process, started as compose would.

usage: scripts/stack up [--without NAME]... [--timeout S] [--all] [--foreground] [SERVICE...]
       scripts/stack down [--volumes]
       scripts/stack status [--json]

What each service gets, read from docker-compose.yml:
  - the command line compose gives it: the image's entrypoint + the service's `command`;
  - its `environment` (with ${VAR:-default} taken from the shell or .env, as compose does);
  - a private mount namespace (unshare) and root (chroot): a tmpfs holding the host's /usr and /etc
    as overlays (writes stay in memory), /lib*, /bin, /sbin as on the host, /proc, /dev, /sys, a
    private /tmp, the server binary at the image's path (/bin/prometheus, /otelcol-contrib, ...), the
    files and folders compose mounts, unmodified, at their targets (read-only where compose says :ro),
    named volumes as folders under the state folder, and an /etc/hosts that maps every service name
    to 127.0.0.1. Nothing is written to the host's / or /etc;
  - the image's USER (nobody, 10001, 472), who also owns a new volume folder, as with Docker;
  - the host's network: a published port must equal its container port (127.0.0.1:9090:9090), and a
    service listens where its own configuration says (0.0.0.0:4317 for the Collector: ALL interfaces
    of the host, where compose publishes on 127.0.0.1 only).
Readiness comes from compose's own healthchecks (first probe after `interval`, each within `timeout`,
unhealthy after `retries` failures), run inside the service's namespace like `docker exec`; a CMD
`wget -qO- URL` is done as an HTTP GET here when the root has no wget. Services start in `depends_on`
order, waiting for service_started / service_healthy. The demo service (`build:` this checkout) runs
the image's CMD (`otel-liveview demo`) from .venv with the same /etc/hosts.

Binaries: the versions docker-compose.yml pins, built by .ci/build-servers into
$LIVEVIEW_SERVERS_DIR/build (default ~/.cache/otel-liveview/servers/build): otelcol-TAG/otelcol-liveview,
prometheus-TAG/prometheus, alertmanager-TAG/alertmanager. LIVEVIEW_STACK_<SERVICE>=/path/to/binary
overrides one (LIVEVIEW_STACK_OTEL_COLLECTOR, ..._PROMETHEUS, ..._ALERTMANAGER) or supplies one that is
not built here: LIVEVIEW_STACK_LOKI=/path/to/loki, LIVEVIEW_STACK_GRAFANA=/path/to/bin/grafana (its
home, with conf/defaults.ini, is the folder above bin/ or LIVEVIEW_STACK_GRAFANA_HOME).

A service without a binary is "unavailable": `up` says so and why, runs the rest, and treats it as if
`--without NAME` had been given: a `depends_on` on it is waived with a notice (the Collector then runs
without Loki: its log exporter reports failed exports and retries). `up` exits non-zero if a service it
starts fails (exits, or its healthcheck gives up), the deadline passes, or a required service (one
built here: the Collector, Prometheus, Alertmanager; and the demo, from .venv) has no binary and was
not left out with --without; Loki and Grafana are optional unless --all is given. State, pid files
and logs: .stack/ next to docker-compose.yml (LIVEVIEW_STACK_DIR overrides), logs in
.stack/logs/SERVICE.log. docs/deploy.md says more.

Needs: Linux, root (mount namespaces, chroot), util-linux (unshare, nsenter, mount), overlayfs, and
Python >= 3.10 with PyYAML: scripts/stack runs this file with .venv/bin/python when scripts/test (or
`python3 -m venv .venv && .venv/bin/pip install -e '.[alerts]'`) made it – the demo service needs that .venv –
else with python3.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.exit("stack: needs PyYAML: run scripts/test once (it makes .venv), or pip install pyyaml")

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_TIMEOUT = 300.0
STOP_GRACE = 10.0  # compose's default stop_grace_period
RUNNING_AFTER = 3.0  # seconds a service without healthcheck must stay up to count as running
# Loopback requests must never go through a proxy taken from the environment.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- what the images hold ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """What a pinned image contributes: where its server binary lives, its entrypoint and workdir."""

    binary_at: str  # where the image has the server binary
    entrypoint: tuple[str, ...]
    workdir: str = "/"
    build: str | None = None  # .ci/build-servers' output, relative to build/, {tag} filled in
    version_flag: str = "--version"
    env: tuple[tuple[str, str], ...] = ()
    user: tuple[int, int] = (0, 0)  # the image's USER (uid, gid)
    dirs: tuple[str, ...] = ()  # folders the image has, owned by its user


GRAFANA_HOME = "/usr/share/grafana"
IMAGES: dict[str, Image] = {
    "otel/opentelemetry-collector-contrib": Image(
        "/otelcol-contrib", ("/otelcol-contrib",), build="otelcol-{tag}/otelcol-liveview", user=(10001, 10001)
    ),
    "prom/prometheus": Image(
        "/bin/prometheus",
        ("/bin/prometheus",),
        "/prometheus",
        build="prometheus-{tag}/prometheus",
        user=(65534, 65534),
    ),
    "prom/alertmanager": Image(
        "/bin/alertmanager",
        ("/bin/alertmanager",),
        "/alertmanager",
        build="alertmanager-{tag}/alertmanager",
        user=(65534, 65534),
    ),
    "grafana/loki": Image("/usr/bin/loki", ("/usr/bin/loki",), version_flag="-version", user=(10001, 10001)),
    # The image's /run.sh, which ends in this command line.
    "grafana/grafana": Image(
        f"{GRAFANA_HOME}/bin/grafana",
        (
            f"{GRAFANA_HOME}/bin/grafana",
            "server",
            f"--homepath={GRAFANA_HOME}",
            "--config=/etc/grafana/grafana.ini",
            "--packaging=docker",
        ),
        GRAFANA_HOME,
        env=(
            ("GF_PATHS_CONFIG", "/etc/grafana/grafana.ini"),
            ("GF_PATHS_DATA", "/var/lib/grafana"),
            ("GF_PATHS_HOME", GRAFANA_HOME),
            ("GF_PATHS_LOGS", "/var/log/grafana"),
            ("GF_PATHS_PLUGINS", "/var/lib/grafana/plugins"),
            ("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"),
        ),
        user=(472, 0),
        dirs=("/var/log/grafana",),
    ),
}
GRAFANA_TRAILING_ARGS = (
    "cfg:default.log.mode=console",
    "cfg:default.paths.data=/var/lib/grafana",
    "cfg:default.paths.logs=/var/log/grafana",
    "cfg:default.paths.plugins=/var/lib/grafana/plugins",
    "cfg:default.paths.provisioning=/etc/grafana/provisioning",
)


class StackError(Exception):
    """A problem with the compose file or the machine that stops `up` before it starts anything."""


# -- reading docker-compose.yml -----------------------------------------------------------------------

_VAR = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def dotenv(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip().strip("'\"")
    return values


def interpolate(text: str, variables: dict[str, str]) -> str:
    """compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, $$."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        expression = match.group("braced") if match.group("braced") is not None else match.group("plain")
        for operator in (":-", "-", ":?", "?"):
            if operator in expression:
                name, _, argument = expression.partition(operator)
                value = variables.get(name)
                empty = value is None or (operator.startswith(":") and value == "")
                if operator.endswith("-"):
                    return argument if empty else str(value)
                if empty:
                    raise StackError(f"variable {name} is required: {argument}")
                return str(value)
        return variables.get(expression, "")

    return _VAR.sub(replace, text)


def duration(value: Any, default: float) -> float:
    """compose durations: 10s, 1m30s, 500ms, 1h."""
    if value is None:
        return default
    if isinstance(value, (int, float)):
        return float(value)
    total, units = 0.0, {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(value))
    if not parts or "".join(a + b for a, b in parts) != str(value):
        raise StackError(f"cannot read duration {value!r}")
    for amount, unit in parts:
        total += float(amount) * units[unit]
    return total


@dataclass
class Port:
    host_ip: str
    host: int
    container: int
    protocol: str = "tcp"

    def __str__(self) -> str:
        return f"{self.host_ip or '0.0.0.0'}:{self.host}"


@dataclass
class Mount:
    source: str  # a host path, or a named volume's name
    target: str
    read_only: bool
    volume: bool  # a named volume (a folder under the state folder)


@dataclass
class Healthcheck:
    test: list[str]  # argv, run in the service's namespace
    interval: float
    timeout: float
    retries: int
    start_period: float

    def describe(self) -> str:
        return " ".join(self.test)


@dataclass
class Service:
    name: str
    image: str | None
    build: dict[str, Any] | None
    command: list[str] | None
    environment: dict[str, str]
    ports: list[Port]
    mounts: list[Mount]
    depends_on: dict[str, str]  # name -> condition
    healthcheck: Healthcheck | None
    stop_signal: int = signal.SIGTERM
    stop_grace: float = STOP_GRACE

    @property
    def image_name(self) -> str:
        return (self.image or "").rpartition(":")[0] or (self.image or "")

    @property
    def tag(self) -> str:
        return (self.image or "").rpartition(":")[2] if ":" in (self.image or "") else "latest"


def _ports(name: str, entries: list[Any]) -> list[Port]:
    ports = []
    for entry in entries:
        if isinstance(entry, dict):
            target, published = int(entry["target"]), entry.get("published")
            host_ip, protocol = str(entry.get("host_ip", "")), str(entry.get("protocol", "tcp"))
            if published is None:
                raise StackError(f"{name}: port {target} has no published port (compose would pick one)")
            ports.append(Port(host_ip, int(published), target, protocol))
            continue
        text, _, protocol = str(entry).partition("/")
        parts = text.rsplit(":", 2) if text.count(":") >= 2 else text.split(":")
        if len(parts) == 1:
            raise StackError(f"{name}: port {entry!r} lets Docker choose the host port; not supported here")
        host_ip = parts[0] if len(parts) == 3 else ""
        host, container = parts[-2], parts[-1]
        if "-" in host or "-" in container:
            raise StackError(f"{name}: port ranges ({entry!r}) are not supported here")
        ports.append(Port(host_ip.strip("[]"), int(host), int(container), protocol or "tcp"))
    return ports


def _mounts(name: str, entries: list[Any], named: set[str]) -> list[Mount]:
    mounts = []
    for entry in entries:
        if isinstance(entry, dict):
            source, target = str(entry.get("source", "")), str(entry["target"])
            read_only, kind = bool(entry.get("read_only")), entry.get("type", "volume")
        else:
            fields = str(entry).split(":")
            if len(fields) == 1:
                raise StackError(f"{name}: anonymous volume {entry!r} is not supported here")
            source, target = fields[0], fields[1]
            options = fields[2].split(",") if len(fields) > 2 else []
            read_only = "ro" in options
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        if kind == "bind":
            path = Path(source).expanduser()
            mounts.append(
                Mount(str(path if path.is_absolute() else (ROOT / path).resolve()), target, read_only, False)
            )
        elif kind == "volume":
            if source not in named:
                raise StackError(f"{name}: volume {source!r} is not declared under the top-level volumes:")
            mounts.append(Mount(source, target, read_only, True))
        else:
            raise StackError(f"{name}: mount type {kind!r} is not supported here")
    return mounts


def _healthcheck(name: str, spec: dict[str, Any] | None) -> Healthcheck | None:
    if not spec or spec.get("disable"):
        return None
    test = spec.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        argv = [str(part) for part in test[1:]]
    elif test[0] == "CMD-SHELL":
        argv = ["/bin/sh", "-c", str(test[1])]
    else:
        raise StackError(f"{name}: healthcheck test {test!r} must start with CMD, CMD-SHELL or NONE")
    return Healthcheck(
        argv,
        duration(spec.get("interval"), 30.0),
        duration(spec.get("timeout"), 30.0),
        int(spec.get("retries", 3)),
        duration(spec.get("start_period"), 0.0),
    )


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Service]:
    variables = {**dotenv(path.parent / ".env"), **os.environ}

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return interpolate(value, variables)
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        return value

    document = walk(yaml.safe_load(path.read_text()))
    named = set((document.get("volumes") or {}).keys())
    services: dict[str, Service] = {}
    for name, spec in (document.get("services") or {}).items():
        environment = spec.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.partition("=")[::2] for item in environment)
        command = spec.get("command")
        if isinstance(command, str):
            command = command.split()
        depends = spec.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {dep: {"condition": "service_started"} for dep in depends}
        stop_signal = spec.get("stop_signal", "SIGTERM")
        services[name] = Service(
            name=name,
            image=spec.get("image"),
            build=spec["build"]
            if isinstance(spec.get("build"), dict)
            else ({"context": spec["build"]} if spec.get("build") else None),
            command=[str(part) for part in command] if command is not None else None,
            environment={str(k): "" if v is None else str(v) for k, v in environment.items()},
            ports=_ports(name, spec.get("ports") or []),
            mounts=_mounts(name, spec.get("volumes") or [], named),
            depends_on={dep: (cfg or {}).get("condition", "service_started") for dep, cfg in depends.items()},
            healthcheck=_healthcheck(name, spec.get("healthcheck")),
            stop_signal=int(
                getattr(signal, stop_signal if stop_signal.startswith("SIG") else "SIG" + stop_signal)
            ),
            stop_grace=duration(spec.get("stop_grace_period"), STOP_GRACE),
        )
    for service in services.values():
        for dep, condition in service.depends_on.items():
            if dep not in services:
                raise StackError(f"{service.name} depends on {dep}, which is not a service")
            if condition not in ("service_started", "service_healthy"):
                raise StackError(f"{service.name}: depends_on condition {condition!r} is not supported here")
            if condition == "service_healthy" and services[dep].healthcheck is None:
                raise StackError(
                    f"{service.name} waits for {dep} to be healthy, but {dep} has no healthcheck"
                )
    return services


def start_order(services: dict[str, Service]) -> list[str]:
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise StackError(f"depends_on has a cycle through {name}")
        visiting.add(name)
        for dep in services[name].depends_on:
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in services:
        visit(name)
    return order


# -- the state folder -------------------------------------------------------------------------------


def state_dir() -> Path:
    configured = os.environ.get("LIVEVIEW_STACK_DIR")
    return Path(configured).expanduser().resolve() if configured else ROOT / ".stack"


def servers_dir() -> Path:
    return Path(os.environ.get("LIVEVIEW_SERVERS_DIR") or "~/.cache/otel-liveview/servers").expanduser()


def log_path(name: str) -> Path:
    return state_dir() / "logs" / f"{name}.log"


def pid_path(name: str) -> Path:
    return state_dir() / "run" / f"{name}.json"


def _proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # pid (comm) state ppid pgrp session ... ; comm may hold spaces and parentheses
    return [text[: text.index(" ")], "comm", *text[text.rindex(")") + 2 :].split()]


def start_time(pid: int) -> str | None:
    stat = _proc_stat(pid)
    return stat[21] if stat else None


def alive(record: dict[str, Any]) -> bool:
    """The recorded process still runs (same pid and start time; zombies count as gone)."""
    stat = _proc_stat(int(record["pid"]))
    return bool(stat) and stat[2] != "Z" and stat[21] == record["start"]


def running_record(name: str) -> dict[str, Any] | None:
    try:
        record = json.loads(pid_path(name).read_text())
    except (OSError, ValueError):
        return None
    return record if alive(record) else None


def session_members(session: int) -> list[int]:
    """Every live process of the session the service's first process leads (the service's tree)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat and stat[5] == str(session) and stat[2] != "Z":
                members.append(int(entry.name))
    return members


# -- binaries -----------------------------------------------------------------------------------------


@dataclass
class Runnable:
    """How to run one service here, or why it cannot be."""

    binary: Path | None = None
    reason: str = ""
    extra_binds: list[Mount] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # path in the root -> content
    warning: str = ""


def env_name(service: str) -> str:
    return "LIVEVIEW_STACK_" + re.sub(r"[^A-Za-z0-9]", "_", service).upper()


def _version_warning(binary: Path, image: Image, tag: str) -> str:
    try:
        result = subprocess.run(
            [str(binary), image.version_flag],
            capture_output=True,
            text=True,
            timeout=20,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"could not ask {binary} for its version: {error}"
    version = tag.lstrip("v")
    if not re.search(rf"(?<![\d.]){re.escape(version)}(?![\d])", result.stdout + result.stderr):
        first = (result.stdout + result.stderr).strip().splitlines()[:1]
        return f"{binary} is not version {version} as compose pins ({first[0] if first else 'no version output'})"
    return ""


def find_runnable(service: Service) -> Runnable:
    if service.build is not None:
        return _demo_runnable(service)
    image = IMAGES.get(service.image_name)
    if image is None:
        return Runnable(reason=f"image {service.image} is not one scripts/stack knows how to stand in for")
    variable = env_name(service.name)
    given = os.environ.get(variable)
    if given:
        binary = Path(given).expanduser().resolve()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            return Runnable(reason=f"{variable}={given} is not an executable file")
    elif image.build:
        binary = servers_dir() / "build" / image.build.format(tag=service.tag)
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            return Runnable(
                reason=f"no binary: {binary} is not built (run .ci/build-servers) and {variable} is not set"
            )
    else:
        return Runnable(
            reason=f"no binary: {service.image} is not built on this machine; "
            f"set {variable}=/path/to/{Path(image.binary_at).name} ({service.tag})"
        )
    # A build's folder names its version (the builds carry no version string); a given binary is asked.
    runnable = Runnable(binary, warning=_version_warning(binary, image, service.tag) if given else "")
    if service.image_name == "grafana/grafana":
        home = Path(os.environ.get("LIVEVIEW_STACK_GRAFANA_HOME") or binary.parent.parent)
        if not (home / "conf" / "defaults.ini").is_file():
            return Runnable(
                reason=f"grafana's home {home} has no conf/defaults.ini; set LIVEVIEW_STACK_GRAFANA_HOME"
            )
        runnable.extra_binds.append(Mount(str(home), GRAFANA_HOME, True, False))
        sample = home / "conf" / "sample.ini"  # the image's /etc/grafana/grafana.ini is this file
        runnable.files["/etc/grafana/grafana.ini"] = sample.read_text() if sample.is_file() else ""
    return runnable


def required(service: Service) -> bool:
    """A service this machine can make a binary for (.ci/build-servers, or the demo's .venv): its
    absence is an error. Loki and Grafana are not built here: without a given binary they are optional."""
    return service.build is not None or bool(IMAGES.get(service.image_name, Image("", ())).build)


def _demo_runnable(service: Service) -> Runnable:
    dockerfile = ROOT / service.build.get("context", ".") / service.build.get("dockerfile", "Dockerfile")
    command = service.command or _dockerfile_cmd(dockerfile)
    if not command:
        return Runnable(reason=f"{dockerfile} has no CMD in JSON form and the service has no command")
    for bindir in (ROOT / ".venv" / "bin", Path(sys.executable).parent):
        if (bindir / command[0]).is_file():
            return Runnable(bindir / command[0])
    return Runnable(
        reason=f"{command[0]} is not installed: run scripts/test, or python3 -m venv .venv && .venv/bin/pip install -e ."
    )


def _dockerfile_cmd(dockerfile: Path) -> list[str]:
    command: list[str] = []
    with contextlib.suppress(OSError):
        for line in dockerfile.read_text().splitlines():
            if line.strip().upper().startswith("CMD "):
                with contextlib.suppress(ValueError):
                    command = [str(part) for part in json.loads(line.strip()[4:])]
    return command


# -- ports --------------------------------------------------------------------------------------------


def check_port_mapping(service: Service) -> None:
    for port in service.ports:
        if port.protocol != "tcp":
            raise StackError(f"{service.name}: only tcp ports are supported here, not {port.protocol}")
        if port.host != port.container:
            raise StackError(
                f"{service.name}: port {port.host_ip}:{port.host}:{port.container} needs port translation; "
                "the services share the host's network here, so a published port must equal its container port"
            )


def listeners(port: int) -> list[str]:
    """Who listens on TCP `port` on any address: ["pid 123 (prometheus)", ...] or ["unknown process"]."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    if not inodes:
        return []
    owners = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    owners.append(f"pid {entry.name} ({(entry / 'comm').read_text().strip()})")
                    break
    return owners or ["an unknown process"]


def port_taken(port: int) -> str:
    """Why `port` cannot be bound on all addresses, or ''."""
    owners = listeners(port)
    if owners:
        return "in use by " + ", ".join(owners)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError as error:
            return f"cannot be bound: {error.strerror}"
    return ""


# -- starting a service ---------------------------------------------------------------------------------


def hosts_file(services: dict[str, Service]) -> str:
    names = " ".join(services)
    return f"127.0.0.1\tlocalhost {names}\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def launch_spec(service: Service, runnable: Runnable, services: dict[str, Service]) -> dict[str, Any]:
    """Everything the `_enter` step needs to build the service's root and exec it."""
    state = state_dir()
    env = {"PATH": IMAGE_PATH, "HOSTNAME": service.name, "HOME": "/"}
    if service.build is not None:  # the demo: this checkout's package, the host's root
        command = service.command or _dockerfile_cmd(
            ROOT / service.build.get("context", ".") / service.build.get("dockerfile", "Dockerfile")
        )
        env.update(
            PATH=f"{runnable.binary.parent}:{IMAGE_PATH}",
            HOME=os.environ.get("HOME", "/root"),
            LANG="C.UTF-8",
            PYTHONUNBUFFERED="1",
        )
        env.update(service.environment)
        return {
            "service": service.name,
            "chroot": None,
            "hosts": hosts_file(services),
            "argv": [str(runnable.binary), *command[1:]],
            "cwd": str(ROOT),
            "env": env,
        }
    image = IMAGES[service.image_name]
    env.update(dict(image.env))
    env.update(service.environment)
    argv = [*image.entrypoint, *(service.command or [])]
    if service.image_name == "grafana/grafana":
        argv += GRAFANA_TRAILING_ARGS
    binds = [{"source": str(runnable.binary), "target": image.binary_at, "ro": True}]
    binds += [{"source": m.source, "target": m.target, "ro": m.read_only} for m in runnable.extra_binds]
    for mount in service.mounts:
        source = mount.source
        if mount.volume:
            volume = state / "volumes" / mount.source
            volume.mkdir(parents=True, exist_ok=True)
            if not any(volume.iterdir()):  # Docker gives a new volume the ownership of the image's folder
                os.chown(volume, *image.user)
            source = str(volume)
        elif not Path(source).exists():
            raise StackError(f"{service.name}: {source} (mounted at {mount.target}) does not exist")
        binds.append({"source": source, "target": mount.target, "ro": mount.read_only})
    # Binds whose targets lie inside another bind's target go after it.
    binds.sort(key=lambda bind: bind["target"].count("/"))
    return {
        "service": service.name,
        "chroot": str(state / "roots" / service.name),
        "hosts": hosts_file(services),
        "files": runnable.files,
        "binds": binds,
        "argv": argv,
        "cwd": image.workdir,
        "user": list(image.user),
        "dirs": list(image.dirs),
        "env": env,
    }


def start_service(
    service: Service, runnable: Runnable, services: dict[str, Service]
) -> tuple[dict[str, Any], subprocess.Popen[bytes]]:
    state = state_dir()
    spec = launch_spec(service, runnable, services)
    for folder in ("run", "logs", "roots"):
        (state / folder).mkdir(parents=True, exist_ok=True)
    spec_file = state / "run" / f"{service.name}.spec.json"
    spec_file.write_text(json.dumps(spec, indent=1))
    if spec["chroot"]:
        Path(spec["chroot"]).mkdir(parents=True, exist_ok=True)
    log = log_path(service.name)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                sys.executable,
                str(Path(__file__).resolve()),
                "_enter",
                str(spec_file),
            ],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session and process group: `down` stops the whole tree
            env={"PATH": IMAGE_PATH},
        )
    record = {
        "service": service.name,
        "pid": process.pid,
        "start": None,
        "ports": [str(port) for port in service.ports],
        "log": str(log),
        "argv": spec["argv"],
        "started_at": time.time(),
    }
    for _ in range(200):  # the start time is there as soon as the process exists
        record["start"] = start_time(process.pid)
        if record["start"]:
            break
        time.sleep(0.005)
    pid_path(service.name).write_text(json.dumps(record))
    return record, process


def _resolve_in(root: Path, path: str) -> Path:
    """`path` inside `root`, following symlinks as they resolve after chroot(root)."""
    current = root
    parts = [part for part in path.split("/") if part]
    hops = 0
    while parts:
        part = parts.pop(0)
        candidate = current / part
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise OSError(errno.ELOOP, "too many symlinks", path)
            target = os.readlink(candidate)
            parts = [p for p in target.split("/") if p] + parts
            if target.startswith("/"):
                current = root
            continue
        current = candidate if part != ".." else (current.parent if current != root else root)
    return current


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"stack: mount {' '.join(args)} failed: {result.stderr.strip()}")


def enter(spec_file: str) -> None:
    """Runs inside the new mount namespace: builds the private root, then becomes the service."""
    spec = json.loads(Path(spec_file).read_text())
    if spec["chroot"] is None:  # the demo: the host's root with the stack's /etc/hosts
        hosts = Path(spec_file).parent / f"{spec['service']}.hosts"
        hosts.write_text(spec["hosts"])
        _mount("--bind", str(hosts), "/etc/hosts")
        os.chdir(spec["cwd"])
        os.execve(spec["argv"][0], spec["argv"], spec["env"])
    root = Path(spec["chroot"])
    _mount("-t", "tmpfs", "-o", "mode=755", f"stack-{spec['service']}", str(root))
    (root / ".overlay").mkdir()
    for entry in sorted(Path("/").iterdir()):
        name = entry.name
        if name in ("usr", "etc"):  # writable copies: new files and folders stay in the tmpfs
            upper, work = root / ".overlay" / f"{name}-upper", root / ".overlay" / f"{name}-work"
            upper.mkdir()
            work.mkdir()
            (root / name).mkdir()
            _mount(
                "-t",
                "overlay",
                "-o",
                f"lowerdir=/{name},upperdir={upper},workdir={work}",
                f"stack-{name}",
                str(root / name),
            )
        elif name in ("bin", "sbin") or name.startswith("lib"):
            if entry.is_symlink():
                (root / name).symlink_to(os.readlink(entry))
            elif entry.is_dir():
                (root / name).mkdir()
                _mount("-o", "bind,ro", str(entry), str(root / name))
        elif name in ("proc", "dev", "sys"):
            (root / name).mkdir()
            _mount("--rbind", str(entry), str(root / name))
    (root / "tmp").mkdir(mode=0o1777)
    (root / "tmp").chmod(0o1777)
    (root / "etc" / "hosts").write_text(spec["hosts"])
    for path, content in spec.get("files", {}).items():
        target = _resolve_in(root, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    for bind in spec["binds"]:
        source = Path(bind["source"])
        target = _resolve_in(root, bind["target"])
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.touch()
        _mount("-o", "bind,ro" if bind["ro"] else "bind", str(source), str(target))
    uid, gid = spec["user"]
    for folder in spec["dirs"]:
        target = _resolve_in(root, folder)
        target.mkdir(parents=True, exist_ok=True)
        os.chown(target, uid, gid)
    os.chroot(root)
    workdir = Path(spec["cwd"])
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    os.setgroups([])  # the image's USER, as Docker runs it
    os.setgid(gid)
    os.setuid(uid)
    os.execve(spec["argv"][0], spec["argv"], spec["env"])


# -- healthchecks -------------------------------------------------------------------------------------


def _in_root(pid: int, command: str) -> bool:
    """`command` (a name or a path) exists in the service's root, as its PATH would find it."""
    root = Path(f"/proc/{pid}/root")
    if "/" in command:
        return _resolve_in(root, command).is_file()
    return any(_resolve_in(root, f"{folder}/{command}").is_file() for folder in IMAGE_PATH.split(":"))


def _wget_url(argv: list[str]) -> str | None:
    """The URL of `wget -qO- URL` (or -q -O - URL), the form compose files use; None for other forms."""
    if not argv or argv[0] != "wget":
        return None
    rest = " ".join(argv[1:])
    match = re.fullmatch(r"(?:-q ?O ?-|-qO-|-q -O -|-O- -q|-O - -q|--spider -q|-q --spider) (\S+)", rest)
    return match.group(1) if match else None


def probe(service: Service, record: dict[str, Any]) -> tuple[bool, str]:
    """One run of the service's healthcheck test, as compose runs it in the container."""
    check = service.healthcheck
    assert check is not None
    pid = int(record["pid"])
    argv = check.test
    if service.build is None and not _in_root(pid, argv[0]):
        url = _wget_url(argv)
        if url is None:
            return False, f"{argv[0]} is not in the service's root"
        try:  # what `wget -qO- URL` checks: the GET succeeds with a 2xx answer
            with _http.open(url, timeout=check.timeout) as response:
                response.read()
                return 200 <= response.status < 300, f"GET {url}: {response.status}"
        except (OSError, urllib.error.URLError) as error:
            return False, f"GET {url}: {error}"
    if service.build is None:  # in the service's root, as its user (docker exec runs the test so)
        uid, gid = IMAGES[service.image_name].user
        command = [
            "nsenter",
            f"--target={pid}",
            "--mount",
            "--root",
            "--wd",
            f"--setuid={uid}",
            f"--setgid={gid}",
            "--",
            *argv,
        ]
    else:
        command = ["nsenter", f"--target={pid}", "--mount", "--", *argv]
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            timeout=check.timeout,
            stdin=subprocess.DEVNULL,
            env={"PATH": IMAGE_PATH, **service.environment},
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {check.timeout:g}s"
    output = (result.stdout + result.stderr).decode(errors="replace").strip()
    return result.returncode == 0, f"exit {result.returncode}" + (f": {output[-200:]}" if output else "")


class Monitor(threading.Thread):
    """Runs a started service's healthcheck as Docker does: first probe `interval` after the start,
    then every `interval`; healthy at the first success, unhealthy after `retries` failures in a row
    (failures within start_period do not count)."""

    def __init__(
        self,
        service: Service,
        record: dict[str, Any],
        already_running: bool,
        process: subprocess.Popen[bytes] | None = None,
    ) -> None:
        super().__init__(name=f"health-{service.name}", daemon=True)
        self.service, self.record = service, record
        self.state = "starting"
        self.detail = ""
        self.changed = threading.Event()
        self.immediate = already_running
        self.process = process  # started by this `up`: its exit code can be told
        self.started_at = time.monotonic()
        self._halt = threading.Event()

    def run(self) -> None:
        check = self.service.healthcheck
        if check is None:  # running once it has stayed up a few seconds (a crash at start shows)
            while not self._halt.wait(0.2):
                if not alive(self.record):
                    self._set("exited", self._ended())
                    return
                if self.state == "starting" and time.monotonic() - self.started_at >= RUNNING_AFTER:
                    self._set("running", f"no healthcheck in compose; up for {RUNNING_AFTER:g}s")
            return
        failures = 0
        next_probe = self.started_at + (0 if self.immediate else check.interval)
        while not self._halt.is_set():
            if not alive(self.record):
                self._set("exited", self._ended())
                return
            if time.monotonic() < next_probe:
                self._halt.wait(min(0.2, next_probe - time.monotonic()))
                continue
            began = time.monotonic()
            healthy, detail = probe(self.service, self.record)
            if healthy:
                self._set("healthy", detail)
                return
            if began - self.started_at >= check.start_period:
                failures += 1
            self.detail = f"{failures}/{check.retries} failed: {detail}"
            if failures >= check.retries:
                self._set("unhealthy", self.detail)
                return
            next_probe = began + check.interval

    def _ended(self) -> str:
        code = self.process.poll() if self.process else None
        if code is None:
            return "the process ended"
        return (
            f"the process exited with code {code}"
            if code >= 0
            else f"the process was killed by signal {-code}"
        )

    def _set(self, state: str, detail: str) -> None:
        self.detail = detail
        self.state = state
        self.changed.set()

    def stop(self) -> None:
        self._halt.set()


# -- commands --------------------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"stack: {message}", flush=True)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "    (no log)"
    if not text:
        return "    (the log is empty)"
    return "\n".join("    | " + line for line in text)


def up(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise StackError("needs root: each service gets a mount namespace and a chroot (run it with sudo)")
    for tool in ("unshare", "nsenter", "mount"):
        if shutil.which(tool, path=IMAGE_PATH) is None:
            raise StackError(f"needs {tool} (util-linux)")
    services = load_compose()
    order = start_order(services)
    unknown = [name for name in [*args.services, *args.without] if name not in services]
    if unknown:
        raise StackError(f"no such service: {', '.join(unknown)} (services: {', '.join(services)})")
    wanted: set[str] = set()

    def want(name: str) -> None:
        if name not in wanted:
            wanted.add(name)
            for dep in services[name].depends_on:
                want(dep)

    for name in args.services or order:
        want(name)
    # What runs, what cannot, and why.
    not_run: dict[str, str] = {}
    runnables: dict[str, Runnable] = {}
    missing: list[str] = []  # required services without a binary
    for name in order:
        if name not in wanted:
            continue
        if name in args.without:
            not_run[name] = "left out with --without"
            continue
        runnable = find_runnable(services[name])
        if runnable.binary is None:
            not_run[name] = f"unavailable – {runnable.reason}"
            if required(services[name]):
                missing.append(name)
                say(f"{name}: unavailable (required: this machine builds it) – {runnable.reason}")
            else:
                say(f"{name}: unavailable – {runnable.reason}")
            continue
        if runnable.warning:
            say(f"{name}: warning – {runnable.warning}")
        runnables[name] = runnable
    if args.all and any(reason.startswith("unavailable") for reason in not_run.values()):
        raise StackError(
            "--all: "
            + ", ".join(n for n, r in not_run.items() if r.startswith("unavailable"))
            + " cannot run here"
        )
    records: dict[str, dict[str, Any]] = {}
    to_start = []
    for name in runnables:
        check_port_mapping(services[name])
        record = running_record(name)
        if record:
            records[name] = record
        else:
            to_start.append(name)
    for name in to_start:
        for port in services[name].ports:
            why = port_taken(port.container)
            if why:
                raise StackError(f"{name}: port {port.container} {why}; nothing was started")
    for name, reason in not_run.items():
        for dependent in order:
            condition = services[dependent].depends_on.get(name)
            if condition and dependent in runnables:
                say(
                    f"notice: {dependent} depends_on {name} ({condition}): waived, {name} is not run ({reason.split(' – ')[0]})"
                )

    deadline = time.monotonic() + args.timeout
    monitors: dict[str, Monitor] = {}
    failed: dict[str, str] = {}
    pending = [name for name in order if name in runnables]
    for name, record in records.items():
        say(f"{name}: already running (pid {record['pid']})")
        monitors[name] = Monitor(services[name], record, already_running=True)
        monitors[name].start()
    reported: set[str] = set()
    while True:
        states = {name: monitor.state for name, monitor in monitors.items()}  # one view per round
        for name, monitor in monitors.items():
            state = states[name]
            if name in reported or state == "starting":
                continue
            if state == "healthy":
                say(f"{name}: healthy after {time.monotonic() - monitor.started_at:.1f}s ({monitor.detail})")
            elif state == "running":
                say(f"{name}: running ({monitor.detail})")
            else:
                failed[name] = f"{state}: {monitor.detail}"
                say(
                    f"{name}: {state} – {monitor.detail}; last lines of {_rel(log_path(name))}:\n"
                    + _tail(log_path(name))
                )
            reported.add(name)
        for name in list(pending):
            if name in monitors:
                pending.remove(name)
                continue
            deps = {dep: cond for dep, cond in services[name].depends_on.items() if dep in runnables}
            broken = [dep for dep in deps if dep in failed]
            if broken:
                failed[name] = f"not started: {', '.join(broken)} failed"
                pending.remove(name)
                continue
            ready = all(
                states.get(dep) == "healthy"
                if cond == "service_healthy"
                else states.get(dep) in ("running", "starting", "healthy")
                for dep, cond in deps.items()
            )
            if not ready:
                continue
            pending.remove(name)
            try:
                record, process = start_service(services[name], runnables[name], services)
            except (StackError, OSError) as error:
                failed[name] = f"could not start: {error}"
                continue
            ports = ", ".join(record["ports"]) or "no ports"
            say(f"{name}: started (pid {record['pid']}; {ports}; log {_rel(log_path(name))})")
            monitors[name] = Monitor(services[name], record, already_running=False, process=process)
            monitors[name].start()
        if not pending and all(m.state != "starting" for m in monitors.values()):
            break
        if time.monotonic() > deadline:
            for name, monitor in monitors.items():
                if monitor.state == "starting":
                    failed[name] = (
                        f"not healthy within {args.timeout:g}s ({monitor.detail or 'no probe answered'})"
                    )
            for name in pending:
                failed.setdefault(name, f"not started within {args.timeout:g}s (waiting for its depends_on)")
            pending.clear()
            break
        time.sleep(0.1)
    for monitor in monitors.values():
        monitor.stop()
    for name, reason in failed.items():
        if name not in reported:
            say(f"{name}: {reason}")
    running = [n for n in order if n in monitors and n not in failed]
    summary = f"up: {len(running)} running ({', '.join(running) or 'none'})"
    if not_run:
        summary += f"; not run: {', '.join(not_run)}"
    if failed:
        summary += f"; FAILED: {', '.join(failed)}"
    if missing:
        summary += f"; MISSING (required): {', '.join(missing)}"
    say(summary)
    if failed or missing:
        if missing:
            say(
                "build them with .ci/build-servers, or leave them out: "
                + " ".join("--without " + name for name in missing)
            )
        say("the services that started are left running: `scripts/stack status`, `scripts/stack down`")
        return 1
    if args.foreground:
        return foreground(services, order)
    return 0


def foreground(services: dict[str, Service], order: list[str]) -> int:
    say("running in the foreground: Ctrl-C (or SIGTERM) stops the stack")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    watched = {name: running_record(name) for name in order}
    while not stop.wait(1.0):
        for name, record in list(watched.items()):
            if record and not alive(record):
                say(f"{name}: exited; last lines of {_rel(log_path(name))}:\n" + _tail(log_path(name)))
                watched[name] = None
    return down(argparse.Namespace(volumes=False))


def _signal_tree(pid: int, sig: int) -> None:
    for member in [pid, *session_members(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, sig)


def down(args: argparse.Namespace) -> int:
    state = state_dir()
    try:
        order = start_order(load_compose())
    except (StackError, OSError, yaml.YAMLError):
        order = []
    recorded = sorted(
        path.name.removesuffix(".json")
        for path in (state / "run").glob("*.json")
        if not path.name.endswith(".spec.json")
    )
    names = [n for n in reversed(order) if n in recorded] + [n for n in recorded if n not in order]
    problems = 0
    services = {}
    with contextlib.suppress(StackError, OSError, yaml.YAMLError):
        services = load_compose()
    for name in names:
        try:
            record = json.loads(pid_path(name).read_text())
        except (OSError, ValueError):
            pid_path(name).unlink(missing_ok=True)
            continue
        pid = int(record["pid"])
        if not alive(record):
            # Processes still in the session of a leader that is gone are the service's (the kernel
            # keeps a pid from reuse while a session or group holds it); a reused pid is not touched.
            reused = _proc_stat(pid) is not None and _proc_stat(pid)[2] != "Z"
            leftovers = session_members(pid) if record.get("start") and not reused else []
            for member in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(member, signal.SIGKILL)
            say(
                f"{name}: was not running"
                + (f" (killed {len(leftovers)} leftover processes)" if leftovers else "")
            )
        else:
            service = services.get(name)
            grace = service.stop_grace if service else STOP_GRACE
            began = time.monotonic()
            _signal_tree(pid, service.stop_signal if service else signal.SIGTERM)
            while time.monotonic() - began < grace and (alive(record) or session_members(pid)):
                time.sleep(0.05)
            how = "stopped"
            if alive(record) or session_members(pid):
                _signal_tree(pid, signal.SIGKILL)
                how = f"killed (still running {grace:g}s after SIGTERM)"
                kill_deadline = time.monotonic() + 5
                while (alive(record) or session_members(pid)) and time.monotonic() < kill_deadline:
                    time.sleep(0.05)
            if alive(record) or session_members(pid):
                say(f"{name}: pid {pid} did not stop")
                problems += 1
                continue
            say(f"{name}: {how} (pid {pid}, {time.monotonic() - began:.1f}s)")
        pid_path(name).unlink(missing_ok=True)
        for extra in (".spec.json", ".hosts"):
            (state / "run" / f"{name}{extra}").unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            (state / "roots" / name).rmdir()  # the mount point; its tmpfs went with the namespace
    if not names:
        say("down: nothing was running")
    if args.volumes and (state / "volumes").is_dir():
        shutil.rmtree(state / "volumes")
        say(f"down: removed the volumes in {_rel(state / 'volumes')}")
    return 1 if problems else 0


def status(args: argparse.Namespace) -> int:
    services = load_compose()
    rows = []
    for name in start_order(services):
        service = services[name]
        record = running_record(name)
        row: dict[str, Any] = {
            "service": name,
            "state": "stopped",
            "pid": None,
            "ports": [str(port) for port in service.ports],
            "detail": "",
            "log": str(log_path(name)),
        }
        if record:
            row["pid"] = record["pid"]
            if service.healthcheck:
                healthy, detail = probe(service, record)
                row["state"], row["detail"] = ("healthy" if healthy else "unhealthy"), detail
            else:
                row["state"] = "running"
                row["detail"] = "no healthcheck in compose"
            silent = [p for p in service.ports if not listeners(p.container)]
            if silent:
                row["detail"] += "; not listening on " + ", ".join(str(p.container) for p in silent)
        else:
            runnable = find_runnable(service)
            if runnable.binary is None:
                row["state"], row["detail"] = "unavailable", runnable.reason
            elif pid_path(name).exists():
                row["state"], row["detail"] = "exited", f"see {_rel(log_path(name))}"
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'SERVICE':<15} {'STATE':<12} {'PID':<8} {'PORTS':<34} DETAIL")
    for row in rows:
        print(
            f"{row['service']:<15} {row['state']:<12} {row['pid'] or '-'!s:<8} "
            f"{', '.join(row['ports']) or '-':<34} {row['detail']}"
        )
    return 0


def _rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_enter"]:  # internal: inside the service's new mount namespace
        enter(argv[1])
        return 0
    parser = argparse.ArgumentParser(
        prog="scripts/stack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up_parser = commands.add_parser(
        "up", help="start the services (and their depends_on), wait until healthy"
    )
    up_parser.add_argument("services", nargs="*", metavar="SERVICE")
    up_parser.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="NAME",
        help="do not run NAME; depends_on it is waived with a notice",
    )
    up_parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds for everything to be healthy (default: %(default)g)",
    )
    up_parser.add_argument("--all", action="store_true", help="fail if a service cannot run here")
    up_parser.add_argument(
        "--foreground", action="store_true", help="stay in the foreground; Ctrl-C stops the stack"
    )
    down_parser = commands.add_parser("down", help="stop what `up` started")
    down_parser.add_argument("--volumes", "-v", action="store_true", help="also delete the named volumes")
    status_parser = commands.add_parser("status", help="each service: running/healthy/stopped/unavailable")
    status_parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        return {"up": up, "down": down, "status": status}[args.command](args)
    except StackError as error:
        say(f"error: {error}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
