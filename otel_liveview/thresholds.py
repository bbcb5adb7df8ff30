"""Thresholds files: YAML -> `Threshold`s, checked, every error with its file, line and field.

A thresholds file has one list, `thresholds`; each entry watches a published metric (`metric`) or a
data-stream value (`stream` + `key`) and fires when it is `above` or `below` a number for a duration
(`for`). An optional top-level `datasource_uid` names the Prometheus datasource of the Grafana rules.
`otel_liveview.alerts` renders what this module parses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SEVERITIES = ("info", "warning", "critical")
FIELDS = {
    "name",
    "metric",
    "stream",
    "key",
    "above",
    "below",
    "for",
    "severity",
    "phase",
    "topic",
    "summary",
    "description",
}
_DURATION = re.compile(r"^(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?$")
_ALERT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DATASOURCE_UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")  # what Grafana accepts as a uid
TOP_LEVEL = ("thresholds", "datasource_uid")

UID_RULE = "a Grafana datasource uid is 1 to 40 letters, digits, '-' or '_'"


class ThresholdsError(ValueError):
    """A thresholds file that cannot be turned into rules; the message names line and field."""


@dataclass(frozen=True)
class Threshold:
    name: str
    above: float | None
    below: float | None
    duration: str
    severity: str
    metric: str | None = None
    stream: str | None = None
    key: str | None = None
    phase: str | None = None
    topic: str | None = None
    summary: str | None = None
    description: str | None = None

    @property
    def selector(self) -> str:
        """The PromQL selector of the series this threshold watches."""
        if self.metric is not None:
            matchers = [("metric", self.metric), ("phase", self.phase), ("topic", self.topic)]
            family = "liveview_metric"
        else:
            matchers = [("stream", self.stream), ("key", self.key), ("topic", self.topic)]
            family = "liveview_data"
        inside = ",".join(f'{label}="{_escape(value)}"' for label, value in matchers if value is not None)
        return f"{family}{{{inside}}}"

    @property
    def comparison(self) -> tuple[str, float]:
        return (">", self.above) if self.above is not None else ("<", self.below)  # type: ignore[return-value]

    @property
    def expr(self) -> str:
        operator, bound = self.comparison
        return f"{self.selector} {operator} {promql_number(bound)}"

    @property
    def watched(self) -> str:
        return self.metric if self.metric is not None else f"{self.stream}.{self.key}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def promql_number(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


def load(path: str | Path) -> list[Threshold]:
    """Parse and check a thresholds file; ThresholdsError names the line and the field."""
    return load_file(path)[0]


def load_file(path: str | Path) -> tuple[list[Threshold], str | None]:
    """The thresholds and the `datasource_uid` (None if the file has none) of a thresholds file."""
    path = Path(path)
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ThresholdsError(f"{path}: not valid YAML: {error}") from None
    except OSError as error:
        raise ThresholdsError(f"{path}: cannot read: {error.strerror}") from None
    if not isinstance(root, yaml.MappingNode) or "thresholds" not in _keys(root):
        raise ThresholdsError(f"{path}:{_line(root)}: expected a mapping with a 'thresholds' list")
    unknown = sorted(set(_keys(root)) - set(TOP_LEVEL))
    if unknown:
        raise ThresholdsError(
            f"{path}:{_line(_keys(root)[unknown[0]])}: field '{unknown[0]}': unknown; use {' or '.join(TOP_LEVEL)}"
        )
    datasource_uid = None
    if "datasource_uid" in _keys(root):
        node = _keys(root)["datasource_uid"]
        value = yaml.safe_load(yaml.serialize(node)) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, str) or not DATASOURCE_UID.match(value):
            raise ThresholdsError(f"{path}:{_line(node)}: field 'datasource_uid': {UID_RULE}")
        datasource_uid = value
    entries = _keys(root)["thresholds"]
    if not isinstance(entries, yaml.SequenceNode):
        raise ThresholdsError(f"{path}:{_line(entries)}: 'thresholds' must be a list")
    thresholds: list[Threshold] = []
    problems: list[str] = []  # every threshold's error at once, not one fix-and-rerun at a time
    seen: dict[str, int] = {}
    for node in entries.value:
        try:
            threshold = _threshold(path, node)
        except ThresholdsError as error:
            problems.append(str(error))
            continue
        if threshold.name in seen:
            problems.append(
                f"{path}:{_line(node)}: field 'name': {threshold.name!r} is already used on line {seen[threshold.name]}"
            )
        seen[threshold.name] = _line(node)
        thresholds.append(threshold)
    if problems:
        raise ThresholdsError("\n".join(problems))
    return thresholds, datasource_uid


def _keys(node: yaml.MappingNode) -> dict[str, yaml.Node]:
    return {key.value: value for key, value in node.value if isinstance(key, yaml.ScalarNode)}


def _line(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 1


def _threshold(path: Path, node: yaml.Node) -> Threshold:
    if not isinstance(node, yaml.MappingNode):
        raise ThresholdsError(f"{path}:{_line(node)}: each threshold must be a mapping")
    fields = _keys(node)

    def fail(field: str, message: str) -> ThresholdsError:
        return ThresholdsError(f"{path}:{_line(fields.get(field, node))}: field '{field}': {message}")

    unknown = sorted(set(fields) - FIELDS)
    if unknown:
        raise fail(unknown[0], f"unknown field; use {', '.join(sorted(FIELDS))}")
    values: dict[str, Any] = {}
    for field, value_node in fields.items():
        if not isinstance(value_node, yaml.ScalarNode):
            raise fail(field, "must be a single value")
        values[field] = yaml.safe_load(yaml.serialize(value_node))

    def text(field: str) -> str | None:
        value = values.get(field)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise fail(field, "must be a non-empty string")
        return value

    metric, stream, key = text("metric"), text("stream"), text("key")
    if (metric is None) == (stream is None):
        raise fail("metric" if metric else "stream", "give either 'metric', or 'stream' and 'key'")
    if stream is not None and key is None:
        raise fail("key", "a 'stream' threshold needs the 'key' of the value to watch")
    if metric is not None and key is not None:
        raise fail("key", "'key' belongs to 'stream' thresholds")
    bounds = [f for f in ("above", "below") if f in values]
    if len(bounds) != 1:
        raise fail(bounds[1] if bounds else "above", "give exactly one of 'above' or 'below'")
    bound = values[bounds[0]]
    if isinstance(bound, bool) or not isinstance(bound, (int, float)):
        raise fail(bounds[0], f"must be a number, not {bound!r}")
    duration = str(values.get("for", "0s"))
    if not duration or not _DURATION.match(duration):
        raise fail("for", f"{duration!r} is not a Prometheus duration such as 30s, 5m or 1h30m")
    severity = values.get("severity", "warning")
    if severity not in SEVERITIES:
        raise fail("severity", f"{severity!r} is not one of {', '.join(SEVERITIES)}")
    watched = metric if metric is not None else f"{stream} {key}"
    name = text("name") or _alert_name(watched, bounds[0])
    if not _ALERT_NAME.match(name):
        raise fail("name", f"{name!r} is not a valid alert name ([A-Za-z_][A-Za-z0-9_]*)")
    return Threshold(
        name=name,
        above=bound if bounds[0] == "above" else None,
        below=bound if bounds[0] == "below" else None,
        duration=duration,
        severity=severity,
        metric=metric,
        stream=stream,
        key=key,
        phase=text("phase"),
        topic=text("topic"),
        summary=text("summary"),
        description=text("description"),
    )


def _alert_name(watched: str, direction: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", watched)
    return "LiveView" + "".join(w[:1].upper() + w[1:] for w in words if w) + direction.capitalize()
