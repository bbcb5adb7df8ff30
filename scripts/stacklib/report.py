"""What the commands print: `stack: ` lines, paths relative to the working directory, log tails."""

from __future__ import annotations

import contextlib
from pathlib import Path


def say(message: str) -> None:
    print(f"stack: {message}", flush=True)


def rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "    (no log)"
    if not text:
        return "    (the log is empty)"
    return "\n".join("    | " + line for line in text)
