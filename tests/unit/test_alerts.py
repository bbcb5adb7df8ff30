"""Thresholds file -> rule files: rendering, errors, and the real promtool on every rule file."""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_liveview.alerts import rules as alerts
from otel_liveview.alerts import thresholds
from otel_liveview.cli import alerts as alerts_command
from tests.support import ROOT
from tests.support.servers import server_binary

DEPLOY = ROOT / "deploy"
EXAMPLE = DEPLOY / "alerts" / "thresholds.yaml"
RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))


def test_checked_in_files_are_rendered_from_the_example(tmp_path: Path) -> None:
    written = alerts.render(EXAMPLE, tmp_path)
    assert len(written) == 3
    for path in written:
        shipped = DEPLOY / path.relative_to(tmp_path)
        assert shipped.read_text() == path.read_text(), (
            f"{shipped} is stale: run otel-liveview alerts {EXAMPLE}"
        )


def test_rules_for_the_example() -> None:
    rules = {r["alert"]: r for r in alerts.prometheus_rules(thresholds.load(EXAMPLE))["groups"][0]["rules"]}
    assert rules["LiveViewLossAbove"]["expr"] == 'liveview_metric{metric="loss",phase="train"} > 2'
    assert rules["LiveViewLossAbove"]["for"] == "5m"
    assert rules["LiveViewSensorTooCold"]["expr"] == 'liveview_data{stream="sensors",key="temperature"} < 10'
    assert rules["LiveViewSensorTooCold"]["labels"] == {"severity": "critical", "liveview": "threshold"}
    assert rules["LiveViewMemoryMbAbove"]["expr"] == 'liveview_metric{metric="memory_mb"} > 8192'


