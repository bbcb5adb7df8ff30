"""What the tiers of the suite share: the repository root, free ports, OTLP peers (receiver.py), the
real servers (servers.py), publishing processes (processes.py and the publisher scripts), Grafana's
variable resolution (grafana.py) and the payload strategies of the property tests (strategies.py).
The fixtures of receiver.py and servers.py are loaded for every test by tests/conftest.py."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unavailable(message: str) -> NoReturn:
    """A server, tool or launcher a test needs is missing: the test fails under CI (which never
    passes by skipping) and is skipped elsewhere, with `message` saying how to get it."""
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
