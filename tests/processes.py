"""Publishing scripts run in their own interpreter: the library's pipeline is per process, so each
scenario gets a fresh one, configured by environment variables like a user's job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def otlp_http(endpoint: str, **extra: str) -> dict[str, str]:
    """The environment of a process exporting OTLP/HTTP to `endpoint`, plus `extra` variables."""
    return {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        **extra,
    }


def run_python(script: str, env: dict[str, str], timeout: float = 120) -> str:
    """Run `script` to its end; its stdout (a non-zero exit fails the test with the stderr tail)."""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def start_python(script: str, env: dict[str, str], file: Path | None = None) -> subprocess.Popen[str]:
    """Start `script` with pipes to its stdin and stdout, for a test that talks to it.

    With `file`, the script is written there and run from it (multiprocessing's spawn needs a
    main module it can import again).
    """
    if file is not None:
        file.write_text(script)
    command = [sys.executable, str(file)] if file is not None else [sys.executable, "-c", script]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def threshold_publisher(topic: str) -> str:
    """A script that publishes metric "loss" (phase train) under `topic` every 50 ms: its first stdin
    line is the starting value (it prints "ready"), each further line a new value (it prints "set"
    and the time)."""
    return f"""
import sys, threading, time
from otel_liveview import ExperimentBroadcaster
broadcaster = ExperimentBroadcaster(base_topic={topic!r})
value = [float(sys.stdin.readline())]
def loop():
    while True:
        broadcaster.publish_metric_sync("loss", value[0], phase="train")
        time.sleep(0.05)
threading.Thread(target=loop, daemon=True).start()
print("ready", flush=True)
for line in sys.stdin:
    value[0] = float(line)
    print("set", time.time(), flush=True)
"""
