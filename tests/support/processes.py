"""Publishing scripts run in their own interpreter: the library's pipeline is per process, so each
scenario gets a fresh one, configured by environment variables like a user's job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

# A developer's OTLP settings, and the launcher a suite may itself run under (an sbatch job): the
# tests that want a launcher start it.
_NOT_INHERITED = (
    "OTEL_",
    "SLURM_",
    "OMPI_",
    "PMI_",
    "PMIX_",
    "TORCHELASTIC_",
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "GROUP_RANK",
)


def publisher_env(
    endpoint: str | None = None,
    *,
    protocol: str = "http/protobuf",
    metrics: str | None = None,
    logs: str | None = None,
    **settings: str,
) -> dict[str, str]:
    """The environment of a publishing process: the caller's without its OTEL_* and launcher variables
    (a developer's own settings must not redirect a test, nor a job the suite runs in), exporting OTLP over `protocol` to `endpoint`
    (or per signal: `metrics`, `logs`), loopback never through a proxy, plus `settings` (e.g.
    OTEL_SERVICE_NAME="wire-test")."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(_NOT_INHERITED)}
    env["OTEL_EXPORTER_OTLP_PROTOCOL"] = protocol
    env["NO_PROXY"] = "127.0.0.1,localhost"
    for variable, value in (
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", metrics),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", logs),
    ):
        if value is not None:
            env[variable] = value
    env.update(settings)
    return env


def run_python(script: str, env: dict[str, str], timeout: float = 120) -> str:
    """Run `script` to its end; its stdout (a non-zero exit fails the test with the stderr tail)."""
    return _run(["-c", script], env, timeout)


def run_module(module: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run `python -m module args...` (in the caller's environment unless `env`) to its end; its
    stdout (a non-zero exit fails the test with the stderr tail)."""
    return _run(["-m", module, *args], dict(os.environ) if env is None else env, timeout)


def _run(arguments: list[str], env: dict[str, str], timeout: float) -> str:
    result = subprocess.run(
        [sys.executable, *arguments], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
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


_THRESHOLD_SCRIPT = """
import sys, threading, time
from otel_liveview import ExperimentBroadcaster
broadcaster = ExperimentBroadcaster(base_topic=sys.argv[1])
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


class ThresholdPublisher:
    """A process publishing metric "loss" (phase train) under `topic` every 50 ms, at `first` until
    `set` changes it: the publisher of the alerting tests. Use it as a context manager."""

    def __init__(self, topic: str, env: dict[str, str], first: float) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _THRESHOLD_SCRIPT, topic],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self._send(first) == "ready"

    def set(self, value: float) -> float:
        """Publish `value` from now on; the time (time.time()) it took effect."""
        return float(self._send(value).split()[1])

    def _send(self, value: float) -> str:
        assert self._process.stdin and self._process.stdout
        self._process.stdin.write(f"{value}\n")
        self._process.stdin.flush()
        return self._process.stdout.readline().strip()

    def __enter__(self) -> ThresholdPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.kill()
        self._process.wait()
