"""Command-line errors of every subcommand: one line on stderr naming the flag, variable or file,
exit status 2, never a traceback; the subcommand's own usage; the demo's progress into a pipe; a
missing extra. The property tests run `cli.main` in this process over generated arguments and
OTEL_* values (`check` against a closed port, so each example takes milliseconds)."""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_liveview.cli import demo, variables
from otel_liveview.cli import main as cli
from tests.support import ROOT, free_port
from tests.support.receiver import silent_listener, wait_until

SUBCOMMANDS = ("demo", "view", "alerts", "check")
CLOSED = free_port()


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """Exactly these OTEL_* variables (loopback never through a proxy) for the length of the block."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("OTEL_")]:
            patch.delenv(name)
        patch.setenv("NO_PROXY", "127.0.0.1,localhost,::1")
        patch.setenv("GRPC_VERBOSITY", "ERROR")
        for name, value in env.items():
            patch.setenv(name, value)
        yield


def run(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """cli.main in this process: exit status, stdout, stderr (argparse's exits included)."""
    out, err = io.StringIO(), io.StringIO()
    with environment(env or {}), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def error_line(err: str) -> str:
    """The one error line of stderr; argparse's usage lines before it are allowed."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line and not line.startswith(("usage: ", " "))]
    assert len(lines) == 1, err
    assert lines[0].startswith("otel-liveview"), err
    return lines[0]


def _forms(argument: str) -> list[str]:
    """How an error line may show an argument: as typed, quoted for a shell, or as a Python repr; a
    blank one only quoted."""
    return [repr(argument), shlex.quote(argument), *([argument] if argument.strip() else [])]


# -- the properties ------------------------------------------------------------------------------

texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
typical = st.sampled_from(
    ["0", "1", "-1", "1.5", "250", "1e400", "nan", "inf", " ", "true", "false", "yes", "grpc",
     "http/protobuf", "http/json", "gzip", "none", "otlp", "console", "otlp,console", "none,otlp",
     "a=b", "a=b,c=d", "a", "=b", "A=%20x", "a=%0A", str(ROOT / "README.md"), "/nonexistent"]
)  # fmt: skip
# Endpoints stay on this machine (a closed port, or not parseable at all): no name lookups.
endpoint_values = st.builds(
    "".join,
    st.tuples(
        st.sampled_from(["http://", "https://", "ftp://", "", "grpc://"]),
        st.sampled_from(["127.0.0.1", "[::1]", "[::1:bad", "", "localhost", "[::1]]"]),
        st.sampled_from([f":{CLOSED}", ":0", ":99999", ":x", "", ":-1", f":{CLOSED}:1"]),
        st.sampled_from(["", "/", "/v1/metrics", "/a b", "?q=1"]),
    ),
)
ENDPOINTS = tuple(name for name in variables.NAMES if name.endswith("_ENDPOINT"))
OTHERS = (
    *(name for name in variables.NAMES if name not in ENDPOINTS),
    "OTEL_SERVICE_NAME",
    "OTEL_NOT_A_SETTING",
)
environments = st.builds(
    lambda endpoints, others: {**endpoints, **others},
    st.dictionaries(st.sampled_from(ENDPOINTS), endpoint_values, max_size=3),
    st.dictionaries(st.sampled_from(OTHERS), typical | texts, max_size=5),
)
check_arguments = st.builds(
    lambda timeout, extra: ["check", *timeout, *extra],
    st.sampled_from([[], ["--timeout", "0.3"], ["--timeout", "0"], ["--timeout", "abc"], ["--timeout"]])
    | st.tuples(st.just("--timeout"), texts).map(list),
    st.lists(st.sampled_from(["--bogus", "extra", "-x", "--timeout=0.2"]) | texts, max_size=2),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argv=check_arguments, env=environments)
def test_check_exits_0_1_or_2_and_a_2_is_one_line_naming_the_culprit(
    argv: list[str], env: dict[str, str]
) -> None:
    code, _, err = run(argv, env)
    assert code in (0, 1, 2), (code, err)
    if code != 2:
        assert err == "" or "--help" in argv or "-h" in argv, err
        return
    line = error_line(err)
    named = [name for name in env if f"{name}=" in line] + [
        token for token in argv[1:] if any(form in line for form in _forms(token))
    ]
    assert named, line


@settings(max_examples=150, deadline=None)
@given(
    command=st.sampled_from(SUBCOMMANDS),
    before=st.lists(
        st.sampled_from(["--plain", "--duration", "1", "--grpc", "off", "--timeout", "x", "FILE"])
    ),
    bogus=st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=8),
)
def test_every_subcommand_reports_its_own_argument_errors(
    command: str, before: list[str], bogus: str
) -> None:
    argv = [command, *before, f"--no-such-{bogus}"]
    code, out, err = run(argv)
    assert (code, out) == (2, "")
    assert err.startswith(f"usage: otel-liveview {command} "), err
    line = error_line(err)
    assert line.startswith(f"otel-liveview {command}: error: "), line
    assert [token for token in argv[1:] if token in line] or "required: thresholds" in line, line


# -- the findings, one by one ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (
            ["demo", "--duration", "1"],
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://[::1:bad"},
            "otel-liveview demo: OTEL_EXPORTER_OTLP_ENDPOINT='http://[::1:bad': Invalid IPv6 URL",
        ),
        (
            ["demo", "--duration", "1"],
            {"OTEL_EXPORTER_OTLP_TIMEOUT": "abc"},
            "otel-liveview demo: OTEL_EXPORTER_OTLP_TIMEOUT='abc': is not a number",
        ),
        (
            ["demo", "--view", "--duration", "1"],
            {"OTEL_BLRP_MAX_QUEUE_SIZE": "inf"},
            "otel-liveview demo: OTEL_BLRP_MAX_QUEUE_SIZE='inf': is not a number",
        ),
        (
            ["check"],
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:99999"},
            "otel-liveview check: OTEL_EXPORTER_OTLP_ENDPOINT='http://localhost:99999': Port out of range 0-65535",
        ),
        (
            ["--bogus"],
            {},
            "otel-liveview: error: unrecognized arguments: --bogus",
        ),
        (
            [],
            {},
            "otel-liveview: error: choose a command: demo, view, alerts, check, replay (--help says what each does)",
        ),
        (
            ["view", "--grpc", "127.0.0.1:99999"],
            {},
            "otel-liveview view: error: argument --grpc: '127.0.0.1:99999': port out of range",
        ),
    ],
)
def test_errors_are_one_line_before_anything_starts(
    argv: list[str], env: dict[str, str], expected: str
) -> None:
    code, out, err = run(argv, env)
    assert (code, out) == (2, "")
    assert error_line(err) == expected


def test_a_subcommands_unknown_flag_gets_its_usage() -> None:
    code, _, err = run(["demo", "--bogus"])
    assert code == 2
    assert err.startswith("usage: otel-liveview demo [-h] [--duration DURATION]")
    assert err.splitlines()[-1] == "otel-liveview demo: error: unrecognized arguments: --bogus"
    code, _, err = run(["--bogus", "demo"])  # a flag before the command is the top level's
    assert err.splitlines() == [
        "usage: otel-liveview [-h] [--version] COMMAND ...",
        "otel-liveview: error: unrecognized arguments: --bogus",
    ]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_a_description(command: str) -> None:
    code, out, _ = run([command, "--help"])
    assert code == 0
    usage, description = out.split("\n\n")[:2]
    assert usage.startswith(f"usage: otel-liveview {command}")
    assert len(description.split()) >= 12 and not description.startswith(("positional", "options")), out
    assert "`" not in out


def test_alerts_file_errors_are_one_line(tmp_path: Path) -> None:
    latin1 = tmp_path / "t.yaml"
    latin1.write_bytes(b"thresholds:\n  - metric: gr\xf6\xdfe\n    above: 1\n")
    code, _, err = run(["alerts", str(latin1), "--out-dir", str(tmp_path / "out")])
    assert code == 2
    assert error_line(err) == f"otel-liveview alerts: {latin1}:2: not UTF-8 text (byte 0xf6 at offset 26)"
    code, _, err = run(["alerts", str(latin1), "--out-dir", str(latin1)])
    assert code == 2
    assert (
        error_line(err) == f"otel-liveview alerts: error: argument --out-dir: '{latin1}' is not a directory"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["t.yaml"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("out", "expected"), [(_Terminal(), "in place"), (io.StringIO(), "a line per epoch")]
)
def test_demo_progress_rewrites_a_line_only_on_a_terminal(out: io.StringIO, expected: str) -> None:
    progress = demo.Progress(out)
    for step in range(0, 2 * demo.STEPS_PER_EPOCH + 1):
        progress.step(step, f"step {step}")
    progress.end()
    text = out.getvalue()
    if expected == "in place":
        assert text == "".join(f"\rstep {step}" for step in range(101)) + "\n"
    else:
        assert text == "step 0\nstep 50\nstep 100\n"


def test_a_missing_extra_is_one_line_naming_it() -> None:
    """rich, grpcio, PyYAML and prometheus-client hidden, as after `pip install .`."""
    script = (
        "import sys\n"
        "for name in ('rich', 'grpc', 'yaml', 'prometheus_client'):\n"
        "    sys.modules[name] = None  # import raises ModuleNotFoundError\n"
        "from otel_liveview.cli import main as cli\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, "OTEL_SDK_DISABLED": "true"}

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    for args, extra, missing in (
        (["view"], "view", "rich and grpcio, which are"),
        (["alerts", "x.yaml"], "alerts", "PyYAML, which is"),
    ):
        result = command(*args)
        assert (result.returncode, result.stdout) == (2, ""), result.stderr
        assert result.stderr == (
            f"otel-liveview {args[0]}: needs {missing} not installed: pip install 'otel-liveview[{extra}]'\n"
        )
    result = command("demo", "--view", "--duration", "1")
    assert (result.returncode, result.stderr) == (
        2,
        "otel-liveview demo: --view needs rich and grpcio: pip install 'otel-liveview[view]'\n",
    )
    result = command(
        "demo", "--duration", "0.5", "--step-seconds", "0.1"
    )  # the core is enough without --view
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "done"


def test_the_view_without_grpcio_names_only_grpcio() -> None:
    script = (
        "import sys\n"
        "sys.modules['grpc'] = None  # rich installed, grpcio not\n"
        "from otel_liveview.cli import main as cli\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "view"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stderr) == (
        2,
        "otel-liveview view: needs grpcio, which is not installed: pip install 'otel-liveview[view]'\n",
    )


def test_pull_mode_without_its_extra_warns_once_and_the_experiment_goes_on() -> None:
    script = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None\n"
        "import otel_liveview\n"
        "b = otel_liveview.ExperimentBroadcaster('pull')\n"
        "for step in range(3):\n"
        "    b.publish_metric_sync('loss', 1.0 / (step + 1), step=step)\n"
        "print('published')\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "OTEL_LIVEVIEW_PROMETHEUS_PORT": str(free_port()),
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout) == (0, "published\n"), result.stderr
    assert result.stderr == (
        "otel-liveview: pull mode (OTEL_LIVEVIEW_PROMETHEUS_PORT) needs prometheus_client: "
        "pip install 'otel-liveview[pull]'; no /metrics endpoint is served\n"
    )


def test_ctrl_c_ends_a_command_without_a_traceback() -> None:
    """`check` waiting on a collector that never answers, interrupted as Ctrl-C does."""
    with silent_listener() as listener:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}}
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=listener.url, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
        process = subprocess.Popen(
            [sys.executable, "-m", "otel_liveview.cli", "check"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        wait_until(
            lambda: "exit timeout" in process.stdout.readline(), timeout=30, what="check to start exporting"
        )
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "Traceback" not in stderr and stderr.strip() == ""
