"""What the images docker-compose.yml names contribute – where the server binary lives, the
entrypoint, working directory, USER and environment – and which local binary stands in for each."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import servers
from .compose import ROOT, Mount, Service

IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GRAFANA_HOME = "/usr/share/grafana"


@dataclass(frozen=True)
class Image:
    """A pinned image: its server binary's path, entrypoint, working directory, USER and more."""

    binary_at: str
    entrypoint: tuple[str, ...]
    workdir: str = "/"
    pinned: servers.Pinned | None = None  # built here by .ci/build-servers
    version_flag: str = "--version"
    env: tuple[tuple[str, str], ...] = ()
    user: tuple[int, int] = (0, 0)  # the image's USER (uid, gid)
    dirs: tuple[str, ...] = ()  # folders the image has, owned by its user
    trailing: tuple[str, ...] = ()  # arguments its entrypoint script puts after the command


IMAGES: dict[str, Image] = {
    servers.COLLECTOR.image: Image(
        "/otelcol-contrib", ("/otelcol-contrib",), pinned=servers.COLLECTOR, user=(10001, 10001)
    ),
    servers.PROMETHEUS.image: Image(
        "/bin/prometheus", ("/bin/prometheus",), "/prometheus", servers.PROMETHEUS, user=(65534, 65534)
    ),
    servers.ALERTMANAGER.image: Image(
        "/bin/alertmanager",
        ("/bin/alertmanager",),
        "/alertmanager",
        servers.ALERTMANAGER,
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
        trailing=(
            "cfg:default.log.mode=console",
            "cfg:default.paths.data=/var/lib/grafana",
            "cfg:default.paths.logs=/var/log/grafana",
            "cfg:default.paths.plugins=/var/lib/grafana/plugins",
            "cfg:default.paths.provisioning=/etc/grafana/provisioning",
        ),
    ),
}


@dataclass
class Runnable:
    """How to run one service here, or why it cannot be."""

    binary: Path | None = None
    reason: str = ""
    extra_binds: list[Mount] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # path in the sandbox -> content
    warning: str = ""


@dataclass
class Launch:
    """What a service runs and in what: its argv, environment and working directory; the binds, files
    and folders of its sandbox, and the user it runs as (None: the host's root as the caller, the demo)."""

    argv: list[str]
    env: dict[str, str]
    workdir: str
    binds: list[Mount] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)
    user: tuple[int, int] | None = None


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
    version, output = tag.lstrip("v"), result.stdout + result.stderr
    if not re.search(rf"(?<![\d.]){re.escape(version)}(?![\d])", output):
        first = output.strip().splitlines()[:1]
        return f"{binary} is not version {version} as compose pins ({first[0] if first else 'no version output'})"
    return ""


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _binary(service: Service, image: Image) -> Runnable:
    variable = env_name(service.name)
    given = os.environ.get(variable)
    if given:
        binary = Path(given).expanduser().resolve()
        if not _executable(binary):
            return Runnable(reason=f"{variable}={given} is not an executable file")
        # A build's folder names its version (the builds carry no version string); a given binary is asked.
        return Runnable(binary, warning=_version_warning(binary, image, service.tag))
    if image.pinned is None:
        return Runnable(
            reason=f"no binary: {service.image} is not built on this machine; "
            f"set {variable}=/path/to/{Path(image.binary_at).name} ({service.tag})"
        )
    binary = servers.servers_dir() / image.pinned.build_path()
    if not _executable(binary):
        return Runnable(
            reason=f"no binary: {binary} is not built (run .ci/build-servers) and {variable} is not set"
        )
    return Runnable(binary)


def _grafana(runnable: Runnable) -> Runnable:
    assert runnable.binary is not None
    home = Path(os.environ.get("LIVEVIEW_STACK_GRAFANA_HOME") or runnable.binary.parent.parent)
    if not (home / "conf" / "defaults.ini").is_file():
        return Runnable(
            reason=f"grafana's home {home} has no conf/defaults.ini; set LIVEVIEW_STACK_GRAFANA_HOME"
        )
    runnable.extra_binds.append(Mount(str(home), GRAFANA_HOME, True, False))
    sample = home / "conf" / "sample.ini"  # the image's /etc/grafana/grafana.ini is this file
    runnable.files["/etc/grafana/grafana.ini"] = sample.read_text() if sample.is_file() else ""
    return runnable


def find_runnable(service: Service) -> Runnable:
    if service.build is not None:
        return _demo_runnable(service)
    image = IMAGES.get(service.image_name)
    if image is None:
        return Runnable(reason=f"image {service.image} is not one scripts/stack knows how to stand in for")
    runnable = _binary(service, image)
    if runnable.binary is not None and service.image_name == "grafana/grafana":
        return _grafana(runnable)
    return runnable


def required(service: Service) -> bool:
    """A service this machine can make a binary for (.ci/build-servers, or the demo's .venv): its
    absence is an error. Loki and Grafana are not built here: without a given binary they are optional."""
    image = IMAGES.get(service.image_name)
    return service.build is not None or bool(image and image.pinned)


def _dockerfile_cmd(service: Service) -> list[str]:
    build = service.build or {}
    dockerfile = ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
    command: list[str] = []
    with contextlib.suppress(OSError):
        for line in dockerfile.read_text().splitlines():
            if line.strip().upper().startswith("CMD "):
                with contextlib.suppress(ValueError):
                    command = [str(part) for part in json.loads(line.strip()[4:])]
    return command


def _demo_runnable(service: Service) -> Runnable:
    command = service.command or _dockerfile_cmd(service)
    if not command:
        return Runnable(reason="its Dockerfile has no CMD in JSON form and the service has no command")
    for bindir in (ROOT / ".venv" / "bin", Path(sys.executable).parent):
        if (bindir / command[0]).is_file():
            return Runnable(bindir / command[0])
    return Runnable(
        reason=f"{command[0]} is not installed: run scripts/test, or python3 -m venv .venv && .venv/bin/pip install -e ."
    )


def launch(service: Service, runnable: Runnable) -> Launch:
    """What `service` runs with `runnable`'s binary: the image's entrypoint and compose's `command`,
    the image's environment under compose's `environment`, in a sandbox with compose's mounts."""
    assert runnable.binary is not None
    env = {"PATH": IMAGE_PATH, "HOSTNAME": service.name, "HOME": "/"}
    if service.build is not None:  # the demo: this checkout's package, on the host's root
        env.update(
            PATH=f"{runnable.binary.parent}:{IMAGE_PATH}",
            HOME=os.environ.get("HOME", "/root"),
            LANG="C.UTF-8",
            PYTHONUNBUFFERED="1",
        )
        command = service.command or _dockerfile_cmd(service)
        return Launch([str(runnable.binary), *command[1:]], {**env, **service.environment}, str(ROOT))
    image = IMAGES[service.image_name]
    if image.pinned:
        argv = servers.command(image.pinned, image.binary_at, service.command or [])
    else:
        argv = [*image.entrypoint, *(service.command or []), *image.trailing]
    return Launch(
        argv,
        {**env, **dict(image.env), **service.environment},
        image.workdir,
        binds=[
            Mount(str(runnable.binary), image.binary_at, True, False),
            *runnable.extra_binds,
            *service.mounts,
        ],
        files=dict(runnable.files),
        dirs=list(image.dirs),
        user=image.user,
    )
