"""The LiveView dashboard read the way Grafana reads it, for the tests and benchmarks.dashboard.

No Grafana runs here. This module does, for the JSON the dashboard uses, what Grafana does with it:
variable references (`$name`, `${name}`, `${name:format}`, `[[name]]`) and their interpolation,
template variables resolved in order (a query variable's query interpolated with the values
before it, run against Prometheus – `label_values(...)` as the label values API, `query_result(...)`
as an instant query whose series are written out as Grafana's Prometheus datasource writes them –,
its `regex` applied as Grafana's metricNamesToVariableValues does, sorted; All -> its `allValue`;
no option -> the empty string), datasource variables, the time range variables (`$__range`,
`$__interval`, `$__rate_interval` as the Prometheus datasource computes them), rows
repeated per value of a variable, and the import of the export format (`__inputs` placeholders
replaced in every string, as Grafana's importer does). Anything outside that subset raises, so a
new construct cannot pass unchecked.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support import ROOT

DASHBOARD_FILE = ROOT / "grafana_dashboards" / "liveview.json"
DEFAULT_RANGE = 900.0  # seconds: the dashboard's default time range, now-15m to now
IMPORT_FILE = ROOT / "deploy" / "grafana" / "import" / "liveview.json"
DATASOURCES_FILE = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "datasources.yaml"
ALL = "$__all"

# Grafana's variable syntax (public/app/features/variables/utils.ts, variableRegex).
REFERENCE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
# `$1` in label_replace's replacement: no variable has that name, so Grafana leaves it as it is.
CAPTURE_GROUP = re.compile(r"\$\d+")
LABEL_VALUES = re.compile(r"label_values\((?:(.*),\s*)?(\w+)\)")
QUERY_RESULT = re.compile(r"query_result\((.*)\)", re.DOTALL)
# Grafana's own variables the dashboard may use; any other `__` name is an error here.
BUILTINS = {"__range", "__range_s", "__range_ms", "__interval", "__interval_ms", "__rate_interval"}
# Grafana's max data points default to the panel's width in pixels: a half-width panel on a 1920 px screen.
PANEL_WIDTH = 940
DEFAULT_SCRAPE_INTERVAL = 15.0  # seconds: the Prometheus datasource's when its timeInterval is unset
# Grafana's roundInterval (rangeutil.ts): an interval in ms up to the bound -> the interval it rounds to.
_ROUNDED_MS = [
    (10, 1),
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1_500, 1_000),
    (3_500, 2_000),
    (7_500, 5_000),
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (900_000, 600_000),
    (1_200_000, 900_000),
    (1_800_000, 1_200_000),
    (3_600_000, 1_800_000),
    (7_200_000, 3_600_000),
    (10_800_000, 7_200_000),
    (21_600_000, 10_800_000),
    (43_200_000, 21_600_000),
    (86_400_000, 43_200_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
]
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}

_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def load(path: Path = DASHBOARD_FILE) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def provisioned_datasources() -> list[dict[str, Any]]:
    return list(yaml.safe_load(DATASOURCES_FILE.read_text())["datasources"])


def variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return list(dashboard["templating"]["list"])


def variable(dashboard: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [v for v in variables(dashboard) if v["name"] == name]
    return found


def row_titles(dashboard: dict[str, Any], row: str) -> tuple[str, ...]:
    """Titles of the panels under the row titled `row` (up to the next row)."""
    titles: list[str] = []
    current = None
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
        elif current == row:
            titles.append(panel["title"])
    return tuple(titles)


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def targets(dashboard: dict[str, Any], kind: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(panel title, target) of every query of every panel, of datasource type `kind` if given."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if kind is None or target["datasource"]["type"] == kind:
                yield panel["title"], target


def repeated_rows(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(row, its panels) of every row repeated per value of a variable: the panels that follow the
    row up to the next row, as Grafana repeats them with it."""
    rows: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    current: list[dict[str, Any]] | None = None
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            assert not panel.get("collapsed"), "a collapsed row keeps its panels inside: not used here"
            current = [] if panel.get("repeat") else None
            if current is not None:
                rows.append((panel, current))
        elif current is not None:
            current.append(panel)
    return rows


