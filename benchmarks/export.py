"""The export path of otel-liveview against the raw OpenTelemetry SDK, measured in one run.

    python -m benchmarks.export            # the full table (about six minutes)
    python -m benchmarks.export --quick    # 1-second rungs and small sizes: a smoke run

benchmarks.run measures what a publish call costs its caller; this measures what it costs to get
the records out. Every case runs in a fresh interpreter that exports OTLP/HTTP to a counting sink in
another process (benchmarks.sink), so encoding and sending are paid by the process measured and
decoding is not, and "delivered" means what the sink decoded, not what the sender believes it sent.
The baseline is the SDK as an application would wire it by hand: a `LoggerProvider` with a
`BatchLogRecordProcessor` and `OTLPLogExporter`, a `MeterProvider` with a
`PeriodicExportingMetricReader` and `OTLPMetricExporter`, both over HTTP.

CPU is `process_time()` of the sender (all threads) from the first publish of the measured window
through the final flush, divided by the records the sink received; each child publishes and flushes
a warm-up of 1,000 records before the window, so first-use imports and connections are not in it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
TOPIC = "bench"
DATA = {f"sensor_{i}": i * 0.5 for i in range(10)}
WARMUP = 1_000
TICK = 0.005  # the pacing loop sleeps this long when it is ahead of schedule
KEEPING_PACE = 0.95  # a rung counts only if the sender published at least this share of its rate

FULL = {
    "seconds": 5.0,
    "rates": (5_000, 7_500, 10_000, 15_000, 20_000, 30_000, 40_000, 60_000, 80_000, 120_000),
    "bursts": (("log", 200_000), ("data", 100_000)),
    "series": (10_000, 50_000),
    "exports": 3,
    "updates": 10.0,  # seconds of metric updates at UPDATE_RATE
    "update_runs": 3,  # per side, interleaved; the median is reported
}
QUICK = {
    "seconds": 1.0,
    "rates": (5_000, 10_000, 20_000),
    "bursts": (("log", 20_000), ("data", 10_000)),
    "series": (1_000, 5_000),
    "exports": 2,
    "updates": 2.0,
    "update_runs": 1,
}
STEADY_RATES = (5_000, 10_000)  # the steady-rate comparison; run for both sides whatever the ladder says
RHYTHM_RATE = 5_000  # logs per second of the rhythm cases
RHYTHMS = (1, 10, 50, 500)  # records the caller publishes per wake-up before it sleeps until the next are due
SIDES = ("library", "raw SDK")
UPDATE_RATE = 10_000  # metric updates per second: 10 metrics of a training loop at 1,000 steps/s
UPDATE_SIDES = ("library, events on", "library, events off", "raw SDK")


# -- what a child publishes ------------------------------------------------------------------------


class Sender(NamedTuple):
    publish: Callable[[int], None]
    flush: Callable[[], None]
    dropped: Callable[[], int | None]  # records counted as dropped so far; None: the SDK counts none


def library_sender(kind: str, queue_size: int | None) -> Sender:
    """The library with its defaults (a bigger queue only when asked), logs or 10-key data events."""
    import otel_liveview

    otel_liveview.configure(max_queue_size=queue_size)
    broadcaster = otel_liveview.ExperimentBroadcaster(base_topic=TOPIC)
    if kind == "log":
        publish: Callable[[int], None] = lambda i: broadcaster.publish_log_sync("info", "msg", i=i)  # noqa: E731
    else:
        publish = lambda i: broadcaster.publish_data_sync("sensors", DATA)  # noqa: E731

    def dropped() -> int:
        counts = otel_liveview.stats()["dropped"]
        return sum(value for key, value in counts.items() if key.startswith(f"{kind}/"))

    return Sender(publish, lambda: otel_liveview.flush(120), dropped)


def raw_sender(kind: str, queue_size: int | None) -> Sender:
    """The SDK wired by hand, emitting what the library's record carries (body, severity, attributes)."""
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider()
    options = {"max_queue_size": queue_size} if queue_size else {}
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(), **options))
    logger = provider.get_logger("bench")
    info = SeverityNumber.INFO
    data_attributes = {"stream": "sensors", "topic": TOPIC, "event_name": "liveview.data"}
    if kind == "log":

        def publish(i: int) -> None:
            logger.emit(
                timestamp=time.time_ns(),
                severity_number=info,
                severity_text="INFO",
                body="msg",
                attributes={"i": i, "topic": TOPIC},
            )
    else:

        def publish(i: int) -> None:
            logger.emit(
                timestamp=time.time_ns(),
                event_name="liveview.data",
                body=dict(DATA),
                attributes=data_attributes,
            )

    return Sender(publish, lambda: provider.force_flush(120_000), lambda: None)


