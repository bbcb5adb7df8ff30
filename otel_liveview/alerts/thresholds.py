"""Thresholds files: YAML -> `Threshold`s, checked, every error with its file, line and field.

A thresholds file has one list, `thresholds`; each entry watches a published metric (`metric`) or a
data-stream value (`stream` + `key`) and fires when it is `above` or `below` a number for a duration
(`for`). An optional top-level `datasource_uid` names the Prometheus datasource of the Grafana rules.
`otel_liveview.alerts.rules` renders what this module parses.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from otel_liveview import names

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
TEXT_FIELDS = ("name", "metric", "stream", "key", "phase", "topic", "summary", "description")
_DURATION = re.compile(r"^(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?$")
_ALERT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DATASOURCE_UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")  # what Grafana accepts as a uid
TOP_LEVEL = ("thresholds", "datasource_uid", "runs")

UID_RULE = "a Grafana datasource uid is 1 to 40 letters, digits, '-' or '_'"


@dataclass(frozen=True)
class RunAlerts:
    """When the built-in rules for runs of many ranks fire: the file's optional `runs` mapping."""

    stalled_after: str = "10m"  # LiveViewRunStalled: no rank's step advanced for this long
    straggler_steps: float = 50  # LiveViewRankStraggling: this many steps behind its run's median ...
    straggler_percent: float = 5  # ... and this many percent of the median behind ...
    straggler_for: str = "5m"  # ... for this long
    missing_after: str = "2m"  # LiveViewRanksMissing: a rank that exported nothing for this long


RUN_DURATIONS = ("stalled_after", "straggler_for", "missing_after")
RUN_NUMBERS = ("straggler_steps", "straggler_percent")


class ThresholdsFile(NamedTuple):
    thresholds: list[Threshold]
    datasource_uid: str | None  # None: the file names none
    runs: RunAlerts


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
            family = names.prometheus(names.METRIC)
        else:
            matchers = [("stream", self.stream), ("key", self.key), ("topic", self.topic)]
            family = names.prometheus(names.DATA)
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
    return load_file(path).thresholds


def load_file(path: str | Path) -> ThresholdsFile:
    """The thresholds, the `datasource_uid` (None if the file has none) and the `runs` settings of a
    thresholds file.

    ThresholdsError holds every mistake of the file, a line each, in the order of the file."""
    path = Path(path)
    root = _compose(path)
    if not isinstance(root, yaml.MappingNode):
        raise ThresholdsError(f"{path}:{_line(root)}: expected a mapping with a 'thresholds' list")
    top = _keys(root)
    problems: list[tuple[int, str]] = [  # every mistake at once, not one fix-and-rerun at a time
        (_line(key), f"field '{key.value}': unknown; use {', '.join(TOP_LEVEL[:-1])} or {TOP_LEVEL[-1]}")
        for key, _ in root.value
        if isinstance(key, yaml.ScalarNode) and key.value not in TOP_LEVEL
    ]
    datasource_uid = None
    if "datasource_uid" in top:
        node = top["datasource_uid"]
        try:
            value = _value(node) if isinstance(node, yaml.ScalarNode) else None
        except _Unreadable:
            value = None
        if isinstance(value, str) and DATASOURCE_UID.match(value):
            datasource_uid = value
        else:
            problems.append((_line(node), f"field 'datasource_uid': {UID_RULE}"))
    runs = _runs(top["runs"], problems) if "runs" in top else RunAlerts()
    entries = top.get("thresholds")
    thresholds: list[Threshold] = []
    if entries is None:
        problems.append((_line(root), "expected a mapping with a 'thresholds' list"))
    elif not isinstance(entries, yaml.SequenceNode):
        problems.append((_line(entries), "'thresholds' must be a list"))
    else:
        thresholds = _thresholds(entries, problems)
    if problems:
        raise ThresholdsError("\n".join(f"{path}:{line}: {message}" for line, message in sorted(problems)))
    return ThresholdsFile(thresholds, datasource_uid, runs)