def interval_seconds(text: str) -> float:
    """A Grafana interval string ("1s", "15s", "1m") in seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", text.strip())
    assert match, f"not an interval Grafana reads: {text!r}"
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def scrape_interval(datasources: list[dict[str, Any]] | None = None) -> float:
    """The provisioned Prometheus datasource's scrape interval (jsonData.timeInterval), in seconds."""
    (source,) = [s for s in datasources or provisioned_datasources() if s["type"] == "prometheus"]
    text = source.get("jsonData", {}).get("timeInterval")
    return interval_seconds(text) if text else DEFAULT_SCRAPE_INTERVAL


def round_interval(ms: float) -> float:
    return next((rounded for bound, rounded in _ROUNDED_MS if ms <= bound), 31_536_000_000)


def range_variables(
    start: float, end: float, *, scrape: float | None = None, width: int = PANEL_WIDTH
) -> dict[str, str]:
    """`$__range`, `$__interval`, `$__rate_interval` and their kin for a time range, as Grafana's
    Prometheus datasource fills them in: the range in whole seconds; the interval the range over the
    panel's max data points, rounded (roundInterval), at least the scrape interval and range / 11000;
    the rate interval max($__interval + scrape interval, 4 × scrape interval), in seconds. `scrape`
    defaults to the provisioned datasource's timeInterval (15 s when it has none)."""
    scrape = scrape_interval() if scrape is None else scrape
    seconds = round(end - start)
    interval = max(round_interval((end - start) * 1000 / width) / 1000, scrape, (end - start) / 11000)
    return {
        "__range": f"{seconds}s",
        "__range_s": str(seconds),
        "__range_ms": str(round((end - start) * 1000)),
        "__interval": f"{_js_number(interval)}s",
        "__interval_ms": _js_number(interval * 1000),
        "__rate_interval": f"{_js_number(max(interval + scrape, 4 * scrape))}s",
    }


def query_text(var: dict[str, Any]) -> str:
    query = var["query"]
    return str(query["query"] if isinstance(query, dict) else query)


def references(text: str) -> set[str]:
    """Names of the variables `text` refers to."""
    return {
        next(group for group in match.groups() if group)
        for match in REFERENCE.finditer(text)
        if not CAPTURE_GROUP.fullmatch(match.group(0))
    }


def interpolate(text: str, values: dict[str, str]) -> str:
    """Replace every variable reference by its value; an unknown variable is an error (Grafana would
    leave the text as it is, and the query would fail or select nothing)."""

    def replace(match: re.Match[str]) -> str:
        if CAPTURE_GROUP.fullmatch(match.group(0)):
            return match.group(0)
        name = match.group(1) or match.group(2) or match.group(4)
        if name not in values:
            raise KeyError(f"{text!r} refers to ${name}, which is not defined before it")
        return values[name]

    return REFERENCE.sub(replace, text)


def js_regex(regex: str) -> re.Pattern[str]:
    """Grafana's stringToJsRegex for the flags and syntax the dashboard uses."""
    match = re.fullmatch(r"/(.*)/([gimsuy]*)", regex)
    assert match, f"not a /regex/ as Grafana wants it: {regex}"
    flags = re.IGNORECASE if "i" in match.group(2) else 0
    return re.compile(match.group(1).replace("(?<", "(?P<"), flags)


def regex_options(regex: str, values: list[str]) -> list[str]:
    """Option values from raw values, as metricNamesToVariableValues in Grafana's scenes: a value the
    regex does not match is dropped; a named group `value` (or `text`), else the first capture group,
    else the value itself is kept; duplicates once."""
    pattern = js_regex(regex) if regex else None
    options: list[str] = []
    for value in values:
        if pattern is not None:
            match = pattern.search(value)
            if match is None:
                continue
            groups = match.groupdict()
            if groups.get("value") or groups.get("text"):
                value = groups.get("value") or groups["text"]
            elif match.re.groups:
                assert match.group(1) is not None, f"{regex} matched {value!r} without its group"
                value = match.group(1)
        if value not in options:
            options.append(value)
    return options