def sender(side: str, kind: str, queue_size: int | None = None) -> Sender:
    return (library_sender if side == "library" else raw_sender)(kind, queue_size)


def sink_counts() -> dict[str, Any]:
    """The sink's running totals (it is the OTLP endpoint this child exports to)."""
    with urllib.request.urlopen(os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] + "/counts", timeout=30) as reply:
        return json.loads(reply.read())


# -- the measurements (each runs in a child) --------------------------------------------------------


class Window:
    """Sender CPU, wall time, sink counts and counted drops across a measured stretch of a child."""

    def __init__(self, out: Sender) -> None:
        self.out = out
        self.sink = sink_counts()
        self.dropped = out.dropped()
        self.cpu = time.process_time()
        self.started = time.perf_counter()

    def close(self, sent: int, publish_seconds: float) -> dict[str, Any]:
        cpu = time.process_time() - self.cpu
        wall = time.perf_counter() - self.started
        sink = sink_counts()
        delivered = sink["log_records"] - self.sink["log_records"]
        requests = sink["log_requests"] - self.sink["log_requests"]
        dropped = self.out.dropped()
        return {
            "sent": sent,
            "delivered": delivered,
            "dropped": None if dropped is None else dropped - self.dropped,
            "per_request": delivered / requests if requests else 0.0,
            "cpu_us": cpu / delivered * 1e6 if delivered else float("inf"),
            "sent_per_s": sent / publish_seconds,
            "delivered_per_s": delivered / wall,
            "sink_core": (sink["cpu_seconds"] - self.sink["cpu_seconds"]) / wall,
        }


def warm_up(out: Sender) -> None:
    for i in range(WARMUP):
        out.publish(i)
    out.flush()


def pace(publish: Callable[[int], None], rate: int, total: int) -> float:
    """Call publish(0 .. total-1) at `rate` per second; the seconds it took.

    Each pass publishes what is due by now, so a sender that falls behind catches up in bursts and
    the sent rate shows whether it kept up. The sleeps cost CPU of their own, the same for both
    sides; `pacing_cost` measures it.
    """
    clock, sleep = time.perf_counter, time.sleep
    started, i = clock(), 0
    while i < total:
        due = min(total, int((clock() - started) * rate) + 1)
        if i == due:
            sleep(TICK)
            continue
        for n in range(i, due):
            publish(n)
        i = due
    return clock() - started


def pace_in_handfuls(publish: Callable[[int], None], rate: int, total: int, per_wake: int) -> float:
    """Call publish(0 .. total-1) at `rate` per second, `per_wake` at a time, sleeping until the next
    ones are due: a loop that publishes a few records per step, then waits on its work."""
    clock, sleep = time.perf_counter, time.sleep
    started = clock()
    for first in range(0, total, per_wake):
        for n in range(first, min(total, first + per_wake)):
            publish(n)
        ahead = started + (first + per_wake) / rate - clock()
        if ahead > 0:
            sleep(ahead)
    return clock() - started


def pacing_cost(rate: int, seconds: float) -> float:
    """CPU µs per record of the pacing loop alone (publishing nothing), part of every steady figure."""
    started = time.process_time()
    pace(lambda i: None, rate, int(rate * seconds))
    return (time.process_time() - started) / (rate * seconds) * 1e6


