"""The dashboard by Grafana's own conventions (those its dashboard linter checks, written out here):
a description and a unit on every panel that shows values, `$__rate_interval` in every rate, and Loki
selectors that Loki accepts whatever the variables hold, including before any service has published.

The grammars of Grafana's query editors and @grafana/schema's types check the same queries and JSON
in test_dashboard_grammars.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support import grafana

DASHBOARD = grafana.load()
# Panels whose values have a unit; a logs panel shows lines.
VALUE_PANELS = [p for p in grafana.panels(DASHBOARD) if p["type"] != "logs"]
# PromQL functions that take a per-second rate over a range, and the range each may use:
# $__rate_interval (four scrapes at least, wider as the time range grows), or $__range for the
# whole range's average (Rate and ETA).
RATE = re.compile(r"\b(rate|irate|increase|deriv)\(((?:[^()]|\([^()]*\))*)\[([^\]]+)\]\)")
WINDOWS = {"$__rate_interval", "$__range"}
SELECTOR = re.compile(r"^\{([^{}]*)\}")
MATCHER = re.compile(r'\s*(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')
# Settings of the variables a Loki selector meets: none yet (Grafana's "" for a variable with no
# option), a service without and with a namespace, and a process.
SETTINGS = [
    {"service_name": "", "service_namespace": "", "instance": ""},
    {"service_name": "mnist", "service_namespace": "", "instance": ".*"},
    {"service_name": "mnist", "service_namespace": "research", "instance": "host-1-42"},
]


def panel_id(panel: dict[str, Any]) -> str:
    return str(panel["title"])


@pytest.mark.parametrize("panel", grafana.panels(DASHBOARD), ids=panel_id)
def test_every_panel_says_what_it_shows(panel: dict[str, Any]) -> None:
    assert len(panel.get("description", "")) > 20, f"{panel['title']} has no description"


@pytest.mark.parametrize("panel", VALUE_PANELS, ids=panel_id)
def test_every_value_panel_has_a_unit(panel: dict[str, Any]) -> None:
    assert panel.get("fieldConfig", {}).get("defaults", {}).get("unit"), f"{panel['title']} has no unit"


def test_every_rate_takes_the_rate_interval() -> None:
    found = []
    for title, target in grafana.targets(DASHBOARD, "prometheus"):
        for function, _, window in RATE.findall(target["expr"]):
            assert window in WINDOWS, f"{title}: {function}(...[{window}]) – use [$__rate_interval]"
            found.append((title, window))
    titles = {title for title, window in found if window == "$__rate_interval"}
    assert {"Publish rate", "Drop rate", "Step time", "Slowest ranks"} <= titles


def empty_compatible(op: str, value: str) -> bool:
    """Does the matcher match the empty value? Loki rejects a selector all of whose matchers do."""
    if op == "=":
        return value == ""
    if op == "!=":
        return value != ""
    return bool(re.fullmatch(value, "")) == (op == "=~")


@pytest.mark.parametrize("values", SETTINGS, ids=["nothing-published", "service", "namespaced-process"])
def test_every_log_selector_is_one_loki_accepts(values: dict[str, str]) -> None:
    queries = [target["expr"] for _, target in grafana.targets(DASHBOARD, "loki")]
    assert len(queries) == 5
    for query in queries:
        selector = SELECTOR.match(grafana.interpolate(query, {**values, "topic": "t", "stream": ".*"}))
        assert selector, query
        matchers = [MATCHER.fullmatch(part) for part in selector.group(1).split(",")]
        assert all(matchers), selector.group(0)
        assert not all(empty_compatible(m.group(2), m.group(3)) for m in matchers if m), (
            f"Loki rejects {selector.group(0)}: at least one matcher must not match the empty value"
        )


def test_the_empty_value_rule_is_lokis() -> None:
    assert empty_compatible("=", "") and not empty_compatible("=", "a")
    assert empty_compatible("=~", ".*") and not empty_compatible("=~", ".+")
    assert empty_compatible("!~", ".+") and not empty_compatible("!=", "")


@pytest.mark.parametrize(
    ("seconds", "scrape", "interval", "rate_interval"),
    [
        (900, 15.0, "15s", "60s"),  # the default range on a datasource without timeInterval: [1m]
        (900, 1.0, "1s", "4s"),  # the provisioned datasource (timeInterval 1s): four scrapes
        (6 * 3600, 1.0, "20s", "21s"),  # 21600 s / 940 px = 23 s, rounded to 20 s
        (7 * 86400, 15.0, "600s", "615s"),  # a week: $__interval + scrape interval
    ],
)
def test_the_rate_interval_as_grafana_computes_it(
    seconds: int, scrape: float, interval: str, rate_interval: str
) -> None:
    values = grafana.range_variables(1_000_000.0 - seconds, 1_000_000.0, scrape=scrape)
    assert (values["__interval"], values["__rate_interval"]) == (interval, rate_interval)


def test_the_provisioned_datasource_sets_the_scrape_interval() -> None:
    assert grafana.scrape_interval() == 1.0
    assert grafana.scrape_interval([{"type": "prometheus", "jsonData": {}}]) == 15.0
    assert grafana.range_variables(0.0, 900.0)["__rate_interval"] == "4s"