def sort_options(options: list[str], sort: int) -> list[str]:
    if sort in (0, None):
        return options
    if sort == 1:
        return sorted(options)
    if sort == 2:
        return sorted(options, reverse=True)
    if sort == 3:  # numerical, ascending: the numbers in the texts, as Grafana's sortVariableValues
        return sorted(
            options,
            key=lambda option: (
                float(m.group()) if (m := re.search(r"-?\d+(\.\d+)?", option)) else float("-inf")
            ),
        )
    raise AssertionError(f"sort {sort} is not one the dashboard uses")


# -- Prometheus' side of a query variable ------------------------------------------------------------


def label_values(base_url: str, selector: str | None, label: str, start: float, end: float) -> list[str]:
    """What the Prometheus datasource asks for `label_values(selector, label)`: the label values API
    with the selector as match[], over the dashboard's time range."""
    params = [("start", f"{start:.3f}"), ("end", f"{end:.3f}")]
    if selector:
        params.append(("match[]", selector))
    url = f"{base_url}/api/v1/label/{urllib.parse.quote(label)}/values?{urllib.parse.urlencode(params)}"
    with _http.open(url, timeout=30) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return list(answer["data"] or [])


def variable_request(query: str) -> tuple[str | None, str]:
    """(selector, label) of a `label_values(...)` query; anything else is not supported here."""
    match = LABEL_VALUES.fullmatch(query.strip())
    assert match, f"variable query outside what this module understands: {query}"
    return match.group(1), match.group(2)


