"""compose's healthchecks: each run of a test in a sandbox built like the service's (as `docker exec`
runs it in the container: same files, same user, same environment), and Docker's schedule of them."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from . import sandbox, servers
from .compose import Healthcheck
from .images import IMAGE_PATH, Launch


class Probe:
    """One run of a healthcheck's test, started at once; `result()` is None until it has ended."""

    def __init__(self, argv: list[str], env: dict[str, str], timeout: float) -> None:
        self.timeout, self.began = timeout, time.monotonic()
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - read and closed when the run ends
        self._process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._output, stderr=subprocess.STDOUT, env=env
        )

    def result(self) -> tuple[bool, str] | None:
        code = self._process.poll()
        if code is None:
            if time.monotonic() - self.began < self.timeout:
                return None
            self.cancel()
            return False, f"timed out after {self.timeout:g}s"
        self._output.seek(0)
        output = self._output.read().decode(errors="replace").strip()
        self._output.close()
        return code == 0, f"exit {code}" + (f": {output[-200:]}" if output else "")

    def wait(self) -> tuple[bool, str]:
        while (outcome := self.result()) is None:
            time.sleep(0.05)
        return outcome

    def cancel(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._output.close()


class GetProbe(Probe):
    """What `wget -qO- URL` checks, without wget: the GET succeeds with a 200 answer."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url, self.timeout, self.began = url, timeout, time.monotonic()

    def result(self) -> tuple[bool, str]:
        return servers.answers(self.url, self.timeout), f"GET {self.url}"

    def cancel(self) -> None:
        pass


def probe(check: Healthcheck, launch: Launch, bwrap: str, state: Path, name: str) -> Probe:
    """Start one run of `check`'s test for service `name`. A `wget ... URL` test is a GET of the URL
    where the host (whose /usr the sandbox has) has no wget."""
    test = check.test
    if test[0] == "wget" and test[-1].startswith("http") and not shutil.which("wget", path=IMAGE_PATH):
        return GetProbe(test[-1], check.timeout)
    return Probe(sandbox.argv(bwrap, launch, state, name, test, probe=True), launch.env, check.timeout)


class Health:
    """A started service's healthcheck as Docker runs it: the first probe `interval` after the start
    (at once for a service found running), then every `interval`; healthy at the first success,
    unhealthy after `retries` failures in a row (failures within `start_period` do not count)."""

    def __init__(self, check: Healthcheck, start: Callable[[], Probe], immediate: bool) -> None:
        self.check, self.start = check, start
        self.started = time.monotonic()
        self.next_probe = self.started + (0 if immediate else check.interval)
        self.failures = 0
        self.state, self.detail = "starting", ""
        self.running: Probe | None = None

    def poll(self) -> str:
        """Start a probe when one is due, take the result of one that ended; the state then."""
        if self.running is None:
            if time.monotonic() >= self.next_probe:
                self.running = self.start()
            return self.state
        outcome = self.running.result()
        if outcome is None:
            return self.state
        began, self.running = self.running.began, None
        healthy, detail = outcome
        if healthy:
            self.state, self.detail = "healthy", detail
            return self.state
        if began - self.started >= self.check.start_period:
            self.failures += 1
        self.detail = f"{self.failures}/{self.check.retries} failed: {detail}"
        if self.failures >= self.check.retries:
            self.state = "unhealthy"
        self.next_probe = began + self.check.interval
        return self.state

    def cancel(self) -> None:
        if self.running:
            self.running.cancel()
