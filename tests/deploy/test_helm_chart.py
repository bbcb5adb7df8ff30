"""The Helm chart deploy/helm/otel-liveview and the OpenTelemetry Collector chart's values, with the real
tools: Helm 3.22 (lint --strict, template), kubeconform against Kubernetes' and prometheus-operator's
schemas, grafana-operator's GrafanaDashboard schema (its validator from npm), promtool 3.14 over the
rule groups of the rendered PrometheusRule, and the Collector validating the values' configuration.

The chart reads the files compose uses through links (files/ -> grafana_dashboards/liveview.json,
deploy/prometheus/rules): the rendered dashboard and rules are those files, which the tests prove.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT, grafana
from tests.support.k8s_tools import run, run_node, schemas_dir, tool
from tests.support.servers import server_binary

CHART = ROOT / "deploy" / "helm" / "otel-liveview"
RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
COLLECTOR_VALUES = ROOT / "deploy" / "helm" / "opentelemetry-collector-values.yaml"
CUSTOM = [
    "--namespace=observability",
    "--set=dashboard.label=my_dashboards",
    "--set=dashboard.labelValue=yes",
    "--set=dashboard.folder=Experiments",
    "--set=dashboard.namespace=grafana",
    "--set=grafanaOperator.enabled=true",
    "--set=grafanaOperator.folder=Experiments",
    "--set=grafanaOperator.instanceSelector.matchLabels.team=ml",
    "--set=grafanaOperator.resyncPeriod=10m",
    "--set=prometheusRule.labels.release=prom",
    "--set=prometheusRule.labels.team=ml",
]


def helm(*args: str) -> str:
    result = run([tool("helm"), *args])
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def render(*args: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(helm("template", "liveview", str(CHART), *args)) if doc]


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = {obj["kind"]: obj for obj in objects}
    assert len(kinds) == len(objects), "one object of each kind"
    return kinds


def shipped_groups() -> list[dict[str, Any]]:
    return [group for path in RULES for group in yaml.safe_load(path.read_text())["groups"]]


def test_the_chart_reads_the_files_compose_uses() -> None:
    assert (CHART / "files" / "liveview.json").resolve() == grafana.DASHBOARD_FILE
    assert (CHART / "files" / "rules").resolve() == ROOT / "deploy" / "prometheus" / "rules"
    assert RULES, "no rule files"


@pytest.mark.parametrize("args", [[], CUSTOM], ids=["default", "custom"])
def test_helm_lint_strict(args: list[str]) -> None:
    output = helm("lint", "--strict", str(CHART), *args)
    assert "1 chart(s) linted, 0 chart(s) failed" in output


def test_default_values_install_for_kube_prometheus_stack() -> None:
    objects = by_kind(render("--namespace=monitoring"))
    assert set(objects) == {"ConfigMap", "PrometheusRule"}
    dashboard, rule = objects["ConfigMap"], objects["PrometheusRule"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "annotations" not in dashboard["metadata"]
    assert dashboard["metadata"]["namespace"] == rule["metadata"]["namespace"] == "monitoring"
    assert dashboard["data"] == {"liveview.json": grafana.DASHBOARD_FILE.read_text()}
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"]["groups"] == shipped_groups()


def test_custom_values() -> None:
    objects = by_kind(render(*CUSTOM))
    assert set(objects) == {"ConfigMap", "GrafanaDashboard", "PrometheusRule"}
    meta = objects["ConfigMap"]["metadata"]
    assert meta["labels"]["my_dashboards"] == "yes" and "grafana_dashboard" not in meta["labels"]
    assert meta["annotations"] == {"grafana_folder": "Experiments"}
    assert meta["namespace"] == "grafana"
    operator = objects["GrafanaDashboard"]
    assert operator["metadata"]["namespace"] == "observability"
    assert operator["spec"]["instanceSelector"] == {"matchLabels": {"dashboards": "grafana", "team": "ml"}}
    assert (operator["spec"]["folder"], operator["spec"]["resyncPeriod"]) == ("Experiments", "10m")
    assert operator["spec"]["json"] == grafana.DASHBOARD_FILE.read_text()
    rule = objects["PrometheusRule"]
    assert rule["metadata"]["labels"]["release"] == "prom" and rule["metadata"]["labels"]["team"] == "ml"
    assert rule["spec"]["groups"] == shipped_groups()
    off = render("--set=dashboard.enabled=false", "--set=prometheusRule.enabled=false")
    assert off == []


def test_the_values_schema_rejects_a_misspelt_value() -> None:
    typo = run([tool("helm"), "template", "liveview", CHART, "--set=prometheusRule.lables.release=prom"])
    assert typo.returncode == 1 and "additional properties 'lables' not allowed" in typo.stderr
    # `--set dashboard.labelValue=1` is a number to Helm; the label is still the string "1".
    (dashboard,) = render("--set=dashboard.labelValue=1", "--set=prometheusRule.enabled=false")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"


def kubeconform(path: Path) -> tuple[int, str]:
    template = str(schemas_dir() / "{{.ResourceKind}}{{.KindSuffix}}.json")
    result = run(
        [tool("kubeconform"), "-strict", "-summary", "-output=text", "-schema-location", template,
         "-skip=GrafanaDashboard", str(path)]
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("args", [[], CUSTOM], ids=["default", "custom"])
def test_rendered_objects_pass_the_kubernetes_and_prometheus_operator_schemas(
    args: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "rendered.yaml"
    path.write_text(helm("template", "liveview", str(CHART), *args))
    code, output = kubeconform(path)
    assert code == 0 and "Invalid: 0, Errors: 0" in output and "Valid: 2" in output, output


def test_kubeconform_rejects_what_the_schemas_forbid(tmp_path: Path) -> None:
    objects = by_kind(render())
    objects["ConfigMap"]["data"]["liveview.json"] = 1  # data values are strings
    del objects["PrometheusRule"]["spec"]["groups"][0]["rules"][0]["expr"]
    objects["PrometheusRule"]["spec"]["groups"][0]["interval"] = "soon"
    for kind, obj in objects.items():
        path = tmp_path / f"{kind}.yaml"
        path.write_text(yaml.safe_dump(obj))
        code, output = kubeconform(path)
        assert code == 1 and "Invalid: 1" in output, output


VALIDATE_GRAFANA_DASHBOARD = """
import { GrafanaDashboard } from "@kubernetes-models/grafana-operator/grafana.integreatly.org/v1beta1/GrafanaDashboard";
import { readFileSync } from "node:fs";
const errors = JSON.parse(readFileSync(0, "utf8")).map((object) => {
  try { new GrafanaDashboard(object).validate(); return null; } catch (error) { return error.message; }
});
console.log(JSON.stringify(errors));
"""


def test_the_grafana_dashboard_passes_grafana_operators_schema(tmp_path: Path) -> None:
    dashboard = by_kind(render(*CUSTOM))["GrafanaDashboard"]
    broken = {**dashboard, "spec": {k: v for k, v in dashboard["spec"].items() if k != "instanceSelector"}}
    result = run_node(VALIDATE_GRAFANA_DASHBOARD, tmp_path, [dashboard, broken])
    assert result.returncode == 0, result.stderr
    valid, invalid = yaml.safe_load(result.stdout)
    assert valid is None
    assert "instanceSelector" in invalid  # the validator is the CRD's: it holds the operator's rules


def test_promtool_checks_the_rule_groups_of_the_rendered_prometheus_rule(tmp_path: Path) -> None:
    promtool = server_binary("promtool-3.14")
    groups = by_kind(render())["PrometheusRule"]["spec"]["groups"]
    rules = tmp_path / "rendered.rules.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    result = run([promtool, "check", "rules", rules])
    assert result.returncode == 0, result.stdout + result.stderr
    count = sum(len(group["rules"]) for group in shipped_groups())
    assert f"SUCCESS: {count} rules found" in result.stdout
    # The unit tests of the shipped rules pass on the rendered ones too.
    for test in sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.test.yml")):
        spec = yaml.safe_load(test.read_text())
        spec["rule_files"] = [str(rules)]
        copy = tmp_path / test.name
        copy.write_text(yaml.safe_dump(spec, sort_keys=False))
        result = run([promtool, "test", "rules", copy], cwd=test.parent)
        assert result.returncode == 0, f"{test.name}: {result.stdout}{result.stderr}"


# -- the OpenTelemetry Collector chart's values ----------------------------------------------------------


def collector_values_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "collector_values", ROOT / "deploy" / "helm" / "collector_values.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def without_nulls(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {key: without_nulls(value) for key, value in tree.items() if value is not None}
    return tree


def test_the_collector_values_are_generated_from_the_shipped_configuration() -> None:
    module = collector_values_module()
    assert COLLECTOR_VALUES.read_text() == module.render(), (
        "deploy/helm/opentelemetry-collector-values.yaml is stale: run python deploy/helm/collector_values.py"
    )
    values = yaml.safe_load(COLLECTOR_VALUES.read_text())
    environment = {entry["name"]: entry["value"] for entry in values["extraEnvs"]}
    config = without_nulls(values["config"])
    shipped = yaml.safe_load((ROOT / "deploy" / "otel-collector" / "config.yaml").read_text())
    # Only the endpoints differ: compose's service names there, the environment here.
    for path, variable, _ in module.ENDPOINTS:
        node, compose = config, shipped
        for key in path[:-1]:
            node, compose = node[key], compose[key]
        assert node[path[-1]] == "${env:" + variable + "}" and variable in environment
        node[path[-1]] = compose[path[-1]]
    assert config == shipped
    # What the chart's default configuration adds is switched off.
    assert values["config"]["service"]["pipelines"]["traces"] is None
    assert values["image"] == {"repository": "otel/opentelemetry-collector-contrib", "tag": "0.159.0"}
    # The disk queues' folder is a volume of the pod, as compose's otel-collector-data is.
    storage = shipped["extensions"]["file_storage"]["directory"]
    (mount,) = [m for m in values["extraVolumeMounts"] if storage.startswith(m["mountPath"] + "/")]
    assert {"name": mount["name"], "emptyDir": {}} in values["extraVolumes"]


def test_the_collector_runs_the_values_configuration(tmp_path: Path) -> None:
    """The Collector docker-compose.yml pins, built with config.yaml's components, validates the
    configuration as the chart passes it (its nulls dropped, as Helm drops them when merging)."""
    values = yaml.safe_load(COLLECTOR_VALUES.read_text())
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(without_nulls(values["config"])))
    environment = {**os.environ, **{entry["name"]: entry["value"] for entry in values["extraEnvs"]}}
    result = run([server_binary("otelcol"), "validate", f"--config={config}"], env=environment)
    assert result.returncode == 0, result.stdout + result.stderr