def test_label_values_are_escaped(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("thresholds:\n  - metric: 'odd \"name\"\\x'\n    topic: a\n    below: 0.5\n")
    (threshold,) = thresholds.load(path)
    assert threshold.expr == 'liveview_metric{metric="odd \\"name\\"\\\\x",topic="a"} < 0.5'
    assert threshold.name == "LiveViewOddNameXBelow"


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("thresholds:\n  - metric: loss\n    above: two\n", 3, "above"),
        ("thresholds:\n  - metric: loss\n    above: 1\n    below: 0\n", 4, "below"),
        ("thresholds:\n  - metric: loss\n", 2, "above"),
        ("thresholds:\n  - metric: loss\n    above: 1\n    for: 5 minutes\n", 4, "for"),
        ("thresholds:\n  - metric: loss\n    above: 1\n    severity: page\n", 4, "severity"),
        ("thresholds:\n  - metric: loss\n    stream: s\n    above: 1\n", 2, "metric"),
        ("thresholds:\n  - stream: s\n    above: 1\n", 2, "key"),
        ("thresholds:\n  - metric: loss\n    above: 1\n    colour: red\n", 4, "colour"),
        ("thresholds:\n  - metric: loss\n    above: 1\n    name: has space\n", 4, "name"),
        (
            "thresholds:\n  - metric: a\n    above: 1\n  - metric: b\n    above: 1\n    name: LiveViewAAbove\n",
            4,
            "name",
        ),
        ("thresholds:\n  - metric: [loss]\n    above: 1\n", 2, "metric"),
    ],
)
def test_errors_name_the_line_and_the_field_and_nothing_is_written(
    tmp_path: Path, text: str, line: int, field: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    with pytest.raises(thresholds.ThresholdsError, match=rf"bad\.yaml:{line}: field '{field}'"):
        alerts.render(path, out)
    assert not out.exists()


@pytest.mark.parametrize("text", ["just text\n", "thresholds: 3\n", "thresholds:\n  - [1, 2]\n", "a: [\n"])
def test_malformed_files_get_a_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(thresholds.ThresholdsError, match=r"bad\.yaml"):
        thresholds.load(path)


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    alerts_command.register(parser.add_subparsers())
    args = parser.parse_args(["alerts", str(EXAMPLE), "--out-dir", str(tmp_path)])
    assert args.run(args) == 0
    assert (tmp_path / alerts.THRESHOLD_RULES).exists()
    capsys.readouterr()
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "thresholds:\n  - metric: loss\n  - metric: acc\n    above: x\n  - metric: loss\n    above: 1\n"
    )
    args = parser.parse_args(["alerts", str(bad), "--out-dir", str(tmp_path)])
    assert args.run(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [  # every error of the file at once, on stderr
        f"otel-liveview alerts: {bad}:2: field 'above': give exactly one of 'above' or 'below'",
        f"{bad}:4: field 'above': must be a number, not 'x'",
    ]


def test_outside_a_checkout_no_deploy_tree_appears(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    alerts_command.register(parser.add_subparsers())
    args = parser.parse_args(["alerts", str(EXAMPLE)])
    assert args.run(args) == 2
    assert (
        "./deploy/ does not exist here; run it in a checkout or pass --out-dir DIR" in capsys.readouterr().err
    )
    assert list(tmp_path.iterdir()) == []
    args = parser.parse_args(["alerts", str(EXAMPLE), "--out-dir", "rendered"])  # asked for: made
    assert args.run(args) == 0
    assert (tmp_path / "rendered" / alerts.THRESHOLD_RULES).exists()


def test_grafana_provisioning_has_what_grafana_requires() -> None:
    document = yaml.safe_load((DEPLOY / alerts.GRAFANA_ALERTING).read_text())
    assert document["apiVersion"] == 1
    datasources = DEPLOY / "grafana" / "provisioning" / "datasources"
    provisioned = {
        source["uid"]
        for path in datasources.glob("*.y*ml")
        for source in yaml.safe_load(path.read_text()).get("datasources", [])
    } or {alerts.PROMETHEUS_DATASOURCE_UID}
    groups = {group["name"]: group for group in document["groups"]}
    assert list(groups) == ["liveview-thresholds", "liveview-builtin"]
    # The built-in group holds the rules of the Prometheus file, with their expressions and labels.
    prometheus = {r["alert"]: r for r in alerts.builtin_rules()["groups"][0]["rules"]}
    grafana = {r["title"]: r for r in groups["liveview-builtin"]["rules"]}
    assert list(grafana) == list(prometheus)
    for name, rule in grafana.items():
        assert rule["data"][0]["model"]["expr"] == prometheus[name]["expr"]
        assert (rule["labels"], rule["for"]) == (prometheus[name]["labels"], prometheus[name]["for"])
    assert all({"orgId", "name", "folder", "interval", "rules"} <= set(group) for group in groups.values())
    uids = set()
    for rule in (rule for group in groups.values() for rule in group["rules"]):
        assert {"uid", "title", "condition", "data", "for", "labels", "annotations"} <= set(rule)
        assert len(rule["uid"]) <= 40 and rule["uid"] not in uids
        uids.add(rule["uid"])
        ref_ids = {query["refId"] for query in rule["data"]}
        assert rule["condition"] in ref_ids
        for query in rule["data"]:
            assert query["datasourceUid"] in provisioned | {"__expr__"}
            assert query["model"]["refId"] == query["refId"]
        assert rule["labels"]["severity"] in thresholds.SEVERITIES
    (contact,) = document["contactPoints"]
    assert document["policies"][0]["receiver"] == contact["name"]


def grafana_datasource_uids(path: Path) -> list[str]:
    """Every datasourceUid the Grafana provisioning file names, wherever it is."""
    found: list[str] = []

    def visit(value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key.lower().startswith("datasource"):
                    found.append(str(item))
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(yaml.safe_load(path.read_text()))
    return found


@pytest.mark.parametrize(
    ("in_file", "flag", "expected"),
    [
        (None, None, alerts.PROMETHEUS_DATASOURCE_UID),
        ("team-prometheus", None, "team-prometheus"),
        ("team-prometheus", "P1809F7CD0C75ACF3", "P1809F7CD0C75ACF3"),  # the flag wins
        (None, "mimir_prod", "mimir_prod"),
    ],
)
def test_grafana_rules_query_the_given_datasource_and_no_other(
    tmp_path: Path, in_file: str | None, flag: str | None, expected: str
) -> None:
    thresholds = tmp_path / "thresholds.yaml"
    text = EXAMPLE.read_text()
    thresholds.write_text(text if in_file is None else f"datasource_uid: {in_file}\n{text}")
    parser = argparse.ArgumentParser()
    alerts_command.register(parser.add_subparsers())
    argv = ["alerts", str(thresholds), "--out-dir", str(tmp_path / "out")]
    args = parser.parse_args(argv + (["--datasource-uid", flag] if flag else []))
    assert args.run(args) == 0
    grafana = tmp_path / "out" / alerts.GRAFANA_ALERTING
    uids = grafana_datasource_uids(grafana)
    rules = 3 + len(alerts.builtin_rules()["groups"][0]["rules"])  # the example's and the built-in ones
    assert len(uids) == 2 * rules  # the query and the threshold expression of each rule
    assert set(uids) == {expected, "__expr__"}
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yaml").read_text()
    )
    others = {source["uid"] for source in provisioned["datasources"]} - {expected}
    assert not [uid for uid in others if uid in grafana.read_text()]  # no other datasource, anywhere
    # The Prometheus rules do not depend on it: the same files whatever the Grafana datasource.
    for path in (alerts.THRESHOLD_RULES, alerts.BUILTIN_RULES):
        assert (tmp_path / "out" / path).read_text() == (DEPLOY / path).read_text()


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("datasource_uid: has space\nthresholds: []\n", 1),
        ("thresholds: []\ndatasource_uid: [a]\n", 2),
        ("thresholds: []\ndatasource_uid: " + "x" * 41 + "\n", 2),
        ("thresholds: []\ndatasource_uid: 12\n", 2),
    ],
)
def test_a_bad_datasource_uid_names_its_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(thresholds.ThresholdsError, match=rf"bad\.yaml:{line}: field 'datasource_uid'"):
        alerts.render(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_top_level_fields_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("thresholds: []\ndatasource-uid: x\n")
    with pytest.raises(thresholds.ThresholdsError, match=r"bad\.yaml:2: field 'datasource-uid': unknown"):
        thresholds.load(path)


def test_a_bad_datasource_uid_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    alerts_command.register(parser.add_subparsers())
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["alerts", str(EXAMPLE), "--datasource-uid", "no/slashes"])
    assert exit_info.value.code == 2
    assert "--datasource-uid" in capsys.readouterr().err


