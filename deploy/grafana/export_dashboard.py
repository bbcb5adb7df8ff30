"""Write the import copy of the LiveView dashboard from the provisioned one.

    python deploy/grafana/export_dashboard.py            # writes deploy/grafana/import/liveview.json
    python deploy/grafana/export_dashboard.py --check    # exit 1 if the copy is stale

`grafana_dashboards/liveview.json` is the one source: Grafana provisions it as it is, and its
datasource variables (`prometheus`, `loki`) default to the bundle's datasources
(deploy/grafana/provisioning/datasources). Grafana ignores `__inputs` when it provisions a file, so
the copy for Dashboards -> New -> Import (or POST /api/dashboards/import) is a second file, in
Grafana's export format for sharing: `__inputs` declares one datasource input per datasource
variable (DS_PROMETHEUS, DS_LOKI), `__requires` the Grafana version, datasource and panel plugins,
and each datasource variable's current value is its input's `${DS_...}` placeholder, which the
import replaces with the datasource the user picks. Panels, targets and query variables keep
referring to `${prometheus}` and `${loki}`, so the datasources can still be switched after import.
Nothing else differs. Standard library only.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "grafana_dashboards" / "liveview.json"
TARGET = ROOT / "deploy" / "grafana" / "import" / "liveview.json"
GRAFANA_VERSION = "13.2.0"  # the version docker-compose.yml pins
PLUGIN_NAMES = {
    "prometheus": "Prometheus",
    "loki": "Loki",
    "stat": "Stat",
    "table": "Table",
    "timeseries": "Time series",
    "logs": "Logs",
    "bargauge": "Bar gauge",
}


def input_name(plugin_id: str) -> str:
    """The `__inputs` name of a datasource plugin's input, as Grafana's exporter names them."""
    return "DS_" + plugin_id.upper()


def import_copy(dashboard: dict[str, Any]) -> dict[str, Any]:
    """The dashboard as Grafana's import expects it: inputs for the datasource variables."""
    result = copy.deepcopy(dashboard)
    inputs = []
    for variable in result["templating"]["list"]:
        if variable["type"] != "datasource":
            continue
        plugin = variable["query"]
        name = input_name(plugin)
        inputs.append(
            {
                "name": name,
                "label": PLUGIN_NAMES.get(plugin, plugin),
                "description": f"The {PLUGIN_NAMES.get(plugin, plugin)} datasource of the `{variable['name']}` variable",
                "type": "datasource",
                "pluginId": plugin,
                "pluginName": PLUGIN_NAMES.get(plugin, plugin),
            }
        )
        variable["current"] = {"selected": False, "text": "${" + name + "}", "value": "${" + name + "}"}
    panel_types = sorted({panel["type"] for panel in result["panels"] if panel["type"] != "row"})
    requires = [{"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION}]
    requires += [
        {"type": "datasource", "id": entry["pluginId"], "name": entry["pluginName"], "version": "1.0.0"}
        for entry in inputs
    ]
    requires += [
        {"type": "panel", "id": kind, "name": PLUGIN_NAMES.get(kind, kind), "version": ""}
        for kind in panel_types
    ]
    return {"__inputs": inputs, "__elements": {}, "__requires": requires, "id": None, **result}


def render() -> str:
    return json.dumps(import_copy(json.loads(SOURCE.read_text())), indent=2) + "\n"


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if the copy is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{_shown(TARGET)} is stale: run python {_shown(Path(__file__))}")
            return 1
        print(f"{_shown(TARGET)} is up to date")
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text)
    print(f"wrote {_shown(TARGET)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
