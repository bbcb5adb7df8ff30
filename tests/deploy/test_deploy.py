"""The deploy bundle, validated as strictly as the tools here allow (no Docker engine, no Loki or
Grafana binaries): docker compose's own validator, promtool, and structural checks. The real Collector,
Prometheus 3.14 and Alertmanager 0.34 run the shipped files in test_collector.py and
test_prometheus3.py."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT
from tests.support.servers import server_binary

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
COLLECTOR = yaml.safe_load((ROOT / "deploy" / "otel-collector" / "config.yaml").read_text())
DASHBOARD = json.loads((ROOT / "grafana_dashboards" / "liveview.json").read_text())
DATASOURCES = yaml.safe_load(
    (ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "datasources.yaml").read_text()
)


@pytest.mark.servers
def test_docker_compose_validates_the_file() -> None:
    result = subprocess.run(
        [server_binary("docker-compose"), "config", "--quiet"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_bind_mount_exists() -> None:
    for name, service in COMPOSE["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).exists()


def test_every_image_tag_is_pinned() -> None:
    images = [service["image"] for service in COMPOSE["services"].values() if "image" in service]
    assert len(images) == 5
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest" and re.search(r"\d", tag), image
    dockerfile = (ROOT / "deploy" / "demo" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim$", dockerfile, re.M)


def test_every_published_port_is_bound_to_loopback() -> None:
    for name, service in COMPOSE["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_services_have_health_checks_and_wait_for_each_other() -> None:
    services = COMPOSE["services"]
    for name in ("prometheus", "loki", "grafana", "alertmanager"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services
            assert condition["condition"] in ("service_healthy", "service_started")
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], (
                    f"{name} waits on {dependency}, which has no check"
                )
    grafana = services["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GF_ADMIN_PASSWORD")
    assert grafana["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert set(COMPOSE["volumes"]) == {
        "otel-collector-data",
        "prometheus-data",
        "loki-data",
        "alertmanager-data",
        "grafana-data",
    }


@pytest.mark.servers
def test_promtool_3_checks_the_prometheus_config(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    config["rule_files"] = [
        str(ROOT / "deploy" / "prometheus" / "rules" / "*.yml")
    ]  # where compose mounts them
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [server_binary("promtool3"), "check", "config", tmp_path / "prometheus.yml"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout


def test_collector_pipelines_use_only_defined_components() -> None:
    service = COLLECTOR["service"]
    for extension in service["extensions"]:
        assert extension in COLLECTOR["extensions"]
    for name, pipeline in service["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in COLLECTOR[kind], f"{component} is not defined under {kind}"
        if "otlp" in pipeline["receivers"]:  # what comes from outside
            assert pipeline["processors"][0] == "memory_limiter"  # first, as the Collector docs require
        assert "batch" not in pipeline.get("processors", []), name  # its batches are in memory only
    assert set(service["pipelines"]) == {"metrics", "metrics/remote_write", "logs"}
    assert service["pipelines"]["metrics"]["exporters"] == ["otlp_http/queue"]
    assert service["pipelines"]["metrics/remote_write"] == {
        "receivers": ["otlp/queue"],
        "exporters": ["prometheus_remote_write"],
    }
    remote_write = COLLECTOR["exporters"]["prometheus_remote_write"]
    assert remote_write["resource_to_telemetry_conversion"]["enabled"] is False
    assert remote_write["disable_scope_info"] is True  # the same series as Prometheus' OTLP receiver
    # One synchronous attempt: the disk queue in front retries.
    assert remote_write["remote_write_queue"] == {"enabled": False}
    assert remote_write["retry_on_failure"] == {"enabled": False}


def test_collector_keeps_what_it_accepted_on_disk() -> None:
    """Every exporter that leaves the Collector queues on disk, in file_storage, in compose's volume."""
    storage = COLLECTOR["extensions"]["file_storage"]["directory"]
    assert "file_storage" in COLLECTOR["service"]["extensions"]
    for name in ("otlp_http/queue", "otlp_http/loki"):
        queue = COLLECTOR["exporters"][name]["sending_queue"]
        assert queue["enabled"] is True and queue["storage"] == "file_storage", name
        assert COLLECTOR["exporters"][name]["retry_on_failure"]["max_elapsed_time"] == 0, name
    queue_leg = COLLECTOR["receivers"]["otlp/queue"]["protocols"]
    assert set(queue_leg) == {"http"} and queue_leg["http"]["endpoint"].startswith("127.0.0.1:")
    assert COLLECTOR["exporters"]["otlp_http/queue"]["endpoint"] == "http://" + queue_leg["http"]["endpoint"]
    collector = COMPOSE["services"]["otel-collector"]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in collector["volumes"]}
    folder = next(target for target in mounts if storage.startswith(target + "/"))
    assert mounts[folder] in COMPOSE["volumes"]  # a named volume: kept across container restarts
    assert collector["user"] == "0:0"  # a new volume's folder is root's; the image's user is 10001


