"""Writes the JSON schemas kubeconform validates the Helm chart's objects against (.ci/build-k8s-tools).

- configmap-v1.json: Kubernetes' own strict schema from the kubernetes-validate wheel, with the
  definitions it refers to inlined, so kubeconform needs nothing but the file.
- prometheusrule-monitoring-v1.json: prometheus-operator's CRD (its JSON form in the Go module),
  made strict the way kubeconform's converter does: no property the CRD does not declare.

The names follow kubeconform's `{{.ResourceKind}}{{.KindSuffix}}.json`. Standard library only: it runs
before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path
from typing import Any

KUBERNETES = "v1.37.0"
_DEFINITIONS = "/api/_definitions.json#/$defs/"
_LOCAL = "#/$defs/"


def configmap_schema(wheel: Path) -> dict[str, Any]:
    """The strict ConfigMap schema of KUBERNETES, standalone."""
    folder = f"kubernetes_validate/kubernetes-json-schema/{KUBERNETES}-local-strict"
    with zipfile.ZipFile(wheel) as archive:
        schema = json.loads(archive.read(f"{folder}/configmap-v1.json"))
        definitions = json.loads(archive.read(f"{folder}/_definitions.json"))["$defs"]
    schema.pop("$id", None)
    needed: dict[str, Any] = {}
    pending = _refs(schema)
    while pending:
        name = pending.pop()
        if name not in needed:
            needed[name] = definitions[name]
            pending |= _refs(needed[name])
    schema["$defs"] = needed
    return dict(_local_refs(schema))


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].removeprefix(_DEFINITIONS).removeprefix(_LOCAL)} if "$ref" in node else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()


def _local_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: value.replace(_DEFINITIONS, _LOCAL) if key == "$ref" else _local_refs(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_local_refs(item) for item in node]
    return node


def crd_schema(crd: dict[str, Any], version: str) -> dict[str, Any]:
    """The JSON schema of one version of a CRD, strict: undeclared properties are errors."""
    (served,) = (v for v in crd["spec"]["versions"] if v["name"] == version)
    schema = dict(_strict(served["schema"]["openAPIV3Schema"]))
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    return schema


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("anyOf", None)
        out["type"] = ["integer", "string"]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--wheel", type=Path, required=True, help="the kubernetes-validate wheel")
    parser.add_argument("--crd", type=Path, required=True, help="prometheusrules-crd.json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    schemas = {
        "configmap-v1.json": configmap_schema(args.wheel),
        "prometheusrule-monitoring-v1.json": crd_schema(json.loads(args.crd.read_text()), "v1"),
    }
    for name, schema in schemas.items():
        (args.out / name).write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
