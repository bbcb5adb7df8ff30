"""The commands of docs/deploy.md's "Kubernetes" section run as written: those that need no cluster
run here (helm lint / template, go-jsonnet), an install of this chart renders with the same arguments
(`helm template` in place of `helm install` / `helm upgrade --install`), and the rest need a cluster."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import yaml

from tests.support import ROOT, grafana
from tests.support.k8s_tools import run, tool

DOC = ROOT / "docs" / "deploy.md"
CHART = "deploy/helm/otel-liveview"
LOCAL = ("helm lint ", "helm template ", "mkdir ", "jsonnet ")
CLUSTER = ("kubectl ", "helm install otel-collector ")


def section_commands() -> list[str]:
    text = DOC.read_text().split("\n## Kubernetes\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", text, re.DOTALL)
    lines = [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [" ".join(line.split()) for line in lines if line and not line.startswith("#")]


def as_template(command: str) -> str | None:
    """`helm template` with the arguments of an install of this chart."""
    for verb in ("helm upgrade --install ", "helm install "):
        if command.startswith(verb) and f" {CHART} " in command:
            return "helm template " + command.removeprefix(verb)
    return None


def workspace(tmp_path: Path) -> dict[str, str]:
    for name in ("deploy", "grafana_dashboards"):
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    path = os.pathsep.join([str(tool("helm").parent), str(tool("jsonnet").parent), os.environ["PATH"]])
    return {**os.environ, "PATH": path}


def test_every_command_of_the_section_runs(tmp_path: Path) -> None:
    commands = section_commands()
    assert len(commands) >= 8
    environment = workspace(tmp_path)
    ran = []
    for command in commands:
        runnable = command if command.startswith(LOCAL) else as_template(command)
        if runnable is None:
            assert command.startswith(CLUSTER), f"a command this test does not know: {command}"
            continue
        shlex.split(runnable)  # one shell command, quoted as the shell reads it
        result = run(["bash", "-euo", "pipefail", "-c", runnable], cwd=tmp_path, env=environment)
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
        ran.append(runnable)
    assert sum(c.startswith("helm template") for c in ran) == 4
    # What the mixin commands wrote is the shipped dashboard and rules.
    assert json.loads((tmp_path / "dashboards_out" / "liveview.json").read_text()) == grafana.load()
    groups = yaml.safe_load((tmp_path / "prometheus_alerts.yaml").read_text())["groups"]
    assert [g["name"] for g in groups] == ["liveview-builtin", "liveview-thresholds"]