def test_prometheus_rules_carry_nothing_of_the_bundle() -> None:
    """Plain Prometheus rule files: one `groups` list each, no `namespace` (mimirtool then names the
    namespace after the file), group names unique across the files, labels of the library only, and
    no datasource, host or service of the bundle."""
    groups: list[str] = []
    bundle = [
        "liveview-prometheus",
        "liveview-loki",
        "liveview-alertmanager",
        "alertmanager:",
        "prometheus:",
        "otel-collector",
        "9090",
        "9093",
    ]
    for path in RULE_FILES:
        text = path.read_text()
        document = yaml.safe_load(text)
        assert list(document) == ["groups"], path
        for group in document["groups"]:
            assert set(group) == {"name", "rules"}, path
            groups.append(group["name"])
            for rule in group["rules"]:
                assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
                assert set(rule["labels"]) == {"severity", "liveview"}, rule
                assert "job=" not in rule["expr"], rule  # any service's series, wherever they come from
        assert not [word for word in bundle if word in text], path
    assert len(groups) == len(set(groups)) == 2
    assert len({path.stem for path in RULE_FILES}) == len(RULE_FILES)


@pytest.mark.servers
def test_promtool_3_14_checks_the_rendered_rules(tmp_path: Path) -> None:
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text("datasource_uid: team-prometheus\n" + EXAMPLE.read_text())
    written = alerts.render(thresholds, tmp_path, datasource_uid="team-mimir")
    rules = [path for path in written if path.suffix == ".yml"]
    assert len(rules) == 2
    result = subprocess.run(
        [server_binary("promtool-3.14"), "check", "rules", *rules], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2
    assert set(grafana_datasource_uids(tmp_path / alerts.GRAFANA_ALERTING)) == {"team-mimir", "__expr__"}


@pytest.mark.servers
@pytest.mark.parametrize("promtool", ["promtool", "promtool3"])
@pytest.mark.parametrize(
    ("command", "files"),
    [("check", RULE_FILES), ("test", RULE_TESTS)],
    ids=["check-rules", "unit-tests-fire-at-the-boundaries"],
)
def test_promtool_rules(promtool: str, command: str, files: list[Path]) -> None:
    binary = server_binary(promtool)
    result = subprocess.run([binary, command, "rules", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files) >= 2


@pytest.mark.servers
def test_alertmanager_config_is_valid() -> None:
    result = subprocess.run(
        [server_binary("amtool"), "check-config", DEPLOY / "alertmanager" / "alertmanager.yml"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the rules one by one -------------------------------------------------------------------------


def load_text(tmp_path: Path, text: str) -> list[alerts.Threshold]:
    path = tmp_path / "t.yaml"
    path.write_text(text, encoding="utf-8")
    return thresholds.load(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("thresholds:\n  - metric: [loss]\n    above: 1\n", "2: field 'metric': must be a single value"),
        ("thresholds:\n  - metric: loss\n    above: {a: 1}\n", "3: field 'above': must be a single value"),
        (
            "thresholds:\n  - metric: loss\n    above: 1\n    name: ''\n",
            "4: field 'name': must be a non-empty string",
        ),
        (
            "thresholds:\n  - metric: loss\n    above: 1\n    name: '  '\n",
            "4: field 'name': must be a non-empty string",
        ),
        ("thresholds:\n  - metric: ' '\n    above: 1\n", "2: field 'metric': must be a non-empty string"),
        (
            "thresholds:\n  - metric: loss\n    above: 1\n    phase: 3\n",
            "4: field 'phase': must be a non-empty string",
        ),
        (
            "thresholds:\n  - metric: loss\n    key: k\n    above: 1\n",
            "3: field 'key': 'key' belongs to 'stream' thresholds",
        ),
        ("thresholds:\n  - above: 1\n", "2: field 'stream': give either 'metric', or 'stream' and 'key'"),
        (
            "thresholds:\n  - metric: loss\n    stream: s\n    key: k\n    above: 1\n",
            "2: field 'metric': give either 'metric', or 'stream' and 'key'",
        ),
        (
            "thresholds:\n  - stream: s\n    above: 1\n",
            "2: field 'key': a 'stream' threshold needs the 'key' of the value to watch",
        ),
        ("thresholds:\n  - metric: loss\n", "2: field 'above': give exactly one of 'above' or 'below'"),
        (
            "thresholds:\n  - metric: loss\n    above: 1\n    below: 0\n",
            "4: field 'below': give exactly one of 'above' or 'below'",
        ),
        ("thresholds:\n  - metric: loss\n    above: two\n", "3: field 'above': must be a number, not 'two'"),
        ("thresholds:\n  - metric: loss\n    below: true\n", "3: field 'below': must be a number, not True"),
        (
            "thresholds:\n  - metric: loss\n    above: 1\n    for: 5 minutes\n",
            "4: field 'for': '5 minutes' is not a Prometheus duration such as 30s, 5m or 1h30m",
        ),
        (
            "thresholds:\n  - metric: loss\n    above: 1\n    for: ''\n",
            "4: field 'for': '' is not a Prometheus duration such as 30s, 5m or 1h30m",
        ),
        (
            "thresholds:\n  - metric: loss\n    above: 1\n    severity: page\n",
            "4: field 'severity': 'page' is not one of info, warning, critical",
        ),
        (
            "thresholds:\n  - metric: loss\n    above: 1\n    name: has space\n",
            "4: field 'name': 'has space' is not a valid alert name ([A-Za-z_][A-Za-z0-9_]*)",
        ),
        (
            "thresholds:\n  - metric: loss\n    above: 1\n    colour: red\n",
            "4: field 'colour': unknown field; use above, below, description, for, key, metric, name, phase, "
            "severity, stream, summary, topic",
        ),
        (
            "thresholds:\n  - metric: a\n    above: 1\n  - metric: b\n    above: 1\n    name: LiveViewAAbove\n",
            "4: field 'name': 'LiveViewAAbove' is already used on line 2",
        ),
        ("thresholds:\n  - 3\n", "2: each threshold must be a mapping"),
        ("# rules\n\njust text\n", "3: expected a mapping with a 'thresholds' list"),
        ("", "1: expected a mapping with a 'thresholds' list"),
        ("thresholds:\n\n\n  3\n", "4: 'thresholds' must be a list"),
    ],
)
def test_every_error_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(thresholds.ThresholdsError) as raised:
        load_text(tmp_path, text)
    assert str(raised.value) == f"{tmp_path / 't.yaml'}:{message}"


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(thresholds.ThresholdsError) as raised:
        thresholds.load(missing)
    assert str(raised.value) == f"{missing}: cannot read: No such file or directory"
    with pytest.raises(thresholds.ThresholdsError) as raised:
        load_text(tmp_path, "thresholds:\n  - metric: [loss\n")
    assert str(raised.value) == (  # the file's own name, not the parser's "<unicode string>"
        f"{tmp_path / 't.yaml'}:3: not valid YAML: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence)"
    )


def test_a_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("thresholds:\n  - metric: Temperatur\n    summary: zu hei\xdf\n".encode("latin-1"))
    with pytest.raises(thresholds.ThresholdsError) as raised:
        thresholds.load(path)
    assert str(raised.value) == f"{path}:3: not UTF-8 text (byte 0xdf at offset 54)"


def test_every_mistake_of_every_entry_at_once_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "thresholds:\n"
        "  - metric: loss\n    above: x\n    for: soon\n    colour: red\n"
        "  - metric: [acc]\n    severity: page\n    name: has space\n"
        "  - stream: s\n    above: 1\n    below: 2\n"
        "  - metric: fine\n    above: 1\n"
    )
    with pytest.raises(thresholds.ThresholdsError) as raised:
        thresholds.load(path)
    assert str(raised.value).splitlines() == [
        f"{path}:3: field 'above': must be a number, not 'x'",
        f"{path}:4: field 'for': 'soon' is not a Prometheus duration such as 30s, 5m or 1h30m",
        f"{path}:5: field 'colour': unknown field; use above, below, description, for, key, metric, name, "
        "phase, severity, stream, summary, topic",
        f"{path}:6: field 'above': give exactly one of 'above' or 'below'",
        f"{path}:6: field 'metric': must be a single value",
        f"{path}:7: field 'severity': 'page' is not one of info, warning, critical",
        f"{path}:8: field 'name': 'has space' is not a valid alert name ([A-Za-z_][A-Za-z0-9_]*)",
        f"{path}:9: field 'key': a 'stream' threshold needs the 'key' of the value to watch",
        f"{path}:11: field 'below': give exactly one of 'above' or 'below'",
    ]


def test_a_misspelt_top_level_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("threshold:\n  - metric: loss\n    above: 1\ndatasource_uid: ok\ncolour: red\n")
    with pytest.raises(thresholds.ThresholdsError) as raised:
        thresholds.load(path)
    assert str(raised.value).splitlines() == [
        f"{path}:1: expected a mapping with a 'thresholds' list",
        f"{path}:1: field 'threshold': unknown; use thresholds, datasource_uid or runs",
        f"{path}:5: field 'colour': unknown; use thresholds, datasource_uid or runs",
    ]


def test_a_threshold_with_defaults(tmp_path: Path) -> None:
    (threshold,) = load_text(tmp_path, "thresholds:\n  - metric: valLoss\n    above: 0.5\n")
    assert threshold == thresholds.Threshold(
        name="LiveViewValLossAbove",
        above=0.5,
        below=None,
        duration="0s",
        severity="warning",
        metric="valLoss",
    )


def test_a_stream_threshold_gets_a_name_from_stream_and_key(tmp_path: Path) -> None:
    (threshold,) = load_text(
        tmp_path, "thresholds:\n  - stream: sensors\n    key: arm.temp C\n    below: -3\n"
    )
    assert threshold == thresholds.Threshold(
        name="LiveViewSensorsArmTempCBelow",
        above=None,
        below=-3,
        duration="0s",
        severity="warning",
        stream="sensors",
        key="arm.temp C",
    )
    assert threshold.expr == 'liveview_data{stream="sensors",key="arm.temp C"} < -3'
    assert threshold.watched == "sensors.arm.temp C"


def test_label_values_with_newlines_are_escaped(tmp_path: Path) -> None:
    (threshold,) = load_text(tmp_path, 'thresholds:\n  - metric: "two\\nlines"\n    above: 1\n    name: X\n')
    assert threshold.selector == 'liveview_metric{metric="two\\nlines"}'


def test_rule_annotations_say_what_crossed_which_way(tmp_path: Path) -> None:
    thresholds = load_text(
        tmp_path,
        "thresholds:\n"
        "  - metric: loss\n    below: 0.25\n    for: 5m\n    topic: t\n"
        "  - metric: acc\n    above: 2\n    summary: Accuracy too high\n    description: Check the labels\n",
    )
    low, high = alerts.prometheus_rules(thresholds)["groups"][0]["rules"]
    assert low == {
        "alert": "LiveViewLossBelow",
        "expr": 'liveview_metric{metric="loss",topic="t"} < 0.25',
        "for": "5m",
        "labels": {"severity": "warning", "liveview": "threshold"},
        "annotations": {
            "summary": "loss < 0.25",
            "description": "loss is {{ $value }} on {{ $labels.instance }} (topic {{ $labels.topic }}), "
            "below 0.25 for 5m.",
        },
    }
    assert high["annotations"] == {"summary": "Accuracy too high", "description": "Check the labels"}
    low_rule, high_rule = alerts.grafana_alerting(thresholds)["groups"][0]["rules"]
    assert low_rule["data"][1]["model"]["conditions"] == [{"evaluator": {"type": "lt", "params": [0.25]}}]
    assert high_rule["data"][1]["model"]["conditions"] == [{"evaluator": {"type": "gt", "params": [2]}}]
    assert low_rule["annotations"] == {"summary": "loss < 0.25"}
    assert high_rule["annotations"] == {"summary": "Accuracy too high", "description": "Check the labels"}


def test_grafana_uids_are_cut_to_forty_characters(tmp_path: Path) -> None:
    name = "LiveView" + "X" * 50
    (threshold,) = load_text(tmp_path, f"thresholds:\n  - metric: loss\n    above: 1\n    name: {name}\n")
    (rule,) = alerts.grafana_alerting([threshold])["groups"][0]["rules"]
    assert rule["uid"] == ("lv-" + name)[:40] and len(rule["uid"]) == 40


def test_rendered_files_keep_non_ascii_text_and_field_order(tmp_path: Path) -> None:
    source = tmp_path / "t.yaml"
    source.write_text(
        "thresholds:\n  - metric: Verlust\n    above: 1\n    summary: Verlust über 1 (λ)\n", encoding="utf-8"
    )
    written = alerts.render(source, tmp_path / "out")
    text = written[0].read_text(encoding="utf-8")
    assert text.startswith(alerts.HEADER)
    assert "summary: Verlust über 1 (λ)" in text
    assert text.index("alert:") < text.index("expr:") < text.index("for:") < text.index("labels:")


def test_the_command_reports_what_it_wrote_and_what_was_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    alerts_command.register(parser.add_subparsers())
    args = parser.parse_args(["alerts", str(EXAMPLE), "--out-dir", str(tmp_path)])
    assert args.run(args) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {tmp_path / alerts.THRESHOLD_RULES}",
        f"wrote {tmp_path / alerts.BUILTIN_RULES}",
        f"wrote {tmp_path / alerts.GRAFANA_ALERTING}",
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("thresholds:\n  - metric: loss\n")
    assert args.run(parser.parse_args(["alerts", str(bad), "--out-dir", str(tmp_path)])) == 2
    out, err = capsys.readouterr()
    assert (out, err) == (
        "",
        f"otel-liveview alerts: {bad}:2: field 'above': give exactly one of 'above' or 'below'\n",
    )
    assert parser.parse_args(["alerts", str(bad)]).out_dir is None  # ./deploy, which must exist


def test_the_command_explains_itself() -> None:
    parser = argparse.ArgumentParser(prog="otel-liveview")
    commands = parser.add_subparsers()
    alerts_command.register(commands)
    overview = " ".join(parser.format_help().split())
    assert "alerts render Prometheus rules and Grafana alerting from a thresholds file" in overview
    help_text = commands.choices["alerts"].format_help()
    # The description, line breaks as written, for someone who installed the package: no checkout
    # paths, no Markdown.
    assert "\n" + alerts_command.DESCRIPTION + "\n" in help_text
    assert "  thresholds:\n    - metric: loss\n      phase: train\n" in help_text
    assert "`" not in help_text and "deploy/" not in help_text and "docs/" not in help_text
    words = " ".join(help_text.split())
    assert "thresholds the thresholds YAML file" in words
    assert (
        "--out-dir OUT_DIR where to write prometheus/ and grafana/; made if missing, but its parent "
        "must exist (default: ./deploy, which must exist)"
    ) in words
    assert (
        "--datasource-uid UID uid of the Prometheus datasource the Grafana rules query (wins over the "
        "file's datasource_uid; default liveview-prometheus, the bundle's)"
    ) in words


@pytest.mark.parametrize(
    ("out_dir", "message"),
    [
        ("missing/dir", "argument --out-dir: '{}': its parent directory does not exist"),
        ("file", "argument --out-dir: '{}' is not a directory"),
    ],
)
def test_an_out_dir_that_cannot_be_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], out_dir: str, message: str
) -> None:
    (tmp_path / "file").write_text("")
    parser = argparse.ArgumentParser(prog="otel-liveview")
    alerts_command.register(parser.add_subparsers())
    target = str(tmp_path / out_dir)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["alerts", str(EXAMPLE), "--out-dir", target])
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr().err.splitlines()[-1] == f"otel-liveview alerts: error: {message.format(target)}"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file"]  # no tree made


