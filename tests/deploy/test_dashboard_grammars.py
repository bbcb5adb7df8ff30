"""Every query the project ships, parsed by the grammars of Grafana's query editors – Prometheus'
@prometheus-io/lezer-promql and Grafana's @grafana/lezer-logql – under several settings of the
dashboard's variables, and the dashboard type-checked by tsc against @grafana/schema 13.2.

The queries: the dashboard's panels and its variables' PromQL (inside label_values / query_result),
the Prometheus rule files, and Grafana alerting's provisioned rules. The npm packages are those of
tests/support/npm (.ci/build-k8s-tools installs them), run with the machine's node.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT, grafana
from tests.support.k8s_tools import node_modules, run, run_node

DASHBOARD = grafana.load()
RULE_FILES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
ALERTING = ROOT / "deploy" / "grafana" / "provisioning" / "alerting" / "liveview.yaml"
NOW = 1_800_000_000.0
# Settings of the query variables (the datasource variables never reach a query). "nothing" is the
# dashboard before any service published: Grafana's "" for a variable without options, and All's
# `.*` for the multi-value ones; "all" picks All where it can; the others pick values with the
# characters services, topics and hosts have.
SETTINGS: dict[str, dict[str, str]] = {
    "nothing": {
        "service": "", "service_name": "", "service_namespace": "", "topic": "", "experiment": "",
        "run": "", "rank": "", "metric": ".*", "stream": ".*", "instance": ".*",
    },
    "service": {
        "service": "research/mnist", "service_name": "mnist", "service_namespace": "research",
        "topic": "mnist:train", "experiment": "lr-0.1", "run": "slurm-1234", "rank": "0",
        "metric": "loss", "stream": "sensors", "instance": "host-1-42",
    },
    "several": {
        "service": "team a/exp.1", "service_name": "exp.1", "service_namespace": "team a",
        "topic": "a:b/c", "experiment": "sweep 3", "run": "ray-raysubmit_x", "rank": "12",
        "metric": "(loss|val_acc)", "stream": "(camera|sensors)", "instance": "(h1-7|h2-9)",
    },
}  # fmt: skip
RANGES = {"15m": 900.0, "7d": 7 * 86400.0}


def setting_values(setting: str, range_name: str) -> dict[str, str]:
    values = {**SETTINGS[setting], "prometheus": "p", "loki": "l"}
    values.update(grafana.range_variables(NOW - RANGES[range_name], NOW))
    return values


def variable_promql(var: dict[str, Any]) -> str | None:
    """The PromQL inside a query variable's Grafana function, if any (label_values may have none)."""
    text = grafana.query_text(var)
    result = grafana.QUERY_RESULT.fullmatch(text.strip())
    return result.group(1) if result else grafana.variable_request(text)[0]


def dashboard_queries(values: dict[str, str]) -> Iterator[tuple[str, str, str]]:
    """(language, where, query) of every dashboard query, interpolated."""
    for title, target in grafana.targets(DASHBOARD):
        language = {"prometheus": "promql", "loki": "logql"}[target["datasource"]["type"]]
        yield language, f"{title}/{target['refId']}", grafana.interpolate(target["expr"], values)
    for var in grafana.variables(DASHBOARD):
        if var["type"] == "query" and (promql := variable_promql(var)):
            yield "promql", f"${var['name']}", grafana.interpolate(promql, values)


def shipped_rule_queries() -> Iterator[tuple[str, str, str]]:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                yield "promql", f"{path.name}/{rule.get('alert') or rule['record']}", rule["expr"]
    for group in yaml.safe_load(ALERTING.read_text())["groups"]:
        for rule in group["rules"]:
            for query in rule["data"]:
                if query["datasourceUid"] != "__expr__":
                    yield "promql", f"alerting/{rule['title']}/{query['refId']}", query["model"]["expr"]


PARSE = """
import { parser as promql } from "@prometheus-io/lezer-promql";
import { parser as logql } from "@grafana/lezer-logql";
import { readFileSync } from "node:fs";
const parsers = { promql, logql };
const errors = JSON.parse(readFileSync(0, "utf8")).map(([language, query]) => {
  const at = [];
  parsers[language].parse(query).iterate({ enter(node) { if (node.type.isError) at.push(node.from); } });
  return at;
});
console.log(JSON.stringify(errors));
"""


def syntax_errors(queries: list[tuple[str, str, str]], folder: Path) -> list[str]:
    """`where: query (error at offsets)` of each query the grammar does not parse whole."""
    result = run_node(PARSE, folder, [[language, query] for language, _, query in queries])
    assert result.returncode == 0, result.stderr
    return [
        f"{where}: {query!r} (error at {at})"
        for (_, where, query), at in zip(queries, json.loads(result.stdout), strict=True)
        if at
    ]


@pytest.mark.parametrize("range_name", RANGES)
@pytest.mark.parametrize("setting", SETTINGS)
def test_every_dashboard_query_parses(setting: str, range_name: str, tmp_path: Path) -> None:
    queries = list(dashboard_queries(setting_values(setting, range_name)))
    assert {language for language, _, _ in queries} == {"promql", "logql"}
    assert not set().union(*(grafana.references(query) for _, _, query in queries))
    assert syntax_errors(queries, tmp_path) == []


