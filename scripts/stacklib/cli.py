"""scripts/stack's commands: up, down, status."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import threading
from typing import Any

import yaml

from . import __doc__ as HELP
from . import compose, health, images, processes, sandbox
from .compose import Service, StackError
from .report import rel, say, tail
from .scheduler import FAILED, LEFT_OUT, NOT_RUN, UNAVAILABLE, WAITING, Scheduler, Unit

DEFAULT_TIMEOUT = 300.0


# -- up ------------------------------------------------------------------------------------------------


def _unit(service: Service, without: list[str]) -> Unit:
    """A wanted service: left out, unavailable here (and why), found running, or waiting to start."""
    if service.name in without:
        return Unit(service, LEFT_OUT, "left out with --without")
    runnable = images.find_runnable(service)
    if runnable.binary is None:
        needed = " (required: this machine builds it)" if images.required(service) else ""
        say(f"{service.name}: unavailable{needed} – {runnable.reason}")
        return Unit(service, UNAVAILABLE, runnable.reason)
    if runnable.warning:
        say(f"{service.name}: warning – {runnable.warning}")
    return Unit(
        service,
        WAITING,
        launch=images.launch(service, runnable),
        record=processes.running_record(service.name),
    )


def _plan(services: dict[str, Service], args: argparse.Namespace) -> dict[str, Unit]:
    unknown = [name for name in [*args.services, *args.without] if name not in services]
    if unknown:
        raise StackError(f"no such service: {', '.join(unknown)} (services: {', '.join(services)})")
    order = compose.start_order(services)
    wanted = compose.with_dependencies(services, args.services or order)
    units = {name: _unit(services[name], args.without) for name in order if name in wanted}
    unavailable = [name for name, unit in units.items() if unit.state == UNAVAILABLE]
    if args.all and unavailable:
        raise StackError(f"--all: {', '.join(unavailable)} cannot run here")
    return units


def _check_ports(units: dict[str, Unit]) -> None:
    """Refuse (before starting anything) a port mapping that needs translation, or a port in use."""
    run = [unit for unit in units.values() if unit.state not in NOT_RUN]
    for unit in run:
        for port in unit.service.ports:
            if port.protocol != "tcp":
                raise StackError(f"{unit.name}: only tcp ports are supported here, not {port.protocol}")
            if port.host != port.container:
                raise StackError(
                    f"{unit.name}: port {port.host_ip}:{port.host}:{port.container} needs port translation; "
                    "the services share the host's network here, so a published port must equal its container port"
                )
    for unit in run:
        for port in unit.service.ports if unit.record is None else []:
            if why := processes.port_taken(port.container):
                raise StackError(f"{unit.name}: port {port.container} {why}; nothing was started")


def _notices(units: dict[str, Unit]) -> None:
    for unit in units.values():
        for dep, condition in unit.service.depends_on.items():
            if unit.state not in NOT_RUN and units[dep].state in NOT_RUN:
                why = "unavailable" if units[dep].state == UNAVAILABLE else "left out with --without"
                say(f"notice: {unit.name} depends_on {dep} ({condition}): waived, {dep} is not run ({why})")


def _summary(units: dict[str, Unit]) -> int:
    for unit in units.values():
        if unit.state == FAILED and not unit.reported:
            say(f"{unit.name}: {unit.detail}")
    names: dict[str, list[str]] = {"running": [], "not run": [], "FAILED": [], "MISSING (required)": []}
    for name, unit in units.items():
        group = "not run" if unit.state in NOT_RUN else "FAILED" if unit.state == FAILED else "running"
        names[group].append(name)
        if unit.state == UNAVAILABLE and images.required(unit.service):
            names["MISSING (required)"].append(name)
    running = names.pop("running")
    parts = [f"up: {len(running)} running ({', '.join(running) or 'none'})"]
    say("; ".join(parts + [f"{label}: {', '.join(listed)}" for label, listed in names.items() if listed]))
    if names["MISSING (required)"]:
        leave_out = " ".join(f"--without {name}" for name in names["MISSING (required)"])
        say(f"build them with .ci/build-servers, or leave them out: {leave_out}")
    if names["FAILED"] or names["MISSING (required)"]:
        say("the services that started are left running: `scripts/stack status`, `scripts/stack down`")
        return 1
    return 0


def up(args: argparse.Namespace) -> int:
    bwrap = sandbox.find_bwrap()
    sandbox.check(bwrap)
    services = compose.load()
    units = _plan(services, args)
    _check_ports(units)
    _notices(units)
    state = processes.state_dir()
    (state / "run").mkdir(parents=True, exist_ok=True)
    (state / "run" / "hosts").write_text(sandbox.hosts_file(list(services)))
    Scheduler(units, bwrap, state).run(args.timeout)
    status = _summary(units)
    return foreground(list(units)) if status == 0 and args.foreground else status


def foreground(order: list[str]) -> int:
    say("running in the foreground: Ctrl-C (or SIGTERM) stops the stack")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    watched = {name: processes.running_record(name) for name in order}
    while not stop.wait(1.0):
        for name, record in list(watched.items()):
            if record and not processes.alive(record):
                say(
                    f"{name}: exited; last lines of {rel(processes.log_path(name))}:\n"
                    + tail(processes.log_path(name))
                )
                watched[name] = None
    return down(argparse.Namespace(volumes=False))


# -- down ----------------------------------------------------------------------------------------------


def _stop(name: str, service: Service | None) -> bool:
    """Stop one recorded service; False if it would not stop."""
    record = processes.read_record(name)
    if record is None:
        processes.pid_path(name).unlink(missing_ok=True)
        return True
    if not processes.alive(record):
        killed = processes.kill_leftovers(record)
        say(f"{name}: was not running" + (f" (killed {killed} leftover processes)" if killed else ""))
    else:
        how = processes.stop(
            record,
            service.stop_signal if service else signal.SIGTERM,
            service.stop_grace if service else compose.STOP_GRACE,
        )
        if how is None:
            say(f"{name}: pid {record['pid']} did not stop")
            return False
        say(f"{name}: {how}")
    processes.pid_path(name).unlink(missing_ok=True)
    state = processes.state_dir()
    for folder in (state / "layers" / name, state / "files" / name):
        shutil.rmtree(folder, ignore_errors=True)
    return True


def down(args: argparse.Namespace) -> int:
    services: dict[str, Service] = {}
    with contextlib.suppress(StackError, OSError, yaml.YAMLError):
        services = compose.load()
    order = compose.start_order(services) if services else []
    recorded = processes.recorded()
    names = [n for n in reversed(order) if n in recorded] + [n for n in recorded if n not in order]
    stopped = [_stop(name, services.get(name)) for name in names]
    state = processes.state_dir()
    if not names:
        say("down: nothing was running")
    if not processes.recorded():
        (state / "run" / "hosts").unlink(missing_ok=True)
    if args.volumes and (state / "volumes").is_dir():
        shutil.rmtree(state / "volumes")
        say(f"down: removed the volumes in {rel(state / 'volumes')}")
    return 0 if all(stopped) else 1


# -- status --------------------------------------------------------------------------------------------


def _probe_once(service: Service) -> tuple[str, str]:
    assert service.healthcheck is not None
    runnable = images.find_runnable(service)
    if runnable.binary is None:
        return "unhealthy", f"cannot probe: {runnable.reason}"
    try:
        bwrap = sandbox.find_bwrap()
    except StackError as error:
        return "unhealthy", f"cannot probe: {error}"
    launch = images.launch(service, runnable)
    healthy, detail = health.probe(
        service.healthcheck, launch, bwrap, processes.state_dir(), service.name
    ).wait()
    return ("healthy" if healthy else "unhealthy"), detail


def _row(service: Service) -> dict[str, Any]:
    name = service.name
    row: dict[str, Any] = {
        "service": name,
        "state": "stopped",
        "pid": None,
        "ports": [str(port) for port in service.ports],
        "detail": "",
        "log": str(processes.log_path(name)),
    }
    record = processes.running_record(name)
    if record:
        row["pid"] = record["pid"]
        if service.healthcheck:
            row["state"], row["detail"] = _probe_once(service)
        else:
            row["state"], row["detail"] = "running", "no healthcheck in compose"
        silent = [str(port.container) for port in service.ports if not processes.listeners(port.container)]
        row["detail"] += "; not listening on " + ", ".join(silent) if silent else ""
    elif (runnable := images.find_runnable(service)).binary is None:
        row["state"], row["detail"] = "unavailable", runnable.reason
    elif processes.pid_path(name).exists():
        row["state"], row["detail"] = "exited", f"see {rel(processes.log_path(name))}"
    return row


def status(args: argparse.Namespace) -> int:
    services = compose.load()
    rows = [_row(services[name]) for name in compose.start_order(services)]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'SERVICE':<15} {'STATE':<12} {'PID':<8} {'PORTS':<34} DETAIL")
    for row in rows:
        ports = ", ".join(row["ports"]) or "-"
        print(f"{row['service']:<15} {row['state']:<12} {row['pid'] or '-'!s:<8} {ports:<34} {row['detail']}")
    return 0


# -- arguments -----------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/stack", description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return int({"up": up, "down": down, "status": status}[args.command](args))
    except StackError as error:
        say(f"error: {error}")
        return 2
