"""`up`'s scheduler: every wanted service has a state, and one loop advances them – a waiting service
starts once its depends_on conditions hold, a started one becomes healthy (its healthcheck passes),
running (no healthcheck: its server answers, or it stays up) or failed – until every service has
settled or the deadline has passed."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import health, processes, sandbox, servers
from .compose import Service, StackError
from .images import Launch
from .report import rel, say, tail

WAITING = "waiting"  # for its depends_on
STARTING = "starting"  # started (or found running), neither healthy nor running yet
HEALTHY = "healthy"
RUNNING = "running"
FAILED = "failed"
UNAVAILABLE = "unavailable"  # no binary here
LEFT_OUT = "left out"  # --without
NOT_RUN = (UNAVAILABLE, LEFT_OUT)
RUNNING_AFTER = 3.0  # seconds a service with neither healthcheck nor known server must stay up
TICK = 0.1


@dataclass
class Unit:
    """One wanted service and where it is."""

    service: Service
    state: str
    detail: str = ""
    launch: Launch | None = None
    record: dict[str, Any] | None = None
    process: subprocess.Popen[bytes] | None = None  # started by this `up`: its exit code can be told
    health: health.Health | None = None
    started_at: float = 0.0
    reported: bool = False

    @property
    def name(self) -> str:
        return self.service.name


class Scheduler:
    def __init__(self, units: dict[str, Unit], bwrap: str, state: Path) -> None:
        self.units, self.bwrap, self.state = units, bwrap, state

    def run(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for unit in self.units.values():
            if unit.record:  # found running: its healthcheck's first probe at once
                say(f"{unit.name}: already running (pid {unit.record['pid']})")
                self._watch(unit, unit.record, None)
        while any(unit.state in (WAITING, STARTING) for unit in self.units.values()):
            if time.monotonic() > deadline:
                self._expire(timeout)
                break
            for unit in self.units.values():  # in start order: a dependency settled now counts now
                if unit.state == WAITING:
                    self._schedule(unit)
                elif unit.state == STARTING:
                    self._check(unit)
            time.sleep(TICK)
        for unit in self.units.values():
            if unit.health:
                unit.health.cancel()

    def _schedule(self, unit: Unit) -> None:
        deps = {
            dep: condition
            for dep, condition in unit.service.depends_on.items()
            if self.units[dep].state not in NOT_RUN  # waived: the dependency is not run
        }
        broken = [dep for dep in deps if self.units[dep].state == FAILED]
        if broken:
            self._fail(unit, f"not started: {', '.join(broken)} failed")
        elif all(_satisfied(condition, self.units[dep].state) for dep, condition in deps.items()):
            self._start(unit)

    def _start(self, unit: Unit) -> None:
        assert unit.launch is not None
        try:
            sandbox.prepare(unit.launch, self.state, unit.name)
            argv = sandbox.argv(self.bwrap, unit.launch, self.state, unit.name, unit.launch.argv)
            ports = [str(port) for port in unit.service.ports]
            record, process = processes.spawn(
                unit.name, argv, unit.launch.env, ports=ports, argv=unit.launch.argv
            )
        except (StackError, OSError) as error:
            self._fail(unit, f"could not start: {error}")
            return
        log = rel(processes.log_path(unit.name))
        say(f"{unit.name}: started (pid {record['pid']}; {', '.join(ports) or 'no ports'}; log {log})")
        self._watch(unit, record, process)

    def _watch(self, unit: Unit, record: dict[str, Any], process: subprocess.Popen[bytes] | None) -> None:
        unit.state, unit.record, unit.process, unit.started_at = STARTING, record, process, time.monotonic()
        check, launch = unit.service.healthcheck, unit.launch
        if check and launch:
            unit.health = health.Health(
                check, lambda: health.probe(check, launch, self.bwrap, self.state, unit.name), process is None
            )

    def _check(self, unit: Unit) -> None:
        assert unit.record is not None
        if not processes.alive(unit.record):
            self._fail(unit, f"exited – {_ended(unit.process)}", log=True)
        elif unit.health:
            state = unit.health.poll()
            if state == "healthy":
                elapsed = time.monotonic() - unit.started_at
                self._settle(unit, HEALTHY, f"healthy after {elapsed:.1f}s ({unit.health.detail})")
            elif state == "unhealthy":
                self._fail(unit, f"unhealthy – {unit.health.detail}", log=True)
        elif (url := _ready_url(unit.service)) is not None:
            if servers.answers(url, timeout=1.0):
                self._settle(unit, RUNNING, f"running (no healthcheck in compose; {url} answers)")
        elif time.monotonic() - unit.started_at >= RUNNING_AFTER:
            self._settle(unit, RUNNING, f"running (no healthcheck in compose; up for {RUNNING_AFTER:g}s)")

    def _settle(self, unit: Unit, state: str, message: str) -> None:
        unit.state, unit.detail, unit.reported = state, message, True
        say(f"{unit.name}: {message}")

    def _fail(self, unit: Unit, reason: str, log: bool = False) -> None:
        unit.state, unit.detail = FAILED, reason
        if log:  # a process that ran: what it said last
            path = processes.log_path(unit.name)
            say(f"{unit.name}: {reason}; last lines of {rel(path)}:\n{tail(path)}")
            unit.reported = True

    def _expire(self, timeout: float) -> None:
        for unit in self.units.values():
            if unit.state == STARTING:
                detail = (unit.health.detail if unit.health else "") or "no probe answered"
                self._fail(unit, f"not healthy within {timeout:g}s ({detail})")
            elif unit.state == WAITING:
                self._fail(unit, f"not started within {timeout:g}s (waiting for its depends_on)")


def _satisfied(condition: str, state: str) -> bool:
    return state == HEALTHY if condition == "service_healthy" else state in (STARTING, RUNNING, HEALTHY)


def _ready_url(service: Service) -> str | None:
    """A pinned server's readiness endpoint, for a service compose gives no healthcheck (the Collector)."""
    pinned = servers.PINNED.get(service.image_name)
    return f"http://127.0.0.1:{pinned.ready_port}{pinned.ready_path}" if pinned else None


def _ended(process: subprocess.Popen[bytes] | None) -> str:
    code = process.poll() if process else None
    if code is None:
        return "the process ended"
    return (
        f"the process exited with code {code}" if code >= 0 else f"the process was killed by signal {-code}"
    )
