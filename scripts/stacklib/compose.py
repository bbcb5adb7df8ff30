"""Reading docker-compose.yml: services, their ports, mounts, healthchecks and depends_on, with
compose's ${VAR} interpolation (from the shell or .env), and the order to start them in."""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
STOP_GRACE = 10.0  # compose's default stop_grace_period
CONDITIONS = ("service_started", "service_healthy")


class StackError(Exception):
    """A problem with the compose file or the machine that stops a command before it starts anything."""


# -- values ----------------------------------------------------------------------------------------

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


def _substitute(expression: str, variables: dict[str, str]) -> str:
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


def interpolate(text: str, variables: dict[str, str]) -> str:
    """compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, $$."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return _substitute(match.group("braced") or match.group("plain") or "", variables)

    return _VAR.sub(replace, text)


def duration(value: Any, default: float) -> float:
    """compose durations: 10s, 1m30s, 500ms, 1h."""
    if value is None:
        return default
    if isinstance(value, (int, float)):
        return float(value)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(value))
    if not parts or "".join(a + b for a, b in parts) != str(value):
        raise StackError(f"cannot read duration {value!r}")
    return sum(float(amount) * units[unit] for amount, unit in parts)


# -- services ----------------------------------------------------------------------------------------


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
    test: list[str]  # argv, run in a sandbox like the service's
    interval: float
    timeout: float
    retries: int
    start_period: float


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


def _port(name: str, entry: Any) -> Port:
    if isinstance(entry, dict):
        target, published = int(entry["target"]), entry.get("published")
        if published is None:
            raise StackError(f"{name}: port {target} has no published port (compose would pick one)")
        return Port(str(entry.get("host_ip", "")), int(published), target, str(entry.get("protocol", "tcp")))
    text, _, protocol = str(entry).partition("/")
    parts = text.rsplit(":", 2) if text.count(":") >= 2 else text.split(":")
    if len(parts) == 1:
        raise StackError(f"{name}: port {entry!r} lets Docker choose the host port; not supported here")
    host_ip = parts[0] if len(parts) == 3 else ""
    host, container = parts[-2], parts[-1]
    if "-" in host or "-" in container:
        raise StackError(f"{name}: port ranges ({entry!r}) are not supported here")
    return Port(host_ip.strip("[]"), int(host), int(container), protocol or "tcp")


def _mount(name: str, entry: Any, named: set[str]) -> Mount:
    if isinstance(entry, dict):
        source, target = str(entry.get("source", "")), str(entry["target"])
        read_only, kind = bool(entry.get("read_only")), entry.get("type", "volume")
    else:
        fields = str(entry).split(":")
        if len(fields) == 1:
            raise StackError(f"{name}: anonymous volume {entry!r} is not supported here")
        source, target = fields[0], fields[1]
        read_only = "ro" in (fields[2].split(",") if len(fields) > 2 else [])
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
    if kind == "bind":
        path = Path(source).expanduser()
        return Mount(str(path if path.is_absolute() else (ROOT / path).resolve()), target, read_only, False)
    if kind != "volume":
        raise StackError(f"{name}: mount type {kind!r} is not supported here")
    if source not in named:
        raise StackError(f"{name}: volume {source!r} is not declared under the top-level volumes:")
    return Mount(source, target, read_only, True)


def _healthcheck(name: str, spec: dict[str, Any] | None) -> Healthcheck | None:
    if not spec or spec.get("disable"):
        return None
    test = spec.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if not test or test[0] == "NONE":
        return None
    if test[0] not in ("CMD", "CMD-SHELL"):
        raise StackError(f"{name}: healthcheck test {test!r} must start with CMD, CMD-SHELL or NONE")
    argv = [str(part) for part in test[1:]] if test[0] == "CMD" else ["/bin/sh", "-c", str(test[1])]
    return Healthcheck(
        argv,
        duration(spec.get("interval"), 30.0),
        duration(spec.get("timeout"), 30.0),
        int(spec.get("retries", 3)),
        duration(spec.get("start_period"), 0.0),
    )


def _mapping(value: Any, pairs: bool) -> dict[str, Any]:
    """compose's two spellings of a mapping: a dict, or a list (of KEY=VALUE `pairs`, or of keys)."""
    if isinstance(value, list):
        return (
            dict(str(item).partition("=")[::2] for item in value) if pairs else {item: {} for item in value}
        )
    return dict(value or {})


def _service(name: str, spec: dict[str, Any], named: set[str]) -> Service:
    command = spec.get("command")
    build = spec.get("build")
    stop_signal = str(spec.get("stop_signal", "SIGTERM")).removeprefix("SIG")
    return Service(
        name=name,
        image=spec.get("image"),
        build=build if isinstance(build, dict) else ({"context": build} if build else None),
        command=(command.split() if isinstance(command, str) else [str(part) for part in command])
        if command is not None
        else None,
        environment={
            str(k): "" if v is None else str(v) for k, v in _mapping(spec.get("environment"), True).items()
        },
        ports=[_port(name, entry) for entry in spec.get("ports") or []],
        mounts=[_mount(name, entry, named) for entry in spec.get("volumes") or []],
        depends_on={
            dep: (cfg or {}).get("condition", "service_started")
            for dep, cfg in _mapping(spec.get("depends_on"), False).items()
        },
        healthcheck=_healthcheck(name, spec.get("healthcheck")),
        stop_signal=int(getattr(signal, "SIG" + stop_signal)),
        stop_grace=duration(spec.get("stop_grace_period"), STOP_GRACE),
    )


def _check_depends(services: dict[str, Service]) -> None:
    for service in services.values():
        for dep, condition in service.depends_on.items():
            if dep not in services:
                raise StackError(f"{service.name} depends on {dep}, which is not a service")
            if condition not in CONDITIONS:
                raise StackError(f"{service.name}: depends_on condition {condition!r} is not supported here")
            if condition == "service_healthy" and services[dep].healthcheck is None:
                raise StackError(
                    f"{service.name} waits for {dep} to be healthy, but {dep} has no healthcheck"
                )


def _walk(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, variables)
    if isinstance(value, list):
        return [_walk(item, variables) for item in value]
    if isinstance(value, dict):
        return {key: _walk(item, variables) for key, item in value.items()}
    return value


def load(path: Path = COMPOSE_FILE) -> dict[str, Service]:
    """The services of `path`, interpolated with the shell's variables over those of .env beside it."""
    variables = {**dotenv(path.parent / ".env"), **os.environ}
    document = _walk(yaml.safe_load(path.read_text()), variables)
    named = set((document.get("volumes") or {}).keys())
    services = {name: _service(name, spec, named) for name, spec in (document.get("services") or {}).items()}
    _check_depends(services)
    return services


def start_order(services: dict[str, Service]) -> list[str]:
    """Every service after those it depends on, otherwise in the file's order."""
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


def with_dependencies(services: dict[str, Service], names: list[str]) -> set[str]:
    """`names` and everything they depend on, directly or not."""
    wanted: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name not in wanted:
            wanted.add(name)
            pending.extend(services[name].depends_on)
    return wanted