def test_an_unwritable_output_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "prometheus").write_text("a file where a directory goes")
    args = argparse.Namespace(thresholds=str(EXAMPLE), out_dir=tmp_path, datasource_uid=None)
    assert alerts_command.run(args) == 2
    assert capsys.readouterr().err == (
        f"otel-liveview alerts: cannot write {tmp_path / 'prometheus' / 'rules'}: Not a directory\n"
    )


def test_a_bad_datasource_uid_flag_says_what_a_uid_is(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="otel-liveview")
    alerts_command.register(parser.add_subparsers())
    with pytest.raises(SystemExit):
        parser.parse_args(["alerts", str(EXAMPLE), "--datasource-uid", "no spaces"])
    assert (
        "argument --datasource-uid: 'no spaces': a Grafana datasource uid is 1 to 40 letters, digits, '-' or '_'"
        in capsys.readouterr().err
    )


def test_unknown_top_level_fields_and_a_file_without_a_datasource(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("thresholds: []\ncolour: red\n")
    with pytest.raises(thresholds.ThresholdsError) as raised:
        thresholds.load_file(path)
    assert str(raised.value) == f"{path}:2: field 'colour': unknown; use thresholds, datasource_uid or runs"
    path.write_text("thresholds: []\n")
    assert thresholds.load_file(path) == ([], None, thresholds.RunAlerts())


def test_the_command_runs_from_a_namespace_without_a_datasource(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert alerts_command.run(argparse.Namespace(thresholds=str(EXAMPLE), out_dir=str(tmp_path))) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "thresholds:\n  - metric: !!python/name:os.system x\n    above: 1\n",
            "2: field 'metric': cannot be read: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/name:os.system'",
        ),
        (
            "thresholds:\n  - metric: loss\n    above: !!float abc\n",
            "3: field 'above': cannot be read: could not convert string to float: 'abc'",
        ),
        (
            "thresholds:\n  - metric: loss\n    above: !!timestamp 2020-13-45\n",
            "3: field 'above': cannot be read: month must be in 1..12",
        ),
        (
            "datasource_uid: !!binary '%%%%'\nthresholds: []\n",
            f"1: field 'datasource_uid': {thresholds.UID_RULE}",
        ),
    ],
)
def test_a_value_yaml_cannot_construct_is_a_mistake_of_its_field(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(thresholds.ThresholdsError) as raised:
        load_text(tmp_path, text)
    assert str(raised.value) == f"{tmp_path / 't.yaml'}:{message}"


@pytest.mark.parametrize(
    "text",
    [
        "thresholds: " + "[" * 3000 + "\n",
        "thresholds:\n" + "".join("  " * i + "- \n" for i in range(1, 1500)),
    ],
)
def test_a_file_nested_too_deeply_is_one_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(thresholds.ThresholdsError) as raised:
        load_text(tmp_path, text)
    assert str(raised.value) == f"{tmp_path / 't.yaml'}: nested too deeply to be a thresholds file"


_FRAGMENTS = st.sampled_from(
    ["thresholds:", "- ", "metric: loss", "stream: s", "key: k", "above: 1", "below: x", "for: 5m",
     "for: soon", "severity: page", "name: N", "name: LiveViewLossAbove", "datasource_uid: u",
     "colour: red", "!!float abc", "!!python/tuple [1]", "!!timestamp 2020-13-45", "&a", "*a", "[",
     "]", "{", "}", "'", '"', "\t", "é", ": ", "? ", "%YAML 1.1", "---", "...", "#", "1e400", "~"]
)  # fmt: skip
_YAMLISH = st.lists(
    st.tuples(st.sampled_from(["", "  ", "    "]), st.lists(_FRAGMENTS, max_size=3)), max_size=8
).map(lambda lines: "\n".join(indent + " ".join(parts) for indent, parts in lines).encode())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=_YAMLISH | st.binary(max_size=80))
def test_any_file_renders_or_is_reported_line_by_line_with_nothing_written(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path, out = Path(folder) / "t.yaml", Path(folder) / "out"
        path.write_bytes(content)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = alerts_command.run(
                argparse.Namespace(thresholds=str(path), out_dir=out, datasource_uid=None)
            )
        if code == 0:
            assert len(list(out.rglob("*.y*ml"))) == 3
            return
        assert code == 2 and not out.exists()
        lines = err.getvalue().removeprefix("otel-liveview alerts: ").splitlines()
        assert lines and all(line.startswith(f"{path}:") for line in lines), err.getvalue()


def test_the_run_rules_take_the_files_runs_settings(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "thresholds: []\nruns:\n  stalled_after: 30m\n  straggler_steps: 200\n  straggler_percent: 12.5\n"
        "  straggler_for: 15m\n  missing_after: 90s\n"
    )
    loaded = thresholds.load_file(path)
    assert loaded.runs == thresholds.RunAlerts("30m", 200, 12.5, "15m", "90s")
    rules = {r["alert"]: r for r in alerts.builtin_rules(loaded.runs)["groups"][0]["rules"]}
    assert "liveview_metric_step offset 30m" in rules["LiveViewRunStalled"]["expr"]
    straggling = rules["LiveViewRankStraggling"]
    assert "> 200\n" in straggling["expr"] and straggling["expr"].endswith("> 0.125")
    assert straggling["for"] == "15m"
    assert "time() - 90\n" in rules["LiveViewRanksMissing"]["expr"]
    # Without a `runs` mapping: the defaults, as shipped.
    assert alerts.builtin_rules() == alerts.builtin_rules(thresholds.RunAlerts())
    assert thresholds.load_file(EXAMPLE).runs == thresholds.RunAlerts()


def test_every_mistake_of_the_runs_settings_is_named(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "thresholds: []\nruns:\n  stalled_after: ten minutes\n  straggler_steps: -1\n"
        "  straggler_percent: lots\n  straggler: 5m\n"
    )
    with pytest.raises(thresholds.ThresholdsError) as raised:
        thresholds.load_file(path)
    assert str(raised.value).splitlines() == [
        f"{path}:3: field 'runs.stalled_after': 'ten minutes' is not a Prometheus duration such as 5m",
        f"{path}:4: field 'runs.straggler_steps': must be a number of at least 0, not -1",
        f"{path}:5: field 'runs.straggler_percent': must be a number of at least 0, not 'lots'",
        f"{path}:6: field 'runs.straggler': unknown; use stalled_after, straggler_for, missing_after, "
        "straggler_steps, straggler_percent",
    ]
    path.write_text("thresholds: []\nruns: [10m]\n")
    with pytest.raises(thresholds.ThresholdsError, match="'runs' must be a mapping"):
        thresholds.load_file(path)
