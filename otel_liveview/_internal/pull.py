"""Pull mode: a Prometheus `/metrics` endpoint (prometheus-client) for stacks without a Collector.

Every process of an experiment writes a snapshot of its tables into a shared folder once per export
interval; whichever process holds the port serves all fresh snapshots, so one scrape target shows
every process. Series carry `job` and `instance` as the push path gives them (scrape with
`honor_labels: true`). A process that exits stops appearing: its snapshot is dropped when its pid is
gone or when it is older than three intervals. If the serving process exits, the next process to
write a snapshot takes the port over.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import Metric

from otel_liveview._internal.config import Settings
from otel_liveview._internal.tables import TABLES

_log = logging.getLogger("otel_liveview")
STALE_INTERVALS = 3
# Prometheus name -> HELP: the instruments' own descriptions, as the push path carries them.
HELP = {
    **{name.replace(".", "_"): TABLES.description(name) for name in TABLES.gauges()},
    **{name.replace(".", "_"): description for name, (description, _) in TABLES.counters().items()},
}


def snapshot_dir(port: int) -> Path:
    """Where the processes of the experiment serving on `port` leave their snapshots."""
    folder = os.environ.get("OTEL_LIVEVIEW_PROMETHEUS_DIR") or str(
        Path(tempfile.gettempdir()) / f"otel-liveview-{port}"
    )
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def job_of(resource: Resource) -> str:
    attributes = resource.attributes
    name = str(attributes.get("service.name", ""))
    namespace = attributes.get("service.namespace")
    return f"{namespace}/{name}" if namespace else name


def snapshot(job: str, instance: str, identity: dict[str, str] | None = None) -> dict[str, Any]:
    """This process's tables, in Prometheus names; `identity` (its launch's run, rank and node) is
    on every series, as on the OTLP points."""
    gauges = {
        name.replace(".", "_"): [[dict(key), value] for key, value in table.items()]
        for name, table in TABLES.gauges().items()
    }
    counters = {
        name.replace(".", "_"): [[dict(key), value] for key, value in family.items()]
        for name, (_, family) in TABLES.counters().items()
    }
    return {
        "pid": os.getpid(),
        "job": job,
        "instance": instance,
        "identity": {name.replace(".", "_"): value for name, value in (identity or {}).items()},
        "time": time.time(),
        "gauges": gauges,
        "counters": counters,
    }


class SnapshotCollector:
    """A prometheus-client collector over every fresh snapshot in the folder."""

    def __init__(self, folder: Path, max_age: float) -> None:
        self.folder = folder
        self.max_age = max_age

    def snapshots(self) -> Iterator[dict[str, Any]]:
        now = time.time()
        for path in self.folder.glob("*.json"):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):  # being replaced right now, or gone
                continue
            if now - data["time"] > self.max_age or not _alive(data["pid"]):
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            yield data

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for data in self.snapshots():
            extra = {**data.get("identity", {}), "job": data["job"], "instance": data["instance"]}
            for kind, series_by_name in (("gauge", data["gauges"]), ("counter", data["counters"])):
                for name, series in series_by_name.items():
                    family = families.get(name)
                    if family is None:
                        family = families[name] = Metric(name, HELP.get(name, name), kind)
                    sample = name + "_total" if kind == "counter" else name
                    for labels, value in series:
                        family.add_sample(sample, {**labels, **extra}, value)
        yield from families.values()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PullEndpoint:
    """Writes this process's snapshot every interval and serves the port when it is free."""

    def __init__(
        self, settings: Settings, port: int, job: str, instance: str, identity: dict[str, str]
    ) -> None:
        self.port = port
        self.addr = settings.prometheus_addr
        self.interval = settings.metric_export_interval
        self.folder = snapshot_dir(self.port)
        self.path = self.folder / f"{instance}.json"
        self.job, self.instance, self.identity = job, instance, identity
        self.server: Any = None
        self._pid = os.getpid()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otel-liveview-pull", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while os.getpid() == self._pid and not self._stop.is_set():
            self.write()
            if self.server is None:
                self.serve()
            self._stop.wait(self.interval)

    def write(self) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(snapshot(self.job, self.instance, self.identity)))
        temporary.replace(self.path)  # atomic: a scrape never reads half a file

    def serve(self) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(self.folder, STALE_INTERVALS * max(self.interval, 1.0)))
        try:
            self.server, _ = start_http_server(self.port, addr=self.addr, registry=registry)
        except OSError:  # another process of the experiment serves it
            return
        _log.info("otel-liveview serves /metrics on %s:%d", self.addr, self.port)

    def release_after_fork(self) -> None:
        """In a forked child: close the inherited listening socket, or the port outlives the parent."""
        if self.server is not None:
            self.server.socket.close()
            self.server = None

    def close(self) -> None:
        """Stop serving and remove this process's snapshot (at shutdown and at exit)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)  # a write in progress must not put the file back
        with contextlib.suppress(OSError):
            self.path.unlink()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def start(settings: Settings, resource: Resource, instance: str, identity: dict[str, str]) -> PullEndpoint:
    """Pull mode for a pipeline that starts with OTEL_LIVEVIEW_PROMETHEUS_PORT set; `identity` (the
    launch's run, rank and node) goes on every series."""
    if settings.prometheus_port is None:
        raise ValueError("pull mode needs OTEL_LIVEVIEW_PROMETHEUS_PORT")
    return PullEndpoint(settings, settings.prometheus_port, job_of(resource), instance, identity)
