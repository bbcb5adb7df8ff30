"""otel_liveview.names is the contract: the library writes exactly the instruments it declares, and
every `liveview_*` name the shipped rules, Grafana alerting and dashboard query is one it writes."""

from __future__ import annotations

import json
import re

import pytest

from otel_liveview import names
from otel_liveview._internal.launch import ATTRIBUTES
from otel_liveview._internal.tables import Tables
from otel_liveview.alerts import rules
from tests.support import ROOT

PROMETHEUS_NAME = re.compile(r"\bliveview_[a-z_]+\b")
WRITTEN = {names.prometheus(name) for name in (*names.GAUGES, *names.COUNTERS, *names.RESOURCE_ATTRIBUTES)}


def test_the_tables_are_the_declared_instruments() -> None:
    tables = Tables()
    assert list(tables.gauges()) == list(names.GAUGES)
    assert list(tables.counters()) == list(names.COUNTERS)


def test_the_launch_writes_the_declared_attributes() -> None:
    assert set(ATTRIBUTES.values()) == set(names.RESOURCE_ATTRIBUTES) - {names.TOPIC}


def test_prometheus_names_follow_the_otlp_translation() -> None:
    assert names.prometheus(names.METRIC_NONFINITE) == "liveview_metric_nonfinite"
    assert names.prometheus(names.DROPPED) == "liveview_dropped_total"
    assert names.prometheus(names.NODE) == "liveview_node_name"


@pytest.mark.parametrize(
    "path",
    [
        "deploy/prometheus/rules/liveview-builtin.rules.yml",
        "deploy/prometheus/rules/liveview-thresholds.rules.yml",
        "deploy/grafana/provisioning/alerting/liveview.yaml",
        "grafana_dashboards/liveview.json",
    ],
)
def test_shipped_queries_use_only_names_the_library_writes(path: str) -> None:
    used = set(PROMETHEUS_NAME.findall((ROOT / path).read_text(encoding="utf-8")))
    legacy = {names.prometheus(names.EXPERIMENT_PLANNED_UP_TO_0_1)}  # the board reads both names
    assert used, path
    assert used <= WRITTEN | legacy, sorted(used - WRITTEN - legacy)


def test_the_rules_module_queries_only_names_the_library_writes() -> None:
    used = set(PROMETHEUS_NAME.findall(json.dumps(rules.builtin_rules())))
    assert used <= WRITTEN, sorted(used - WRITTEN)
