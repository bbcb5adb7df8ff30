"""The tools .ci/build-k8s-tools builds for the Kubernetes tests: helm, kubeconform, jsonnet, the npm
packages of tests/support/npm (run with the machine's node) and the JSON schemas kubeconform reads.

Like tests/support/servers.py's binaries, a missing tool fails the test under CI and skips it
otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.support import ROOT, unavailable
from tests.support.servers import servers_dir

NPM = ROOT / "tests" / "support" / "npm"
BINARIES = {
    "helm": "helm-v3.22.0/helm",
    "kubeconform": "kubeconform-v0.8.0/kubeconform",
    "jsonnet": "jsonnet-v0.22.0/jsonnet",
}


def _key(path: Path) -> str:
    """The cache key .ci/build-k8s-tools gives what it built from `path`."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _missing(what: str, path: Path) -> None:
    message = (
        f"{what} not found at {path}; run `.ci/build-k8s-tools` (LIVEVIEW_SERVERS_DIR as for the servers)"
    )
    unavailable(message)


def tool(name: str) -> Path:
    """Path of a built tool binary."""
    path = servers_dir() / "build" / BINARIES[name]
    if not (path.is_file() and os.access(path, os.X_OK)):
        _missing(name, path)
    return path


def schemas_dir() -> Path:
    path = servers_dir() / "build" / f"schemas-{_key(ROOT / 'tests' / 'support' / 'k8s_schemas.py')}"
    if not (path / "configmap-v1.json").is_file():
        _missing("the Kubernetes JSON schemas", path)
    return path


def node_modules() -> Path:
    path = servers_dir() / "build" / f"npm-{_key(NPM / 'package-lock.json')}" / "node_modules"
    if not (path / ".package-lock.json").is_file():
        _missing("the npm packages of tests/support/npm", path)
    if shutil.which("node") is None:
        _missing("node", Path("node"))
    return path


def run_node(script: str, folder: Path, stdin: Any = None) -> subprocess.CompletedProcess[str]:
    """Run an ES module with the npm packages importable; `stdin` goes in as JSON."""
    modules = node_modules()
    link = folder / "node_modules"
    if not link.exists():
        link.symlink_to(modules, target_is_directory=True)
    (folder / "check.mjs").write_text(script)
    return subprocess.run(
        ["node", str(folder / "check.mjs")],
        input=None if stdin is None else json.dumps(stdin),
        capture_output=True,
        text=True,
        timeout=300,
    )


def run(argv: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300, **kwargs)