def test_collector_endpoints_match_compose_services_and_ports() -> None:
    services = COMPOSE["services"]
    endpoints = [
        COLLECTOR["exporters"]["prometheus_remote_write"]["http"]["endpoint"],
        COLLECTOR["exporters"]["otlp_http/loki"]["endpoint"],
    ]
    for endpoint in endpoints:
        match = re.match(r"http://([a-z-]+):(\d+)/", endpoint + "/")
        assert match, endpoint
        host, port = match.groups()
        assert host in services
        assert any(str(p).endswith(f":{port}") for p in services[host]["ports"]), endpoint
    received = {
        int(protocol["endpoint"].rsplit(":", 1)[1])
        for protocol in COLLECTOR["receivers"]["otlp"]["protocols"].values()
    }
    published = {int(str(p).rsplit(":", 1)[1]) for p in services["otel-collector"]["ports"]}
    assert received == published == {4317, 4318}
    demo = services["demo"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert demo == "http://otel-collector:4317"


def panels() -> list[dict[str, Any]]:
    return [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]


def test_dashboard_identity_and_datasources() -> None:
    assert DASHBOARD["uid"] == "otel-liveview"
    provisioned = {source["uid"]: source["type"] for source in DATASOURCES["datasources"]}
    # Panels name a datasource variable; provisioned, each variable opens on a bundle datasource.
    defaults = {
        variable["name"]: variable["current"]["value"]
        for variable in DASHBOARD["templating"]["list"]
        if variable["type"] == "datasource"
    }
    for panel in panels():
        for target in panel["targets"]:
            source = target["datasource"]
            uid = re.sub(r"^\$\{(\w+)\}$", lambda m: defaults[m.group(1)], source["uid"])
            assert provisioned.get(uid) == source["type"], (panel["title"], source)
    titles = {panel["title"] for panel in panels()}
    expected = {"Experiment status", "Metrics", "Latest values", "Latest stream values", "Latest data events"}
    assert (
        expected | {"Recent logs", "Publish rate", "Drop rate", "Firing alerts", "Processes alive"} <= titles
    )


def test_dashboard_panels_do_not_overlap() -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in DASHBOARD["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_dashboard_variables_are_defined_and_used() -> None:
    defined = {variable["name"] for variable in DASHBOARD["templating"]["list"]}
    assert defined == {
        "prometheus",
        "loki",
        "service",
        "service_name",
        "service_namespace",
        "topic",
        "experiment",
        "run",
        "rank",
        "metric",
        "stream",
        "instance",
    }
    queries = [t["expr"] for p in panels() for t in p["targets"]] + [
        v["query"]["query"] for v in DASHBOARD["templating"]["list"] if v["type"] == "query"
    ]
    uids = [t["datasource"]["uid"] for p in panels() for t in p["targets"]]
    # `$1` is label_replace's capture group, not a variable.
    used = {name for text in queries + uids for name in re.findall(r"\$\{?(\w+)", text) if not name.isdigit()}
    # $__range and $__rate_interval are Grafana's own; tests/deploy/test_dashboard.py checks the same,
    # strictly, on both copies.
    assert used - {"__range", "__rate_interval"} == defined
