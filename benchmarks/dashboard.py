"""Latency of every Prometheus query of the LiveView dashboard on a Prometheus holding many publishers.

    python -m benchmarks.dashboard                      # 1,000 instances x 50 metrics (a few minutes)
    python -m benchmarks.dashboard --instances 100      # smaller

Builds a TSDB with `promtool tsdb create-blocks-from openmetrics` (Prometheus 3.14's promtool, from
the servers cache, see docs/testing.md), starts Prometheus 3.14 on it, and times each query of two
versions of the dashboard through the HTTP API, their variables resolved as Grafana resolves them
on load (tests/support/grafana.py: the first option, All for the multi-value ones): the dashboard of
`--before` (a git revision) and the one in the working tree. Variable queries are timed as the
Prometheus datasource sends them (the label values API with the selector as match[]); instant
panels as instant queries, the others as range queries over the last 15 minutes.

The data: `--instances` processes in `--services` services (job `research/sweep-NN` for even NN,
`sweep-NN` for odd), two topics per service; each process publishes `--metrics` metrics
(liveview_metric, _step, _epoch), a data stream of 10 keys, its experiment status (5 series), info,
start time and declared totals (steps and epochs), its published and dropped counters; one sample per
series every `--interval` seconds for the last `--minutes` minutes. A service is one launch: its
processes are the ranks of one run (liveview_run_id, liveview_rank, liveview_node_name on every
series, eight ranks to a node, each at its own pace), so `--services 1` is one run of `--instances`
ranks:

    python -m benchmarks.dashboard --services 1          # one run of 1,000 ranks
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support import grafana
from tests.support.servers import server_binary, start_prometheus

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "5429f54"  # the dashboard before datasource variables and the service variable
RANGE = 15 * 60
STEP = 15  # Grafana's default minimum interval for a Prometheus datasource without timeInterval
KINDS = ("metric", "data", "log", "status")
STATUSES = ("initializing", "running", "completed", "failed", "aborted")
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- data ---------------------------------------------------------------------------------------------


def layout(instances: int, services: int) -> list[dict[str, str]]:
    """Each service is one launch: its processes are ranks of one run, eight to a node."""
    processes = []
    for index in range(instances):
        service, rank = index % services, index // services
        job = f"research/sweep-{service:02d}" if service % 2 == 0 else f"sweep-{service:02d}"
        processes.append(
            {
                "job": job,
                "instance": str(uuid.uuid5(uuid.NAMESPACE_URL, f"liveview-bench-{index}")),
                "topic": f"sweep-{service:02d}:run-{rank % 2}",
                "run": f"job-{service:02d}",
                "rank": str(rank),
                "node": f"node-{rank // 8:03d}",
                "world": str(len(range(service, instances, services))),
            }
        )
    return processes


def _status(process: dict[str, str]) -> str:
    """The last two ranks of a run (one per topic) have completed; the others run."""
    return "completed" if int(process["rank"]) >= int(process["world"]) - 2 else "running"


def _constant(value: str) -> Callable[[int], str]:
    return lambda k: value


def write_openmetrics(path: Path, processes: list[dict[str, str]], metrics: int, times: list[int]) -> int:
    """The OpenMetrics text of every series; returns the number of samples."""
    samples = 0

    def family(out: Any, name: str, kind: str, series: list[tuple[str, Callable[[int], str]]]) -> None:
        nonlocal samples
        out.write(f"# TYPE {name} {kind}\n")
        sample = f"{name}_total" if kind == "counter" else name
        for labels, value in series:
            out.write("".join(f"{sample}{{{labels}}} {value(k)} {t}\n" for k, t in enumerate(times)))
            samples += len(times)

    def identity(p: dict[str, str]) -> str:
        return (
            f'job="{p["job"]}",instance="{p["instance"]}",'
            f'liveview_run_id="{p["run"]}",liveview_rank="{p["rank"]}",liveview_node_name="{p["node"]}"'
        )

    def base(p: dict[str, str]) -> str:
        return f'{identity(p)},topic="{p["topic"]}"'

    with path.open("w") as out:
        per_metric = [
            (f'{base(p)},metric="m{m:02d}",phase="train"', m, int(p["rank"]) % 7)
            for p in processes
            for m in range(metrics)
        ]
        family(
            out,
            "liveview_metric",
            "gauge",
            [(labels, lambda k, m=m: f"{m + 1 / (k + 1):.4f}") for labels, m, _ in per_metric],
        )
        family(
            out,
            "liveview_metric_step",
            "gauge",
            [
                (labels, lambda k, lag=lag: str((100 - lag) * k)) for labels, _, lag in per_metric
            ],  # a rank's pace
        )
        family(
            out,
            "liveview_metric_epoch",
            "gauge",
            [(labels, lambda k: str(k // 10)) for labels, _, _ in per_metric],
        )
        family(
            out,
            "liveview_metric_nonfinite",
            "gauge",
            [(f'{base(p)},metric="m00",value="nan"', lambda k: "0") for p in processes[::50]],
        )
        family(
            out,
            "liveview_data",
            "gauge",
            [
                (
                    f'{base(p)},stream="sensors",key="k{key}"',
                    lambda k, key=key: f"{20 + key + k % 7}",
                )
                for p in processes
                for key in range(10)
            ],
        )
        family(
            out,
            "liveview_experiment_status",
            "gauge",
            [
                (
                    f'{base(p)},experiment="run",status="{status}"',
                    _constant("1" if status == _status(p) else "0"),
                )
                for p in processes
                for status in STATUSES
            ],
        )
        family(
            out,
            "liveview_experiment_info",
            "gauge",
            [
                (
                    f'{base(p)},experiment="run",host="node-{i % 8}",pid="{1000 + i}",lr="0.001",seed="{i}"',
                    lambda k: "1",
                )
                for i, p in enumerate(processes)
            ],
        )
        family(
            out,
            "liveview_experiment_start_time_seconds",
            "gauge",
            [(f'{base(p)},experiment="run"', lambda k: str(times[0])) for p in processes],
        )
        family(
            out,
            "liveview_experiment_planned",
            "gauge",
            [
                (f'{base(p)},experiment="run",phase="train",unit="{unit}"', lambda k, n=n: str(n))
                for p in processes
                for unit, n in (("steps", 100 * len(times)), ("epochs", len(times) // 10 + 1))
            ],
        )
        family(
            out,
            "liveview_published",
            "counter",
            [(f'{identity(p)},kind="{kind}"', lambda k: str(50 * k)) for p in processes for kind in KINDS],
        )
        family(
            out,
            "liveview_dropped",
            "counter",
            [
                (
                    f'{identity(p)},kind="log",reason="queue_full"',
                    lambda k: str(k // 4),
                )
                for p in processes
            ],
        )
        family(
            out,
            "liveview_launch_step",  # a rank's furthest step: that of its metrics, all at its pace
            "gauge",
            [(base(p), lambda k, lag=int(p["rank"]) % 7: str((100 - lag) * k)) for p in processes],
        )
        family(
            out,
            "liveview_launch_world_size",
            "gauge",
            [(identity(p), lambda k, n=p["world"]: n) for p in processes],
        )
        out.write("# EOF\n")
    return samples


# -- queries ------------------------------------------------------------------------------------------


def api(url: str, path: str, params: list[tuple[str, str]]) -> Any:
    """GET, as Grafana sends label values requests (the API takes no POST there), and queries alike."""
    with _http.open(f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=120) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]


def timed(call: Callable[[], Any], runs: int) -> tuple[float, Any]:
    call()  # warm: the first request also loads the block's index into the page cache
    durations = []
    for _ in range(runs):
        start = time.perf_counter()
        result = call()
        durations.append(time.perf_counter() - start)
    return statistics.median(durations) * 1000, result


def measure(url: str, dashboard: dict[str, Any], at: float, runs: int) -> dict[str, tuple[float, int]]:
    """{row name: (median ms, series or values returned)} for every variable and Prometheus target."""
    rows: dict[str, tuple[float, int]] = {}
    names = iter(v["name"] for v in grafana.variables(dashboard) if v["type"] == "query")

    def fetch(selector: str | None, label: str) -> list[str]:
        params = [("start", f"{at - RANGE:.3f}"), ("end", f"{at:.3f}")] + (
            [("match[]", selector)] if selector else []
        )
        ms, values = timed(lambda: api(url, f"/api/v1/label/{label}/values", params), runs)
        rows[f"variable {next(names)}"] = (ms, len(values or []))
        return list(values or [])

    def instant(expr: str) -> list[dict[str, Any]]:  # a query_result variable
        ms, data = timed(lambda: api(url, "/api/v1/query", [("query", expr), ("time", f"{at:.3f}")]), runs)
        rows[f"variable {next(names)}"] = (ms, len(data["result"]))
        return list(data["result"])

    values = grafana.resolve(dashboard, fetch, instant=instant)
    values.update(grafana.range_variables(at - RANGE, at, scrape=STEP))  # a datasource without timeInterval
    for title, target in grafana.targets(dashboard, "prometheus"):
        expr = grafana.interpolate(target["expr"], values)
        if target.get("instant"):
            path, params = "/api/v1/query", [("query", expr), ("time", f"{at:.3f}")]
        else:
            path = "/api/v1/query_range"
            params = [
                ("query", expr),
                ("start", f"{at - RANGE:.3f}"),
                ("end", f"{at:.3f}"),
                ("step", str(STEP)),
            ]
        ms, data = timed(lambda path=path, params=params: api(url, path, params), runs)
        name = (
            title
            if len([t for t, _ in grafana.targets(dashboard, "prometheus") if t == title]) == 1
            else f"{title} {target['refId']}"
        )
        rows[name] = (ms, len(data["result"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=50)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument(
        "--interval", type=int, default=30, help="seconds between samples (default %(default)s)"
    )
    parser.add_argument("--minutes", type=int, default=16, help="minutes of data (default %(default)s)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per query; the median is shown")
    parser.add_argument("--before", default=BEFORE, help="git revision of the dashboard to compare with")
    parser.add_argument("--keep", type=Path, help="build the TSDB in this folder and leave it there")
    args = parser.parse_args(argv)

    try:
        promtool = server_binary("promtool-3.14")
        server_binary("prometheus-3.14")
    except BaseException as missing:  # pytest's skip or fail outcome, with the command that builds it
        print(f"error: {missing}")
        return 2
    before = json.loads(
        subprocess.run(
            ["git", "show", f"{args.before}:grafana_dashboards/liveview.json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    after = grafana.load()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="liveview-dashboard-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    end = int(time.time()) // args.interval * args.interval
    times = list(range(end - args.minutes * 60, end + 1, args.interval))
    processes = layout(args.instances, args.services)

    started = time.monotonic()
    samples = write_openmetrics(workdir / "data.om", processes, args.metrics, times)
    subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            workdir / "data.om",
            workdir / "data",
        ],
        check=True,
        capture_output=True,
    )
    (workdir / "data.om").unlink()
    built = time.monotonic() - started
    prometheus = start_prometheus(
        workdir, binary="prometheus-3.14", extra_args=["--storage.tsdb.retention.time=30d"]
    )
    try:
        series = int(
            api(
                prometheus.url,
                "/api/v1/query",
                [("query", 'count({__name__=~"liveview_.+"})'), ("time", str(end))],
            )["result"][0]["value"][1]
        )
        at = end + 10  # the newest sample is 10 s old: "processes alive" counts every process
        rows_before = measure(prometheus.url, before, at, args.runs)
        rows_after = measure(prometheus.url, after, at, args.runs)
    finally:
        prometheus.stop()

    print(
        f"{args.instances} instances x {args.metrics} metrics in {args.services} services: {series:,} series, "
        f"{samples:,} samples ({len(times)} per series, every {args.interval} s), built in {built:.0f} s"
    )
    print(
        f"Prometheus 3.14 (promtool-built blocks), {platform.machine()}, median of {args.runs} runs after one warm-up;"
    )
    print(
        f"range queries over {RANGE // 60} minutes at a {STEP} s step; before = {args.before}, after = working tree\n"
    )
    print("| query | before ms | after ms | before results | after results |")
    print("|---|---:|---:|---:|---:|")
    for name in list(dict.fromkeys([*rows_after, *rows_before])):
        b, a = rows_before.get(name), rows_after.get(name)
        print(
            f"| {name} | {f'{b[0]:.1f}' if b else '–'} | {f'{a[0]:.1f}' if a else '–'} "
            f"| {b[1] if b else '–'} | {a[1] if a else '–'} |"
        )
    slowest = max(ms for ms, _ in rows_after.values())
    print(f"\nslowest query after: {slowest:.1f} ms (target < 100 ms)")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
