"""Fixtures shared by the suite: real servers (tests/servers.py) and the in-suite OTLP receiver
(tests/receiver.py)."""

from tests.receiver import *  # noqa: F403
from tests.servers import *  # noqa: F403