def _runs(node: yaml.Node, problems: list[tuple[int, str]]) -> RunAlerts:
    """The `runs` mapping: durations and non-negative numbers, each mistake added to `problems`."""
    if not isinstance(node, yaml.MappingNode):
        problems.append((_line(node), "'runs' must be a mapping of settings"))
        return RunAlerts()
    values: dict[str, Any] = {}
    for field, value_node in _keys(node).items():
        where = _line(value_node)
        if field not in RUN_DURATIONS + RUN_NUMBERS:
            problems.append(
                (where, f"field 'runs.{field}': unknown; use {', '.join(RUN_DURATIONS + RUN_NUMBERS)}")
            )
            continue
        try:
            value = _value(value_node) if isinstance(value_node, yaml.ScalarNode) else None
        except _Unreadable:
            value = None
        if field in RUN_DURATIONS and not (isinstance(value, str) and value and _DURATION.match(value)):
            problems.append(
                (where, f"field 'runs.{field}': {value!r} is not a Prometheus duration such as 5m")
            )
        elif field in RUN_NUMBERS and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
        ):
            problems.append((where, f"field 'runs.{field}': must be a number of at least 0, not {value!r}"))
        else:
            values[field] = value
    return RunAlerts(**values)


def _compose(path: Path) -> yaml.Node | None:
    """The YAML node tree of the file; its marks carry the file's name."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ThresholdsError(f"{path}: cannot read: {error.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ThresholdsError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})"
        ) from None
    stream = io.StringIO(text)
    stream.name = str(path)  # what the YAML reader names in its marks
    try:
        return yaml.compose(stream)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        context = f" ({error.context})" if error.context else ""
        raise ThresholdsError(f"{where}: not valid YAML: {error.problem}{context}") from None
    except yaml.YAMLError as error:  # the reader's: a character YAML does not allow
        raise ThresholdsError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:  # the composer recurses once per level
        raise ThresholdsError(f"{path}: nested too deeply to be a thresholds file") from None


def _thresholds(entries: yaml.SequenceNode, problems: list[tuple[int, str]]) -> list[Threshold]:
    thresholds = []
    seen: dict[str, int] = {}
    for node in entries.value:
        threshold = _threshold(node, problems)
        if threshold is None:
            continue
        if threshold.name in seen:
            problems.append(
                (
                    _line(node),
                    f"field 'name': {threshold.name!r} is already used on line {seen[threshold.name]}",
                )
            )
        seen[threshold.name] = _line(node)
        thresholds.append(threshold)
    return thresholds


def _keys(node: yaml.MappingNode) -> dict[str, yaml.Node]:
    return {key.value: value for key, value in node.value if isinstance(key, yaml.ScalarNode)}


def _line(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 1


class _Unreadable(Exception):
    """A scalar YAML cannot make a value of (an unknown tag, `!!float abc`, a 13th month)."""


def _value(node: yaml.ScalarNode) -> Any:
    try:
        return yaml.safe_load(yaml.serialize(node))
    except yaml.MarkedYAMLError as error:
        raise _Unreadable(error.problem) from None
    except (yaml.YAMLError, ValueError, TypeError) as error:
        raise _Unreadable(str(error)) from None


def _threshold(node: yaml.Node, problems: list[tuple[int, str]]) -> Threshold | None:
    """The entry's Threshold; None, with every mistake of the entry added to `problems`, if it has any."""
    if not isinstance(node, yaml.MappingNode):
        problems.append((_line(node), "each threshold must be a mapping"))
        return None
    entry = _Entry(node)
    threshold = entry.threshold()
    problems.extend(entry.found)
    return threshold


