"""Publishers written with other languages' OpenTelemetry SDKs (go/, node/, java/), built on demand.

Each takes the arguments METRIC VALUE LOG_BODY, publishes one gauge and one log record (attribute
`sdk` = its language) through its SDK's own OTLP exporters, configured by the standard
`OTEL_EXPORTER_OTLP_*` variables (the protocol too), and exits non-zero if an export failed. The build goes to
a cache folder outside the repository (`LIVEVIEW_SDKS_DIR`, default ~/.cache/otel-liveview/sdks),
one folder per hash of the sources and lock files, so it runs once per change: `go build` through
the Go module proxy, `npm ci` from the npm registry, Maven from Maven Central (the pom pins the SDK's
BOM, whose modules pin the rest: Maven has no lock file) and `javac`. A missing toolchain fails the test when `CI` is
set and skips it otherwise, as a missing server binary does (tests/support/servers.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import unavailable

__all__ = ["go_publisher", "java_publisher", "node_publisher"]

HERE = Path(__file__).resolve().parent
BUILD_TIMEOUT = 1200.0  # seconds: a first build downloads the modules and compiles gRPC on 2 cores
GO_SOURCES = ("go.mod", "go.sum", "main.go")
NODE_SOURCES = ("package.json", "package-lock.json", "publish.js")
JAVA_SOURCES = ("pom.xml", "Publish.java")


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "otel-liveview" / "sdks"
    return Path(os.environ.get("LIVEVIEW_SDKS_DIR") or default)


def go_publisher() -> list[str]:
    """The command that runs the Go publisher."""
    go = _tool("go", "/usr/local/go/bin/go")

    def build(folder: Path) -> None:
        env = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false"}
        _run([go, "build", "-o", str(folder / "publisher"), "."], cwd=HERE / "go", env=env)

    return [str(_cached("go", GO_SOURCES, build) / "publisher")]


def node_publisher() -> list[str]:
    """The command that runs the Node.js publisher."""
    node = _tool("node")
    npm = _tool("npm")

    def install(folder: Path) -> None:
        for name in NODE_SOURCES:
            shutil.copy(HERE / "node" / name, folder / name)
        # No install scripts: the lock file's packages need none (protobufjs' only checks versions).
        _run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=folder, env=dict(os.environ))

    return [node, str(_cached("node", NODE_SOURCES, install) / "publish.js")]


def java_publisher() -> list[str]:
    """The command that runs the Java publisher."""
    mvn, javac, java = _tool("mvn"), _tool("javac"), _tool("java")

    def build(folder: Path) -> None:
        env = dict(os.environ)
        fetch = [mvn, "-B", "-q", "dependency:copy-dependencies", "-DincludeScope=runtime"]
        _run([*fetch, f"-DoutputDirectory={folder / 'lib'}"], cwd=HERE / "java", env=env)
        _run(
            [javac, "-d", str(folder / "classes"), "-cp", f"{folder / 'lib'}/*", "Publish.java"],
            cwd=HERE / "java",
            env=env,
        )

    folder = _cached("java", JAVA_SOURCES, build)
    return [java, "-cp", f"{folder / 'classes'}:{folder / 'lib'}/*", "Publish"]


def _tool(name: str, *fallbacks: str) -> str:
    found = shutil.which(name) or next((path for path in fallbacks if os.access(path, os.X_OK)), None)
    if found is None:
        message = f"{name} is not installed: the other SDKs' publishers (tests/support/sdks) need it"
        unavailable(message)
    return found


def _cached(language: str, sources: tuple[str, ...], build: Callable[[Path], None]) -> Path:
    """The build folder for these exact sources, built into a temporary folder and renamed into
    place, so an interrupted or concurrent build never leaves a half-built folder behind."""
    digest = hashlib.sha256()
    for name in sources:
        digest.update(name.encode() + b"\0" + (HERE / language / name).read_bytes() + b"\0")
    folder = cache_dir() / f"{language}-{digest.hexdigest()[:16]}"
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{language}-", dir=folder.parent))
    try:
        build(staging)
        staging.rename(folder)
    except OSError:
        if not folder.is_dir():  # not a concurrent build that won the rename
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed in {cwd}:\n{done.stdout}{done.stderr}", pytrace=False)