def steady(side: str, rate: int, seconds: float) -> dict[str, Any]:
    """Logs at `rate` per second for `seconds`, default settings, then a flush."""
    out = sender(side, "log")
    warm_up(out)
    total = int(rate * seconds)
    window = Window(out)
    publish_seconds = pace(out.publish, rate, total)
    out.flush()
    return window.close(total, publish_seconds)


def rhythm(side: str, per_wake: int, seconds: float) -> dict[str, Any]:
    """Logs at RHYTHM_RATE for `seconds`, `per_wake` per wake-up, default settings, then a flush."""
    out = sender(side, "log")
    warm_up(out)
    total = int(RHYTHM_RATE * seconds)
    window = Window(out)
    publish_seconds = pace_in_handfuls(out.publish, RHYTHM_RATE, total, per_wake)
    out.flush()
    return window.close(total, publish_seconds)


def burst(side: str, kind: str, count: int) -> dict[str, Any]:
    """`count` records as fast as one thread can publish them into a queue that holds them all."""
    out = sender(side, kind, queue_size=count + WARMUP)
    warm_up(out)
    window = Window(out)
    started = time.perf_counter()
    for i in range(count):
        out.publish(i)
    publish_seconds = time.perf_counter() - started
    out.flush()
    return window.close(count, publish_seconds)


def metric_setup(side: str) -> tuple[Callable[[int, float], None], Callable[[], None]]:
    """(set(i, value) for series i, export now) with room for 60,000 series and no periodic export."""
    if side == "library":
        import otel_liveview

        otel_liveview.configure(metric_events=False, max_series=60_000, metric_export_interval=3600)
        broadcaster = otel_liveview.ExperimentBroadcaster(base_topic=TOPIC)
        names: dict[int, str] = {}

        def set_library(i: int, value: float) -> None:
            broadcaster.publish_metric_sync(names.get(i) or names.setdefault(i, f"m{i}"), value)

        return set_library, lambda: otel_liveview.flush(120)

    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider, _Gauge
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(), export_interval_millis=3_600_000, cardinality_limits={_Gauge: 60_000}
    )
    provider = MeterProvider(metric_readers=[reader])
    gauge = provider.get_meter("bench").create_gauge("liveview.metric")
    attributes: dict[int, dict[str, str]] = {}

    def set_raw(i: int, value: float) -> None:
        gauge.set(value, attributes.get(i) or attributes.setdefault(i, {"metric": f"m{i}", "topic": TOPIC}))

    return set_raw, lambda: provider.force_flush(120_000)


def series(side: str, count: int, exports: int) -> dict[str, Any]:
    """CPU of one metric export with `count` series, each given a new value before every export."""
    set_value, export = metric_setup(side)
    cpu = []
    arrived = []
    overflow = False
    for round_ in range(exports + 1):  # round 0 warms up: first export, connection, imports
        for i in range(count):
            set_value(i, float(i + round_))
        started = time.process_time()
        export()
        if round_:
            cpu.append(time.process_time() - started)
            sink = sink_counts()
            arrived.append(sink["latest_points"].get("liveview.metric", 0))
            overflow = overflow or "liveview.metric" in sink["latest_overflow"]
    return {"cpu_ms": sum(cpu) / len(cpu) * 1000, "arrived": min(arrived), "overflow": overflow}