class _Entry:
    """One entry of `thresholds:`, read field by field; every mistake goes to `found`, with its line."""

    def __init__(self, node: yaml.MappingNode) -> None:
        self.node = node
        self.fields = _keys(node)
        self.found: list[tuple[int, str]] = []
        self.values: dict[str, Any] = {}
        for field, value_node in self.fields.items():
            if field not in FIELDS:
                self.fail(field, f"unknown field; use {', '.join(sorted(FIELDS))}")
            elif not isinstance(value_node, yaml.ScalarNode):
                self.fail(field, "must be a single value")
            else:
                try:
                    self.values[field] = _value(value_node)
                except _Unreadable as error:
                    self.fail(field, f"cannot be read: {error}")
        self.texts = {field: self._text(field) for field in TEXT_FIELDS}

    def fail(self, field: str, message: str) -> None:
        self.found.append((_line(self.fields.get(field, self.node)), f"field '{field}': {message}"))

    def _text(self, field: str) -> str | None:
        value = self.values.get(field)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(field, "must be a non-empty string")
            return None
        return value

    def _check_target(self) -> None:
        """`metric`, or `stream` and `key` (given at all, even if wrong)."""
        given = self.fields
        if ("metric" in given) == ("stream" in given):
            self.fail(
                "metric" if "metric" in given else "stream", "give either 'metric', or 'stream' and 'key'"
            )
        elif "stream" in given and "key" not in given:
            self.fail("key", "a 'stream' threshold needs the 'key' of the value to watch")
        elif "metric" in given and "key" in given:
            self.fail("key", "'key' belongs to 'stream' thresholds")

    def _bound(self) -> tuple[str, Any]:
        """('above' or 'below', the number)."""
        bounds = [f for f in ("above", "below") if f in self.fields]
        bound = self.values.get(bounds[0]) if bounds else None
        if len(bounds) != 1:
            self.fail(bounds[1] if bounds else "above", "give exactly one of 'above' or 'below'")
        elif bounds[0] in self.values and (isinstance(bound, bool) or not isinstance(bound, (int, float))):
            self.fail(bounds[0], f"must be a number, not {bound!r}")
        return (bounds[0] if bounds else "above"), bound

    def _duration(self) -> str:
        duration = str(self.values.get("for", "0s"))
        if "for" in self.values and (not duration or not _DURATION.match(duration)):
            self.fail("for", f"{duration!r} is not a Prometheus duration such as 30s, 5m or 1h30m")
        return duration

    def _severity(self) -> Any:
        severity = self.values.get("severity", "warning")
        if "severity" in self.values and severity not in SEVERITIES:
            self.fail("severity", f"{severity!r} is not one of {', '.join(SEVERITIES)}")
        return severity

    def _name(self) -> str | None:
        name = self.texts["name"]
        if name is not None and not _ALERT_NAME.match(name):
            self.fail("name", f"{name!r} is not a valid alert name ([A-Za-z_][A-Za-z0-9_]*)")
        return name

    def threshold(self) -> Threshold | None:
        self._check_target()
        direction, bound = self._bound()
        duration, severity, name = self._duration(), self._severity(), self._name()
        if self.found:
            return None
        texts = self.texts
        metric = texts["metric"]
        watched = metric if metric is not None else f"{texts['stream']} {texts['key']}"
        return Threshold(
            name=name or _alert_name(watched, direction),
            above=bound if direction == "above" else None,
            below=bound if direction == "below" else None,
            duration=duration,
            severity=severity,
            metric=metric,
            stream=texts["stream"],
            key=texts["key"],
            phase=texts["phase"],
            topic=texts["topic"],
            summary=texts["summary"],
            description=texts["description"],
        )


def _alert_name(watched: str, direction: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", watched)
    return "LiveView" + "".join(w[:1].upper() + w[1:] for w in words if w) + direction.capitalize()


__all__ = [
    "DATASOURCE_UID",
    "FIELDS",
    "RUN_DURATIONS",
    "RUN_NUMBERS",
    "SEVERITIES",
    "TEXT_FIELDS",
    "TOP_LEVEL",
    "UID_RULE",
    "RunAlerts",
    "Threshold",
    "ThresholdsError",
    "ThresholdsFile",
    "load",
    "load_file",
    "promql_number",
]
