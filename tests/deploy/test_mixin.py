"""The monitoring mixin deploy/mixin, rendered by go-jsonnet 0.22 the way mixin tools render one: its
grafanaDashboards are the shipped dashboard, its prometheusAlerts the shipped rule groups, which
promtool 3.14 accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.support import ROOT, grafana
from tests.support.k8s_tools import run, tool
from tests.support.servers import server_binary

MIXIN = ROOT / "deploy" / "mixin"
RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))


def jsonnet(*args: str | Path) -> str:
    result = run([tool("jsonnet"), "-J", MIXIN, *args], cwd=MIXIN)
    assert result.returncode == 0, result.stderr
    return result.stdout


def shipped_groups() -> list[dict[str, Any]]:
    return [group for path in RULES for group in yaml.safe_load(path.read_text())["groups"]]


def test_the_mixin_reads_every_shipped_rule_file() -> None:
    # Jsonnet has no glob: the mixin lists the files, and a new one must join the list.
    imported = re.findall(
        r"importstr '\.\./prometheus/rules/([^']+)'", (MIXIN / "mixin.libsonnet").read_text()
    )
    assert imported == [path.name for path in RULES]


def test_grafana_dashboards_are_the_shipped_dashboard(tmp_path: Path) -> None:
    written = jsonnet("-m", tmp_path, MIXIN / "dashboards.jsonnet").split()
    assert written == [str(tmp_path / "liveview.json")]
    assert json.loads((tmp_path / "liveview.json").read_text()) == grafana.load()


def test_prometheus_alerts_are_the_shipped_rule_groups(tmp_path: Path) -> None:
    alerts = tmp_path / "prometheus_alerts.yaml"
    alerts.write_text(jsonnet("-S", MIXIN / "alerts.jsonnet"))
    assert yaml.safe_load(alerts.read_text()) == {"groups": shipped_groups()}
    result = run([server_binary("promtool-3.14"), "check", "rules", alerts])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_mixin_object_has_the_mixin_fields() -> None:
    fields = json.loads(
        jsonnet("-e", "local m = import 'mixin.libsonnet'; std.objectFieldsAll(m)")
    )  # fmt: skip
    assert fields == ["grafanaDashboards", "prometheusAlerts"]
