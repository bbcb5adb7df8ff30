"""The services' processes: the state folder (pid files, logs), starting a command in a session of its
own, telling whether it still runs, stopping its whole tree, and who listens on a port."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from .compose import ROOT

KILL_WAIT = 5.0  # seconds to wait for a tree to go after SIGKILL


def state_dir() -> Path:
    configured = os.environ.get("LIVEVIEW_STACK_DIR")
    return Path(configured).expanduser().resolve() if configured else ROOT / ".stack"


def log_path(name: str) -> Path:
    return state_dir() / "logs" / f"{name}.log"


def pid_path(name: str) -> Path:
    return state_dir() / "run" / f"{name}.json"


def recorded() -> list[str]:
    """The services with a pid file."""
    return sorted(path.name.removesuffix(".json") for path in (state_dir() / "run").glob("*.json"))


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields, numbered as in proc(5) from 0 (comm may hold spaces and parentheses)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return [text[: text.index(" ")], "comm", *text[text.rindex(")") + 2 :].split()]


def start_time(pid: int) -> str | None:
    stat = _stat(pid)
    return stat[21] if stat else None


def alive(record: dict[str, Any]) -> bool:
    """The recorded process still runs (same pid and start time; zombies count as gone)."""
    stat = _stat(int(record["pid"]))
    return stat is not None and stat[2] != "Z" and stat[21] == record["start"]


def read_record(name: str) -> dict[str, Any] | None:
    try:
        record: dict[str, Any] = json.loads(pid_path(name).read_text())
    except (OSError, ValueError):
        return None
    return record


def running_record(name: str) -> dict[str, Any] | None:
    record = read_record(name)
    return record if record and alive(record) else None


def session_members(session: int) -> list[int]:
    """Every live process of the session the service's first process leads (the service's tree)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat and stat[5] == str(session) and stat[2] != "Z":
                members.append(int(entry.name))
    return members


def spawn(
    name: str, command: list[str], env: dict[str, str], **details: Any
) -> tuple[dict[str, Any], subprocess.Popen[bytes]]:
    """Start `command` in a session and process group of its own (so `stop` reaches the whole tree), its
    output in the service's log, and write its pid file (with `details`)."""
    for folder in ("run", "logs"):
        (state_dir() / folder).mkdir(parents=True, exist_ok=True)
    with log_path(name).open("wb") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    # Popen returns once the child has run exec: its /proc entry is there until it is reaped.
    record = {
        "service": name,
        "pid": process.pid,
        "start": start_time(process.pid),
        "log": str(log_path(name)),
    }
    record.update(details, started_at=time.time())
    pid_path(name).write_text(json.dumps(record))
    return record, process


def _signal_tree(pid: int, sig: int) -> None:
    for member in [pid, *session_members(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, sig)


def _wait_gone(record: dict[str, Any], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(record) or session_members(int(record["pid"])):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop(record: dict[str, Any], sig: int, grace: float) -> str | None:
    """Signal the tree `sig`, SIGKILL it after `grace` seconds; how it went, or None if it is still there."""
    began = time.monotonic()
    _signal_tree(int(record["pid"]), sig)
    how = "stopped"
    if not _wait_gone(record, grace):
        _signal_tree(int(record["pid"]), signal.SIGKILL)
        how = f"killed (still running {grace:g}s after SIGTERM)"
        if not _wait_gone(record, KILL_WAIT):
            return None
    return f"{how} (pid {record['pid']}, {time.monotonic() - began:.1f}s)"


def kill_leftovers(record: dict[str, Any]) -> int:
    """SIGKILL what is left of a tree whose first process is gone; how many there were. The kernel keeps
    a pid from reuse while a session holds it; a pid reused by a new process is not touched."""
    pid = int(record["pid"])
    stat = _stat(pid)
    if not record.get("start") or (stat is not None and stat[2] != "Z"):
        return 0
    leftovers = session_members(pid)
    for member in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    return len(leftovers)


def _socket_inodes(process: Path) -> set[str]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in (process / "fd").iterdir():
            with contextlib.suppress(OSError):
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    return inodes


def listeners(port: int) -> list[str]:
    """Who listens on TCP `port` on any address: ["pid 123 (prometheus)", ...] or ["an unknown process"]."""
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
        if entry.name.isdigit() and _socket_inodes(entry) & inodes:
            with contextlib.suppress(OSError):
                owners.append(f"pid {entry.name} ({(entry / 'comm').read_text().strip()})")
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