def _js_number(value: float) -> str:
    """A number as JavaScript writes it (String(n)) for the values Prometheus returns."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def query_result_texts(result: list[dict[str, Any]]) -> list[str]:
    """What Grafana's Prometheus datasource makes of a `query_result(...)` instant vector (its
    metric_find_query): `name{label="value",...} value timestamp_ms` per series, in the order
    Prometheus returned them."""
    texts = []
    for series in result:
        labels = dict(series["metric"])
        name = labels.pop("__name__", "")
        pairs = ",".join(f'{key}="{value}"' for key, value in labels.items())
        time_ms = _js_number(float(series["value"][0]) * 1000)
        texts.append(f"{name}{{{pairs}}} {series['value'][1]} {time_ms}")
    return texts


def variable_options(
    var: dict[str, Any],
    values: dict[str, str],
    fetch: Callable[[str | None, str], list[str]],
    instant: Callable[[str], list[dict[str, Any]]] | None = None,
) -> list[str]:
    """The options of query variable `var` given the values of the variables before it."""
    name = var["name"]
    interpolate(var["datasource"]["uid"], values)  # its datasource variable comes before it
    text = interpolate(query_text(var), values)
    result = QUERY_RESULT.fullmatch(text.strip())
    if result:
        assert instant is not None, f"${name} is a query_result variable: give resolve() `instant`"
        raw = query_result_texts(instant(result.group(1)))
    else:
        raw = fetch(*variable_request(text))
    return sort_options(regex_options(var.get("regex", ""), raw), var.get("sort", 0))


def resolve(
    dashboard: dict[str, Any],
    fetch: Callable[[str | None, str], list[str]],
    chosen: dict[str, str] | None = None,
    instant: Callable[[str], list[dict[str, Any]]] | None = None,
) -> dict[str, str]:
    """Every variable's value, in the dashboard's order, as Grafana sets them on load.

    `fetch(selector, label)` runs a label_values query (the selector already interpolated);
    `instant(expr)` runs the instant query of a query_result variable and returns its series.
    `chosen` holds what a user picked: it must be among the options. Otherwise a datasource variable
    keeps its current value, a multi-value variable whose current value is All takes its allValue,
    and any other takes its first option, or "" when it has none.
    """
    chosen = chosen or {}
    values: dict[str, str] = {}
    for var in variables(dashboard):
        name = var["name"]
        if var["type"] == "datasource":
            values[name] = chosen.get(name, var["current"]["value"])
            continue
        assert var["type"] == "query", f"variable type {var['type']} is not one the dashboard uses"
        assert var["datasource"]["type"] == "prometheus", f"${name}: only Prometheus query variables"
        options = variable_options(var, values, fetch, instant)
        if name in chosen:
            assert chosen[name] in options or (chosen[name] == ALL and var.get("includeAll")), (
                f"{chosen[name]!r} is not an option of ${name}: {options}"
            )
            pick = chosen[name]
        elif var.get("includeAll") and var.get("current", {}).get("value") in (ALL, [ALL]):
            pick = ALL
        else:
            pick = options[0] if options else ""
        values[name] = var.get("allValue", ".*") if pick == ALL else pick
    return values


def instant_query(base_url: str, expr: str, at: float) -> list[dict[str, Any]]:
    """The instant vector of `expr` at `at`, as the Prometheus datasource asks for it."""
    params = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    with _http.open(f"{base_url}/api/v1/query?{params}", timeout=30) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def on_load(
    base_url: str, chosen: dict[str, str], at: float, dashboard: dict[str, Any] | None = None
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """What Grafana has when the dashboard opens at `at` on the Prometheus at `base_url`, the user
    having picked `chosen`: every variable's value, the time range's, and each variable query's raw
    answer (by "LABEL of SELECTOR" for label_values, by expression for query_result)."""
    options: dict[str, list[str]] = {}

    def fetch(selector: str | None, label: str) -> list[str]:
        found = label_values(base_url, selector, label, at - DEFAULT_RANGE, at)
        options[f"{label} of {selector}"] = found
        return found

    def instant(expr: str) -> list[dict[str, Any]]:
        found = instant_query(base_url, expr, at)
        options[expr] = query_result_texts(found)
        return found

    values = resolve(dashboard or load(), fetch, chosen, instant)
    values.update(range_variables(at - DEFAULT_RANGE, at))
    return values, options


@dataclass
class Board:
    """The dashboard as Grafana would show it at `at` on the Prometheus at `base_url`: variables
    resolved (`on_load`), a panel's query interpolated and run."""

    base_url: str
    values: dict[str, str]
    options: dict[str, list[str]]
    at: float
    dashboard: dict[str, Any] = field(default_factory=load)

    @classmethod
    def on_load(cls, base_url: str, chosen: dict[str, str], at: float) -> Board:
        values, options = on_load(base_url, chosen, at)
        return cls(base_url, values, options, round(at, 3))

    def expr(self, title: str, ref: str = "A", **values: str) -> str:
        (target,) = [
            t for name, t in targets(self.dashboard, "prometheus") if name == title and t["refId"] == ref
        ]
        return interpolate(target["expr"], {**self.values, **values})

    def run(self, title: str, ref: str = "A", **values: str) -> list[dict[str, Any]]:
        return instant_query(self.base_url, self.expr(title, ref, **values), self.at)

    def by(self, label: str, title: str, ref: str = "A", **values: str) -> dict[str, float]:
        """{series' `label`: value} of a query; one series per label value."""
        result = self.run(title, ref, **values)
        found = {r["metric"].get(label, ""): float(r["value"][1]) for r in result}
        assert len(found) == len(result), result
        return found

    def one(self, title: str, ref: str = "A", **values: str) -> float:
        (result,) = self.run(title, ref, **values)
        return float(result["value"][1])


# -- import -------------------------------------------------------------------------------------------


def grafana_import(dashboard: dict[str, Any], inputs: dict[str, str]) -> dict[str, Any]:
    """What POST /api/dashboards/import stores: every `${INPUT}` of `__inputs` replaced in every string
    by the value given for it (a datasource uid), `__inputs` dropped (Grafana's DashTemplateEvaluator).
    A missing input is an error, as there."""
    placeholders = {}
    for entry in dashboard.get("__inputs", []):
        if entry["name"] not in inputs:
            raise KeyError(f"Dashboard input variable: {entry['name']} missing from import command")
        placeholders["${" + entry["name"] + "}"] = inputs[entry["name"]]

    def evaluate(value: Any) -> Any:
        if isinstance(value, str):
            return re.sub(r"\$\{.+?\}", lambda m: placeholders.get(m.group(0), m.group(0)), value)
        if isinstance(value, list):
            return [evaluate(item) for item in value]
        if isinstance(value, dict):
            return {key: evaluate(item) for key, item in value.items() if key != "__inputs"}
        return value

    return dict(evaluate(dashboard))


def walk(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every (path, value) of a JSON document, containers included."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, (*path, index))