def test_every_rule_and_alerting_query_parses(tmp_path: Path) -> None:
    queries = list(shipped_rule_queries())
    assert len(queries) > len(RULE_FILES) and any(where.startswith("alerting/") for _, where, _ in queries)
    assert syntax_errors(queries, tmp_path) == []


def test_the_grammars_find_what_is_broken(tmp_path: Path) -> None:
    broken = [
        ("promql", "unclosed", 'rate(liveview_published_total{job="a"}[1m]'),
        # Grafana interpolates before the query leaves it: an uninterpolated range is not PromQL.
        ("promql", "raw variable", "rate(liveview_published_total[$__rate_interval])"),
        ("logql", "no value", '{service_name=~".+"} | topic='),
        ("logql", "no selector", '| event_name=""'),
    ]
    assert len(syntax_errors(broken, tmp_path)) == len(broken)


# -- @grafana/schema ----------------------------------------------------------------------------------

DEFAULTS = """
import * as schema from "@grafana/schema";
const defaults = {};
for (const [name, value] of Object.entries(schema)) {
  if (name.startsWith("default") && value && typeof value === "object" && !Array.isArray(value)) {
    defaults[name.slice("default".length)] = Object.keys(value);
  }
}
console.log(JSON.stringify(defaults));
"""


def schema_defaults(folder: Path) -> dict[str, list[str]]:
    """Each @grafana/schema type with defaults -> the keys its `defaultX` object fills in."""
    result = run_node(DEFAULTS, folder)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def typed_dashboard(dashboard_json: str, defaults: dict[str, list[str]]) -> str:
    """TypeScript declaring the dashboard JSON a @grafana/schema Dashboard, JSON's way: a string
    enum as its values, and a key optional where Grafana fills it with the schema's default."""
    chain = "".join(
        f"  Same<T, schema.{name}> extends true ? {' | '.join(json.dumps(k) for k in keys)} :\n"
        for name, keys in sorted(defaults.items())
    )
    return f"""import type * as schema from "@grafana/schema";
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Defaulted<T> =
{chain}  never;
type Json<T> = T extends string ? `${{T}}` : T extends readonly (infer U)[] ? Json<U>[] : T extends object ? JsonObject<T> : T;
type JsonObject<T> = {{ [K in keyof T as K extends Defaulted<T> ? never : K]: Json<T[K]> }} & {{
  [K in keyof T as K extends Defaulted<T> ? K : never]?: Json<T[K]>;
}};
// Grafana's query variables carry `definition`, the query's text, which VariableModel leaves out.
type Variable = Json<schema.VariableModel> & {{ definition?: string }};
type Dashboard = Omit<Json<schema.Dashboard>, "templating"> & {{ templating?: {{ list?: Variable[] }} }};
export const dashboard: Dashboard = {dashboard_json};
"""


def tsc(source: str, folder: Path) -> str:
    modules = node_modules()
    link = folder / "node_modules"
    if not link.exists():
        link.symlink_to(modules, target_is_directory=True)
    (folder / "dashboard.ts").write_text(source)
    result = run(
        ["node", modules / "typescript" / "bin" / "tsc", "--noEmit", "--strict", "--skipLibCheck",
         "--target", "es2022", "--module", "esnext", "--moduleResolution", "bundler", folder / "dashboard.ts"]
    )  # fmt: skip
    return result.stdout + result.stderr


def test_the_dashboard_type_checks_against_grafana_schema(tmp_path: Path) -> None:
    defaults = schema_defaults(tmp_path)
    assert {"Dashboard", "Panel", "FieldConfigSource", "VariableModel"} <= set(defaults)
    assert tsc(typed_dashboard(grafana.DASHBOARD_FILE.read_text(), defaults), tmp_path) == ""


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (("schemaVersion", "42"), "not assignable to type 'number'"),
        (("graphTooltip", 7), "not assignable"),
        (("panelField", True), "does not exist"),
        (("thresholdMode", "relative"), "not assignable"),
    ],
    ids=lambda value: value[0] if isinstance(value, tuple) else "",
)
def test_tsc_rejects_what_the_schema_forbids(change: tuple[str, Any], error: str, tmp_path: Path) -> None:
    dashboard = grafana.load()
    field, value = change
    if field == "panelField":
        grafana.panels(dashboard)[0]["bogus"] = value
    elif field == "thresholdMode":
        next(p for p in grafana.panels(dashboard) if "thresholds" in p["fieldConfig"]["defaults"])[
            "fieldConfig"
        ]["defaults"]["thresholds"]["mode"] = value
    else:
        dashboard[field] = value
    output = tsc(typed_dashboard(json.dumps(dashboard, indent=2), schema_defaults(tmp_path)), tmp_path)
    assert "error TS" in output and error in output, output


def test_the_schema_version_is_grafana_schemas(tmp_path: Path) -> None:
    script = (
        'import { defaultDashboard } from "@grafana/schema"; console.log(defaultDashboard.schemaVersion);'
    )
    result = run_node(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert DASHBOARD["schemaVersion"] == int(result.stdout) == 42
