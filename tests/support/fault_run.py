"""tests.support.fault_publisher run as a process of its own against an OTLP/HTTP endpoint, from the
fault tests and benchmarks.outage: its report, and the sequence numbers of its logs at a receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from typing import Any

from tests.support import ROOT
from tests.support.receiver import Receiver


class Publisher:
    """tests.support.fault_publisher as a process of its own, exporting OTLP/HTTP to the Collector; a thread
    of the test collects its report. Use through the `publishers` fixture, which kills it if a test
    ends before it does."""

    def __init__(self, endpoint: str, rate: int, seconds: float, **env_vars: str) -> None:
        self.service = f"faults-{uuid.uuid4().hex[:8]}"
        self.rate = rate
        self.report: dict[str, Any] = {}
        env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
        env.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_TIMEOUT="2000",
            OTEL_METRIC_EXPORT_INTERVAL="500",
            OTEL_LIVEVIEW_METRIC_EVENTS="false",  # one record per publish_log: seq numbers count them
            OTEL_SERVICE_NAME=self.service,
            NO_PROXY="127.0.0.1,localhost",
        )
        env.update(env_vars)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.fault_publisher", str(rate), str(seconds)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

        def collect() -> None:
            stdout, stderr = self.process.communicate()
            self.report["returncode"] = self.process.returncode
            self.report["stderr"] = stderr[-3000:]
            if self.process.returncode == 0:
                self.report.update(json.loads(stdout.strip().splitlines()[-1]))

        self.thread = threading.Thread(target=collect, name="publisher")
        self.thread.start()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.thread.join(30)

    def join(self, timeout: float = 180) -> dict[str, Any]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "publisher did not finish"
        assert self.report.get("returncode") == 0, self.report.get("stderr")
        return self.report

    def seqs(self, loki: Receiver) -> list[int]:
        """Sequence numbers of this publisher's log records at the Loki stand-in, repeats included."""
        return [
            int(row.attributes["seq"])
            for row in loki.log_rows()
            if row.resource.get("service.name") == self.service and "seq" in row.attributes
        ]
