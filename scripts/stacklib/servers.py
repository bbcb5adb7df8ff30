"""The servers docker-compose.yml pins – the Collector, Prometheus 3 and Alertmanager – as scripts/stack
and the test suite (tests/support/servers.py) both start them: where .ci/build-servers puts each
binary (by the tag compose pins), its command line (compose's `command`, with the configuration file,
data folder and listen address replaced where a caller runs it elsewhere), and when it is ready (its
readiness endpoint answers 200)."""

from __future__ import annotations

import functools
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import compose

# Loopback requests must never go through a proxy taken from the environment.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Pinned:
    """One pinned server: its compose service and image, its build, the flags that set its files and
    address, and its readiness endpoint (port with the shipped configuration, path)."""

    service: str
    image: str
    build: str  # under servers_dir()/build; {tag} is the image tag docker-compose.yml pins
    config_flag: str
    data_flag: str | None
    listen_flag: str | None  # None: the listen addresses are in its configuration
    ready_port: int
    ready_path: str

    @property
    def tag(self) -> str:
        return compose_services()[self.service].tag

    @property
    def flags(self) -> list[str]:
        """The `command` docker-compose.yml gives the service."""
        return list(compose_services()[self.service].command or [])

    def build_path(self, name: str | None = None) -> str:
        """Where .ci/build-servers puts this server (or `name`, e.g. promtool, beside it), under servers_dir()."""
        path = PurePosixPath("build", self.build.format(tag=self.tag))
        return str(path.with_name(name) if name else path)


COLLECTOR = Pinned(
    "otel-collector",
    "otel/opentelemetry-collector-contrib",
    "otelcol-{tag}/otelcol-liveview",
    "--config",
    None,
    None,
    13133,  # the health_check extension of deploy/otel-collector/config.yaml
    "/",
)
PROMETHEUS = Pinned(
    "prometheus",
    "prom/prometheus",
    "prometheus-{tag}/prometheus",
    "--config.file",
    "--storage.tsdb.path",
    "--web.listen-address",
    9090,
    "/-/ready",
)
ALERTMANAGER = Pinned(
    "alertmanager",
    "prom/alertmanager",
    "alertmanager-{tag}/alertmanager",
    "--config.file",
    "--storage.path",
    "--web.listen-address",
    9093,
    "/-/ready",
)
PINNED = {pinned.image: pinned for pinned in (COLLECTOR, PROMETHEUS, ALERTMANAGER)}


def servers_dir() -> Path:
    """Where .ci/fetch-servers and .ci/build-servers put the binaries (LIVEVIEW_SERVERS_DIR)."""
    return Path(os.environ.get("LIVEVIEW_SERVERS_DIR") or "~/.cache/otel-liveview/servers").expanduser()


@functools.lru_cache(maxsize=1)
def compose_services() -> dict[str, compose.Service]:
    return compose.load()


def command(
    pinned: Pinned,
    binary: str | os.PathLike[str],
    flags: Sequence[str],
    *,
    config: str | os.PathLike[str] | None = None,
    data: str | os.PathLike[str] | None = None,
    listen: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """`binary` with `flags` (compose's `command`), its configuration file, data folder and listen
    address set to `config`, `data` and `listen` where given (replacing compose's `--flag=value`, or
    added), then `extra`."""
    replace = {
        flag: os.fspath(value)
        for flag, value in (
            (pinned.config_flag, config),
            (pinned.data_flag, data),
            (pinned.listen_flag, listen),
        )
        if flag and value is not None
    }
    argv = [os.fspath(binary)]
    for flag in flags:
        name = flag.partition("=")[0]
        argv.append(f"{name}={replace.pop(name)}" if name in replace else flag)
    return [*argv, *(f"{flag}={value}" for flag, value in replace.items()), *extra]


def answers(url: str, timeout: float = 2.0) -> bool:
    """GET `url` answers 200."""
    try:
        with _http.open(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def wait_ready(url: str, alive: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `url` until it answers 200 (True), the process is no longer `alive` or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while alive() and time.monotonic() < deadline:
        if answers(url):
            return True
        time.sleep(interval)
    return False