def update_setup(side: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    """(publish update i, flush): metric m{i % 10} with a step and a phase label, the default 1 s
    export interval; the raw SDK sets the value and step gauges the library records."""
    if side.startswith("library"):
        import otel_liveview

        otel_liveview.configure(metric_events=side.endswith("events on"))
        broadcaster = otel_liveview.ExperimentBroadcaster(base_topic=TOPIC)
        names = [f"m{i}" for i in range(10)]

        def publish_library(i: int) -> None:
            broadcaster.publish_metric_sync(names[i % 10], 1.0 / (i + 1), step=i // 10, phase="train")

        return publish_library, lambda: otel_liveview.flush(120)

    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())])
    meter = provider.get_meter("bench")
    value, step = meter.create_gauge("liveview.metric"), meter.create_gauge("liveview.metric.step")
    attributes = [{"metric": f"m{i}", "topic": TOPIC, "phase": "train"} for i in range(10)]

    def publish_raw(i: int) -> None:
        value.set(1.0 / (i + 1), attributes[i % 10])
        step.set(i // 10, attributes[i % 10])

    return publish_raw, lambda: provider.force_flush(120_000)


def updates(side: str, seconds: float) -> dict[str, Any]:
    """Metric updates at UPDATE_RATE for `seconds`, then a flush: CPU per 1 s export interval, and
    how many updates the sink found in `liveview.metric` events."""
    publish, flush = update_setup(side)
    for i in range(WARMUP):
        publish(i)
    flush()
    before = sink_counts()["metric_updates"]
    cpu = time.process_time()
    total = int(UPDATE_RATE * seconds)
    publish_seconds = pace(publish, UPDATE_RATE, total)
    flush()
    cpu = time.process_time() - cpu
    return {
        "sent": total,
        "event_updates": sink_counts()["metric_updates"] - before,
        "cpu_ms": cpu / seconds * 1000,
        "sent_per_s": total / publish_seconds,
    }


def child(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["case"] == "updates":
        return updates(spec["side"], spec["seconds"])
    if spec["case"] == "steady":
        return steady(spec["side"], spec["rate"], spec["seconds"])
    if spec["case"] == "rhythm":
        return rhythm(spec["side"], spec["per_wake"], spec["seconds"])
    if spec["case"] == "burst":
        return burst(spec["side"], spec["kind"], spec["count"])
    return series(spec["side"], spec["count"], spec["exports"])


# -- the runner ------------------------------------------------------------------------------------


class Sink:
    """benchmarks.sink in its own process: the OTLP/HTTP endpoint of every child."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "benchmarks.sink"], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout
        self.endpoint = json.loads(self.process.stdout.readline())["endpoint"]

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        }

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def run_child(sink: Sink, **spec: Any) -> dict[str, Any]:
    """One case in a fresh interpreter; its last line of output is the result."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.export", "--child", json.dumps(spec)],
        cwd=ROOT,
        env=sink.env(),
        capture_output=True,
        text=True,
        timeout=600,  # a child that hangs fails the run instead of holding it forever
    )
    if result.returncode:
        raise RuntimeError(f"{spec} failed:\n{result.stderr[-3000:]}")
    return {**spec, **json.loads(result.stdout.strip().splitlines()[-1])}


def lossless(result: dict[str, Any]) -> bool:
    """Everything published arrived, nothing was counted as dropped, and the sender kept its pace."""
    return (
        result["delivered"] == result["sent"]
        and not result["dropped"]
        and result["sent_per_s"] >= KEEPING_PACE * result["rate"]
    )


def ladder(sink: Sink, side: str, rates: tuple[int, ...], seconds: float) -> list[dict[str, Any]]:
    """Steady rates from the lowest up; past the steady-rate comparison, stop after the first loss."""
    results: list[dict[str, Any]] = []
    for rate in rates:
        if rate > max(STEADY_RATES) and not all(lossless(r) for r in results):
            break
        results.append(run_child(sink, case="steady", side=side, rate=rate, seconds=seconds))
    return results


def highest_lossless(results: list[dict[str, Any]]) -> int:
    """The highest rung below which (and at which) every rung was lossless; 0 if the first was not."""
    best = 0
    for result in results:
        if not lossless(result):
            break
        best = result["rate"]
    return best


def label(result: dict[str, Any]) -> str:
    if result["case"] == "steady":
        return f"steady {result['rate']:,}/s"
    if result["case"] == "rhythm":
        return f"{RHYTHM_RATE:,}/s, {result['per_wake']} per wake"
    return f"burst {result['count']:,} {'logs' if result['kind'] == 'log' else 'data'}"


