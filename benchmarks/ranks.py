"""What the dashboard's Ranks row and the run rules show for a real launch, and how long its queries take.

    python -m benchmarks.ranks                       # mpirun -n 4: rank 3 a straggler, rank 2 fails
    python -m benchmarks.ranks --launcher srun       # the same as a 4-task Slurm job (root: a one-node cluster)
    python -m benchmarks.ranks --ranks 64 --seconds 40

Starts Prometheus 3.14 (the shipped OTLP settings and rule files, rules evaluated every second) and
the Collector (the shipped configuration, a stand-in where Loki would be), launches
tests/support/rank_training.py with the launcher, lets it run `--seconds`, then resolves the
dashboard's variables as Grafana does on load (tests/support/grafana.py) and prints every query of
the Ranks row with its values and latency, the alerts firing, and how the ranks' series arrived.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support import ROOT, grafana
from tests.support.launchers import start_mpirun
from tests.support.processes import publisher_env
from tests.support.servers import collector_into_prometheus_3, query
from tests.support.slurm import cluster

SERVICE, TOPIC = "ranks-benchmark", "ranks:benchmark"
RANK_ROW = grafana.row_titles(grafana.load(), "Ranks")


@contextlib.contextmanager
def launched(launcher: str, ranks: int, env: dict[str, str], workdir: Path) -> Iterator[None]:
    """The training loop on `ranks` processes of `launcher` until the block ends."""
    stop = workdir / "stop"
    env = {**env, "LIVEVIEW_TEST_STOP": str(stop)}
    with contextlib.ExitStack() as stack:
        if launcher == "mpirun":
            process = start_mpirun(ranks, "tests.support.rank_training", env)
        else:
            slurm = stack.enter_context(cluster(workdir / "slurm"))
            command = [
                "srun",
                "-n",
                str(ranks),
                "--chdir",
                str(ROOT),
                sys.executable,
                "-m",
                "tests.support.rank_training",
            ]
            process = subprocess.Popen(
                command, env={**env, **slurm.env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        try:
            yield
        finally:
            stop.touch()
            output, _ = process.communicate(timeout=120)
            if process.returncode:
                print(output[-3000:], file=sys.stderr)


def timed(prometheus_url: str, expr: str, at: float) -> tuple[float, list[dict[str, Any]]]:
    started = time.perf_counter()
    result = grafana.instant_query(prometheus_url, expr, at)
    return (time.perf_counter() - started) * 1000, result


def describe(series: dict[str, Any]) -> str:
    labels = {
        k: v
        for k, v in series["metric"].items()
        if k in ("liveview_rank", "liveview_node_name", "status", "experiment")
    }
    inside = ",".join(f"{k.removeprefix('liveview_')}={v}" for k, v in sorted(labels.items()))
    return f"{inside or '-'}: {float(series['value'][1]):.3g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--launcher", choices=("mpirun", "srun"), default="mpirun")
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20, help="how long the run goes before it is read")
    parser.add_argument("--slow-rank", type=int, default=3)
    parser.add_argument("--failing-rank", type=int, default=2)
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="liveview-ranks-"))
    with collector_into_prometheus_3(workdir) as (prometheus, collector):
        env = publisher_env(
            collector.otlp_http_endpoint,
            OTEL_METRIC_EXPORT_INTERVAL="1000",
            OTEL_SERVICE_NAME=SERVICE,
            LIVEVIEW_TEST_TOPIC=TOPIC,
            LIVEVIEW_TEST_SLOW_RANK=str(args.slow_rank),
            LIVEVIEW_TEST_FAILING_RANK=str(args.failing_rank),
            LIVEVIEW_TEST_STEP_SECONDS="0.1",
        )
        started = time.monotonic()
        with launched(args.launcher, args.ranks, env, workdir):
            first_all = None
            while time.monotonic() - started < args.seconds:
                counted = query(prometheus, f'count(liveview_launch_step{{job="{SERVICE}"}})')
                if first_all is None and counted and float(counted[0]["value"][1]) == args.ranks:
                    first_all = time.monotonic() - started
                time.sleep(0.5)
            print(f"{args.launcher} with {args.ranks} ranks, read after {args.seconds:g} s; every rank's")
            print(
                f"series in Prometheus {first_all:.1f} s after the launch"
                if first_all
                else "not every rank arrived"
            )
            report(prometheus.url, time.time())
    return 0


def report(base_url: str, at: float) -> None:
    """The run, every query of the Ranks row and the experiment's status with their values and
    latency, and the alerts firing, as the dashboard opened at `at` shows them."""
    board = grafana.Board.on_load(base_url, {"service": SERVICE, "topic": TOPIC}, at)
    print(f"run {board.values['run']}\n")
    for title, target in grafana.targets(board.dashboard, "prometheus"):
        if title in RANK_ROW or title == "Experiment status":
            ms, result = timed(base_url, board.expr(title, target["refId"]), at)
            shown = "; ".join(describe(s) for s in result[:8]) + (" …" if len(result) > 8 else "")
            print(f"{title} {target['refId']} ({ms:.1f} ms, {len(result)} series): {shown}")
    firing = query(base_url, f'ALERTS{{alertstate="firing",job="{SERVICE}"}}')
    names = sorted({(s["metric"]["alertname"], s["metric"].get("liveview_rank", "")) for s in firing})
    print("\nfiring:", ", ".join(f"{name} {rank}".strip() for name, rank in names) or "nothing")


if __name__ == "__main__":
    sys.exit(main())
