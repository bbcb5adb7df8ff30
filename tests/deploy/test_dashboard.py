"""The LiveView dashboard, checked statically: datasources only through variables, queries fit for
a shared Prometheus and Loki, and an import copy in Grafana's export format that stays in sync.

No Grafana runs in the suite (docs/deploy.md says what that leaves unverified). The queries run
against a real Prometheus in test_dashboard_queries.py and against Loki's OTLP mapping of the
real exporter's records in test_dashboard_logql.py.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, grafana

EXPORTER = ROOT / "deploy" / "grafana" / "export_dashboard.py"
PROVISIONED = grafana.load(grafana.DASHBOARD_FILE)
IMPORT_COPY = grafana.load(grafana.IMPORT_FILE)
BOTH = pytest.mark.parametrize("dashboard", [PROVISIONED, IMPORT_COPY], ids=["provisioned", "import-copy"])
DATASOURCES = {source["uid"]: source for source in grafana.provisioned_datasources()}
SELECTOR = re.compile(r"\{([^{}]*)\}")
MATCHER = re.compile(r'\s*(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')


def exporter() -> Any:
    spec = importlib.util.spec_from_file_location("export_dashboard", EXPORTER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def datasource_variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in grafana.variables(dashboard) if v["type"] == "datasource"}


def matchers(selector_body: str) -> list[tuple[str, str, str]]:
    parts = [part for part in selector_body.split(",") if part.strip()]
    found = [MATCHER.fullmatch(part) for part in parts]
    assert all(found), f"selector {{{selector_body}}} has a matcher this check does not understand"
    return [match.groups() for match in found if match]


def test_import_copy_is_generated_from_the_provisioned_dashboard() -> None:
    assert grafana.IMPORT_FILE.read_text() == exporter().render(), (
        f"{grafana.IMPORT_FILE.relative_to(ROOT)} is stale: run python {EXPORTER.relative_to(ROOT)}"
    )
    result = subprocess.run([sys.executable, EXPORTER, "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    stripped = {
        k: v
        for k, v in copy.deepcopy(IMPORT_COPY).items()
        if k not in ("__inputs", "__elements", "__requires", "id")
    }
    for var in grafana.variables(stripped):
        if var["type"] == "datasource":
            var["current"] = grafana.variable(PROVISIONED, var["name"])["current"]
    assert stripped == PROVISIONED  # nothing else differs


def test_the_exporter_notices_a_stale_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = exporter()
    monkeypatch.setattr(module, "TARGET", tmp_path / "liveview.json")
    (tmp_path / "liveview.json").write_text(grafana.IMPORT_FILE.read_text().replace("LiveView", "Live"))
    assert module.main(["--check"]) == 1
    assert module.main([]) == 0
    assert module.main(["--check"]) == 0


def test_datasource_variables_open_on_the_provisioned_datasources() -> None:
    variables = datasource_variables(PROVISIONED)
    assert {name: v["query"] for name, v in variables.items()} == {"prometheus": "prometheus", "loki": "loki"}
    for var in variables.values():
        source = DATASOURCES[var["current"]["value"]]  # a provisioned uid ...
        assert source["type"] == var["query"]  # ... of the variable's type ...
        assert var["current"]["text"] == source["name"]  # ... and its name, so either one matches
        assert not var.get("multi") and not var.get("includeAll") and not var.get("regex")


@BOTH
def test_no_literal_datasource_uid_outside_the_datasource_variables_defaults(
    dashboard: dict[str, Any],
) -> None:
    allowed = {
        ("templating", "list", index, "current", key)
        for index, var in enumerate(grafana.variables(dashboard))
        if var["type"] == "datasource"
        for key in ("value",)
    }
    literal = [
        (path, value)
        for path, value in grafana.walk(dashboard)
        if isinstance(value, str) and any(uid in value for uid in DATASOURCES) and path not in allowed
    ]
    assert not literal
    if "__inputs" in dashboard:  # the import copy names no datasource of the bundle at all
        assert not [v for _, v in grafana.walk(dashboard) if isinstance(v, str) and "liveview-" in v]


@BOTH
def test_every_datasource_reference_is_a_datasource_variable(dashboard: dict[str, Any]) -> None:
    variables = datasource_variables(dashboard)
    references = [
        (path, value) for path, value in grafana.walk(dashboard) if path and path[-1] == "datasource"
    ]
    query_variables = [v for v in grafana.variables(dashboard) if v["type"] == "query"]
    # One per panel, one per target, one per query variable, and none elsewhere (rows, annotations).
    assert len(references) == len(grafana.panels(dashboard)) + len(list(grafana.targets(dashboard))) + len(
        query_variables
    )
    for path, reference in references:
        assert isinstance(reference, dict) and set(reference) == {"type", "uid"}, (path, reference)
        match = re.fullmatch(r"\$\{(\w+)\}", reference["uid"])
        assert match and match.group(1) in variables, (path, reference)
        assert variables[match.group(1)]["query"] == reference["type"], (path, reference)
    for panel in grafana.panels(dashboard):
        assert "datasource" in panel and all("datasource" in target for target in panel["targets"])
        assert {t["datasource"]["uid"] for t in panel["targets"]} == {panel["datasource"]["uid"]}


@BOTH
def test_every_variable_is_defined_before_use_and_used(dashboard: dict[str, Any]) -> None:
    declared: list[str] = []
    used: set[str] = set()
    for var in grafana.variables(dashboard):
        if var["type"] == "query":
            assert var["definition"] == grafana.query_text(var)
            refs = grafana.references(grafana.query_text(var)) | grafana.references(var["datasource"]["uid"])
            assert refs <= set(declared), f"${var['name']} refers to {refs - set(declared)} before they exist"
            used |= refs
        declared.append(var["name"])
    assert len(declared) == len(set(declared))
    for _, target in grafana.targets(dashboard):
        used |= grafana.references(target["expr"]) | grafana.references(target["datasource"]["uid"])
    for panel in grafana.panels(dashboard):
        used |= grafana.references(panel["datasource"]["uid"])
    for row, _ in grafana.repeated_rows(dashboard):
        used.add(row["repeat"])
    assert not set(declared) & grafana.BUILTINS
    assert used - grafana.BUILTINS == set(declared)  # Grafana's own $__range needs no declaration
    assert {"prometheus", "loki", "service", "service_name", "service_namespace", "topic"} <= used


def test_the_service_maps_onto_lokis_index_labels() -> None:
    """job is service.namespace/service.name, or service.name; Loki indexes the two separately."""
    name = grafana.variable(PROVISIONED, "service_name")
    namespace = grafana.variable(PROVISIONED, "service_namespace")
    for var in (name, namespace):
        assert var["hide"] == 2 and not var.get("multi") and not var.get("includeAll")
        assert grafana.query_text(var) == 'label_values(liveview_published_total{job="$service"}, job)'
    cases = {"mnist": ("mnist", ""), "research/mnist": ("mnist", "research"), "a/b/c": ("c", "a/b")}
    for job, (expected_name, expected_namespace) in cases.items():
        assert grafana.regex_options(name["regex"], [job]) == [expected_name]
        # No option: Grafana sets the variable to "", and service_namespace="" selects streams without it.
        assert grafana.regex_options(namespace["regex"], [job]) == (
            [expected_namespace] if expected_namespace else []
        )


@BOTH
def test_every_log_query_selects_streams_by_the_service(dashboard: dict[str, Any]) -> None:
    per_process = {
        id(panel)
        for row, inside in grafana.repeated_rows(dashboard)
        if row["repeat"] == "instance"
        for panel in inside
    }
    queries = [
        (target["expr"], id(panel) in per_process)
        for panel in grafana.panels(dashboard)
        for target in panel["targets"]
        if target["datasource"]["type"] == "loki"
    ]
    assert len(queries) == 5 and sum(inside for _, inside in queries) == 1
    for query, inside in queries:
        selector = SELECTOR.match(query)
        assert selector, query
        found = matchers(selector.group(1))
        # service_name=~".+" keeps the selector valid while $service_name is still "" (no service has
        # published): Loki rejects a selector whose every matcher matches the empty value.
        expected = [
            ("service_name", "=~", ".+"),
            ("service_name", "=", "$service_name"),
            ("service_namespace", "=", "$service_namespace"),
        ]
        if inside:  # a process's own stream: Loki's index label service_instance_id is Prometheus' instance
            expected.append(("service_instance_id", "=~", "$instance"))
        assert found == expected, query
        assert ".*" not in selector.group(0)


@BOTH
def test_panels_fit_the_grid_without_overlapping(dashboard: dict[str, Any]) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert set(grid) == {"x", "y", "w", "h"} and all(isinstance(v, int) for v in grid.values())
        assert grid["x"] >= 0 and grid["w"] >= 1 and grid["h"] >= 1 and grid["x"] + grid["w"] <= 24
        if panel["type"] == "row":
            assert (grid["x"], grid["w"], grid["h"]) == (0, 24, 1), panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        clash = cells & set(taken)
        assert not clash, f"{panel['title']} overlaps {taken[min(clash)]}"
        taken.update(dict.fromkeys(cells, panel["title"]))
    # Listed top to bottom, left to right, as Grafana stores them: a row's panels follow it.
    order = [(panel["gridPos"]["y"], panel["gridPos"]["x"]) for panel in dashboard["panels"]]
    assert order == sorted(order)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


@BOTH
def test_a_repeated_row_repeats_per_process_and_every_panel_in_it_is_that_process(
    dashboard: dict[str, Any],
) -> None:
    rows = grafana.repeated_rows(dashboard)
    # Named by the option's text: rank and node for a launched process, its instance otherwise.
    assert [(row["title"], row["repeat"]) for row, _ in rows] == [("Process ${instance:text}", "instance")]
    row, inside = rows[0]
    var = grafana.variable(dashboard, "instance")
    assert var["multi"] and var["includeAll"]  # Grafana repeats over the chosen values (All: every one)
    assert inside and dashboard["panels"][-len(inside) - 1] is row  # the last row: nothing else repeats
    for panel in inside:
        assert "repeat" not in panel
        for target in panel["targets"]:
            # Each repeat has one value; =~ because Grafana regex-escapes a multi-value variable.
            assert (
                'instance=~"$instance"' in target["expr"]
                or 'service_instance_id=~"$instance"' in target["expr"]
            )


# Transformations the dashboard uses, each documented by Grafana, with the options it gives them.
TRANSFORMATIONS = {"merge": set(), "organize": {"excludeByName", "renameByName"}, "labelsToFields": {"mode"}}


@BOTH
def test_transformations_and_overrides_refer_to_what_the_queries_return(dashboard: dict[str, Any]) -> None:
    seen = set()
    for panel in grafana.panels(dashboard):
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)) and refs == sorted(refs), panel["title"]
        for transformation in panel.get("transformations", []):
            kind = transformation["id"]
            seen.add(kind)
            assert kind in TRANSFORMATIONS and set(transformation["options"]) <= TRANSFORMATIONS[kind], panel[
                "title"
            ]
            if kind == "labelsToFields":  # a key/value table: one row per label (fields "label", "value")
                assert transformation["options"] == {"mode": "rows"}
            for name in transformation["options"].get("renameByName", {}):
                match = re.fullmatch(r"Value #(\w+)", name)
                assert match is None or match.group(1) in refs, (panel["title"], name)
                if match:  # merged instant tables are named "Value #<refId>" only with several queries
                    assert len(refs) > 1
        overrides = panel.get("fieldConfig", {}).get("overrides", [])
        for override in overrides:
            matcher = override["matcher"]
            assert matcher["id"] in ("byFrameRefID", "byName"), panel["title"]
            if matcher["id"] == "byFrameRefID":
                assert matcher["options"] in refs, panel["title"]
            else:  # a field the organize step names
                renamed = {
                    new
                    for t in panel.get("transformations", [])
                    for new in t["options"].get("renameByName", {}).values()
                }
                assert matcher["options"] in renamed, panel["title"]
    assert seen == set(TRANSFORMATIONS)


@BOTH
def test_promql_never_scans_metric_names_and_every_panel_narrows_to_the_service(
    dashboard: dict[str, Any],
) -> None:
    queries = [(title, target["expr"]) for title, target in grafana.targets(dashboard, "prometheus")]
    queries += [
        (f"variable {v['name']}", grafana.query_text(v))
        for v in grafana.variables(dashboard)
        if v["type"] == "query"
    ]
    assert len(queries) >= 20
    for title, expr in queries:
        assert "__name__" not in expr, title
        assert "{}" not in expr.replace(" ", ""), title
    for title, expr in queries:
        if title == "variable service":
            assert expr == "label_values(liveview_published_total, job)"
            continue
        selectors = SELECTOR.findall(expr)
        assert selectors, title
        for body in selectors:
            assert ("job", "=", "$service") in matchers(body), (
                f"{title}: {{{body}}} is not narrowed to the service"
            )
        # Label names (liveview_rank in `by (...)`) are not metric names: leave grouping clauses out.
        bare = re.sub(
            r"\{[^{}]*\}|\[[^\]]*\]|\"[^\"]*\"|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)",
            "",
            expr,
        )
        bare = re.sub(r",\s*\w+\)$", ")", bare) if expr.startswith("label_values(") else bare  # its label
        for name in re.findall(r"\b(liveview_\w+|ALERTS)\b", bare):
            assert re.search(rf"\b{name}\{{", expr), f"{title}: {name} without a selector"


def test_import_copy_declares_an_input_per_datasource_variable() -> None:
    variables = datasource_variables(IMPORT_COPY)
    inputs = IMPORT_COPY["__inputs"]
    assert sorted(entry["pluginId"] for entry in inputs) == sorted(v["query"] for v in variables.values())
    for entry in inputs:
        assert entry["type"] == "datasource" and re.fullmatch(r"DS_[A-Z0-9_]+", entry["name"])
        placeholder = "${" + entry["name"] + "}"
        (var,) = [v for v in variables.values() if v["query"] == entry["pluginId"]]
        assert var["current"]["value"] == placeholder
        # The placeholder is the variable's default and nothing else: panels keep ${prometheus}/${loki}.
        uses = [
            path
            for path, value in grafana.walk(IMPORT_COPY)
            if isinstance(value, str) and placeholder in value
        ]
        assert all(path[:2] == ("templating", "list") and path[3] == "current" for path in uses), uses
    requires = {(entry["type"], entry["id"]) for entry in IMPORT_COPY["__requires"]}
    assert {("datasource", entry["pluginId"]) for entry in inputs} <= requires
    assert {("panel", panel["type"]) for panel in grafana.panels(IMPORT_COPY)} <= requires
    assert ("grafana", "grafana") in requires
    # Every plugin under the name Grafana's export gives it ("Bar gauge"), not its id.
    assert all(
        entry["name"] != entry["id"] for entry in IMPORT_COPY["__requires"] if entry["type"] == "panel"
    )
    assert "__inputs" not in PROVISIONED and "__requires" not in PROVISIONED


def test_importing_the_copy_selects_the_chosen_datasources() -> None:
    chosen = {"DS_PROMETHEUS": "team-mimir", "DS_LOKI": "team-loki"}
    imported = grafana.grafana_import(IMPORT_COPY, chosen)
    assert "__inputs" not in imported
    assert grafana.variable(imported, "prometheus")["current"]["value"] == "team-mimir"
    assert grafana.variable(imported, "loki")["current"]["value"] == "team-loki"
    assert not [v for _, v in grafana.walk(imported) if isinstance(v, str) and "${DS_" in v]
    # Every query still goes through the variables, now pointing at the chosen datasources.
    values = {"prometheus": "team-mimir", "loki": "team-loki"}
    for _, target in grafana.targets(imported):
        uid = grafana.interpolate(target["datasource"]["uid"], values)
        assert uid == values[target["datasource"]["type"]]
    with pytest.raises(KeyError, match="DS_LOKI"):
        grafana.grafana_import(IMPORT_COPY, {"DS_PROMETHEUS": "team-mimir"})