def print_records_table(results: list[dict[str, Any]]) -> None:
    head = ("case", "side", "sent", "delivered", "dropped", "rec/req", "CPU µs/rec", "sent/s", "delivered/s")
    print(f"{head[0]:22}  {head[1]:8}" + "".join(f"  {h:>11}" for h in head[2:]))
    for r in results:
        dropped = "-" if r["dropped"] is None else f"{r['dropped']:,}"
        cells = (
            f"{r['sent']:,}",
            f"{r['delivered']:,}",
            dropped,
            f"{r['per_request']:.0f}",
            f"{r['cpu_us']:.2f}",
            f"{r['sent_per_s']:,.0f}",
            f"{r['delivered_per_s']:,.0f}",
        )
        print(f"{label(r):22}  {r['side']:8}" + "".join(f"  {c:>11}" for c in cells))


def print_series_table(results: list[dict[str, Any]]) -> None:
    print(f"{'series published':22}  {'side':8}  {'CPU ms/export':>13}  {'series arrived':>14}")
    for r in results:
        note = "  (the rest in one overflow point)" if r["overflow"] else ""
        arrived = f"{r['arrived']:,}"
        print(f"{r['count']:<22,}  {r['side']:8}  {r['cpu_ms']:13.1f}  {arrived:>14}{note}")


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median CPU, with every run's CPU for the table."""
    ordered = sorted(runs, key=lambda r: r["cpu_ms"])
    return {**ordered[len(ordered) // 2], "cpu_runs": [r["cpu_ms"] for r in runs]}


def print_updates_table(results: list[dict[str, Any]]) -> None:
    print(
        f"{'side':20}  {'updates':>9}  {'in events':>9}  {'sent/s':>7}  {'CPU ms per 1 s interval':>23}  runs"
    )
    for r in results:
        runs = ", ".join(f"{cpu:.1f}" for cpu in r["cpu_runs"])
        print(
            f"{r['side']:20}  {r['sent']:9,}  {r['event_updates']:9,}  {r['sent_per_s']:7,.0f}  {r['cpu_ms']:23.1f}  {runs}"
        )


def pick(results: list[dict[str, Any]], side: str, **match: Any) -> dict[str, Any]:
    return next(r for r in results if r["side"] == side and all(r.get(k) == v for k, v in match.items()))


def ratio_rows(
    records: list[dict[str, Any]],
    series_results: list[dict[str, Any]],
    update_results: list[dict[str, Any]],
    best: dict[str, int],
    rates: tuple[int, ...],
) -> list[tuple[str, float, str | None]]:
    """(what, value, target or None): library / raw SDK, and the library's requests at 5,000/s."""
    rows: list[tuple[str, float, str | None]] = []

    def divide(ours: float, theirs: float) -> float:
        return ours / theirs if theirs else float("inf")

    for rate in STEADY_RATES:
        lib, raw = (pick(records, side, case="steady", rate=rate) for side in SIDES)
        rows.append(
            (f"CPU per delivered record, steady {rate:,}/s", divide(lib["cpu_us"], raw["cpu_us"]), "<= 0.3")
        )
    for lib in (r for r in records if r["case"] == "burst" and r["side"] == "library"):
        raw = pick(records, "raw SDK", case="burst", kind=lib["kind"])
        what = label(lib)
        rows.append((f"CPU per delivered record, {what}", divide(lib["cpu_us"], raw["cpu_us"]), "<= 0.3"))
        rows.append(
            (f"delivered per second, {what}", divide(lib["delivered_per_s"], raw["delivered_per_s"]), None)
        )
    first = min(STEADY_RATES)
    lib_5k = pick(records, "library", case="steady", rate=first)
    rows.append(
        (f"records per request at {first:,}/s (library, not a ratio)", lib_5k["per_request"], ">= 256")
    )
    for lib in (r for r in records if r["case"] == "rhythm" and r["side"] == "library"):
        what = f"records per request at {RHYTHM_RATE:,}/s, {lib['per_wake']} per wake-up (library)"
        rows.append((what, lib["per_request"], ">= 256"))
    at_top = " (top rung: a lower bound)" if best["library"] == max(rates) else ""
    rows.append((f"highest lossless steady rate{at_top}", divide(best["library"], best["raw SDK"]), ">= 3"))
    for count in sorted({r["count"] for r in series_results}):
        lib, raw = (pick(series_results, side, count=count) for side in SIDES)
        rows.append((f"CPU per export, {count:,} series", divide(lib["cpu_ms"], raw["cpu_ms"]), "<= 1.0"))
    on, off, raw = (pick(update_results, side) for side in UPDATE_SIDES)
    rate = f"{UPDATE_RATE:,} metric updates/s"
    rows.append(
        (f"CPU, {rate}: events on / events off (library)", divide(on["cpu_ms"], off["cpu_ms"]), "<= 1.5")
    )
    rows.append((f"CPU, {rate}: events on / raw SDK gauges", divide(on["cpu_ms"], raw["cpu_ms"]), None))
    return rows


def meets(value: float, target: str) -> bool:
    bound = float(target.split()[1])
    return value <= bound if target.startswith("<=") else value >= bound


def print_ratios(rows: list[tuple[str, float, str | None]]) -> None:
    print(f"{'library / raw SDK':62}  {'value':>7}  {'target':>7}")
    for what, value, target in rows:
        verdict = "" if target is None else ("  ok" if meets(value, target) else "  MISSED")
        print(f"{what:62}  {value:7.2f}  {target or '-':>7}{verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1-second rungs and small sizes (a smoke run)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        os._exit(0)  # measured already: no exit-time export into the next case's counts

    sizes = QUICK if args.quick else FULL
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f} at start"
    )
    sink = Sink()
    try:
        rungs = {side: ladder(sink, side, sizes["rates"], sizes["seconds"]) for side in SIDES}
        rhythms = [
            run_child(sink, case="rhythm", side=side, per_wake=per_wake, seconds=sizes["seconds"])
            for per_wake in RHYTHMS
            for side in SIDES
        ]
        bursts = [
            run_child(sink, case="burst", side=side, kind=kind, count=count)
            for kind, count in sizes["bursts"]
            for side in SIDES
        ]
        series_results = [
            run_child(sink, case="series", side=side, count=count, exports=sizes["exports"])
            for count in sizes["series"]
            for side in SIDES
        ]
        update_runs: dict[str, list[dict[str, Any]]] = {side: [] for side in UPDATE_SIDES}
        for _ in range(sizes["update_runs"]):
            for side in UPDATE_SIDES:
                update_runs[side].append(run_child(sink, case="updates", side=side, seconds=sizes["updates"]))
        update_results = [median_run(runs) for runs in update_runs.values()]
    finally:
        sink.close()
    records = [r for rate in sizes["rates"] for side in SIDES for r in rungs[side] if r["rate"] == rate]
    records += rhythms + bursts
    best = {side: highest_lossless(rungs[side]) for side in SIDES}

    print(
        f"\nlogs and data events over OTLP/HTTP; steady rungs {sizes['seconds']:g} s each; "
        "CPU per record the sink received"
    )
    print_records_table(records)
    print(
        f"\nhighest lossless steady rate: library {best['library']:,}/s, raw SDK {best['raw SDK']:,}/s "
        f"(rungs {', '.join(f'{rate:,}' for rate in sizes['rates'])}/s)"
    )
    print(f"the sink used at most {max(r['sink_core'] for r in records):.0%} of one core in any case")
    pacing = ", ".join(f"{pacing_cost(rate, sizes['seconds']):.2f} at {rate:,}/s" for rate in STEADY_RATES)
    print(f"the pacing loop alone (in both sides' steady figures): CPU µs per record {pacing}")
    print("\nmetric series: one export after every series got a new value")
    print_series_table(series_results)
    print(
        f"\nmetric updates: {UPDATE_RATE:,}/s for {sizes['updates']:g} s (10 metrics with step and phase), "
        f"median of {sizes['update_runs']} runs"
    )
    print_updates_table(update_results)
    print()
    print_ratios(ratio_rows(records, series_results, update_results, best, sizes["rates"]))
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
