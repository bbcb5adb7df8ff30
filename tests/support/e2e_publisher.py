"""Publishing scenarios for the Prometheus end-to-end tests, each run in a fresh interpreter.

    python -m tests.support.e2e_publisher origins TOPIC COUNT
        main thread, 4 threads, 4 asyncio tasks, a fork child and a spawn child publish under TOPIC
    python -m tests.support.e2e_publisher status TOPIC
        two experiments held in "running" until a line arrives on stdin, then one completes, one fails
    python -m tests.support.e2e_publisher probe TOPIC COUNT PERIOD_MS
        publishes metric "probe" = 1..COUNT, one every PERIOD_MS, then prints when it published each
        and waits for stdin to close before exiting (so the last value is not shipped by the exit hook)

The pipeline comes from the OTEL_* environment the test sets. Every process prints one JSON line per
origin, {"origin", "pid", "instance"}, so the test knows which `instance` label to expect.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import sys
import threading
import time

from otel_liveview import ExperimentBroadcaster, LiveViewExperiment
from otel_liveview._internal import runtime

ORIGINS = ["main", *(f"thread{i}" for i in range(4)), *(f"task{i}" for i in range(4)), "fork", "spawn"]


def data_values(last: int) -> dict[tuple[str, str], float]:
    """(stream, key) -> the value the "origins" scenario's data streams end at, `last` the last step."""
    return {
        (f"sensors_{origin}", key): value
        for origin in ORIGINS
        for key, value in (("sensor_1", value_of(origin, last)), ("nested.depth", float(last)), ("ok", 1.0))
    }


def data_labels(topic: str, service: str, instance: dict[str, str]) -> list[dict[str, str]]:
    """The label sets of the "origins" scenario's `liveview_data` series, sorted by (stream, key)."""
    return [
        {
            "__name__": "liveview_data",
            "stream": stream,
            "key": key,
            "topic": topic,
            "job": service,
            "instance": instance[stream.removeprefix("sensors_")],
        }
        for stream, key in sorted(data_values(0))
    ]


def by_stream_and_key(labels: dict[str, str]) -> tuple[str, str]:
    return labels["stream"], labels["key"]


def metric_labels(name: str, topic: str, service: str, instance: dict[str, str]) -> list[dict[str, str]]:
    """The label sets the "origins" scenario's metric `loss` gets in Prometheus, in ORIGINS order
    (`instance`: origin -> the instance id each process reported)."""
    return [
        {
            "__name__": name,
            "metric": "loss",
            "topic": topic,
            "phase": "train",
            "origin": origin,
            "job": service,
            "instance": instance[origin],
        }
        for origin in ORIGINS
    ]


def value_of(origin: str, step: int) -> float:
    """The value `origin` publishes at `step`; the test computes the same to check the last one."""
    return ORIGINS.index(origin) + step / 1000


def say(row: dict[str, object]) -> None:
    """One JSON line in one write: lines from threads and child processes never interleave."""
    os.write(sys.stdout.fileno(), (json.dumps(row) + "\n").encode())


def report(origin: str) -> None:
    active = runtime.RUNTIME.current
    say({"origin": origin, "pid": os.getpid(), "instance": active.instance_id if active else ""})


def publish(broadcaster: ExperimentBroadcaster, origin: str, count: int) -> None:
    for step in range(count):
        value = value_of(origin, step)
        broadcaster.publish_metric_sync(
            "loss", value, step=step, epoch=step // 10, phase="train", origin=origin
        )
        broadcaster.publish_data_sync(
            f"sensors_{origin}", {"sensor_1": value, "nested": {"depth": step}, "note": "text", "ok": True}
        )
        broadcaster.publish_log_sync("info", f"{origin} step {step}", origin=origin, step=step)
    report(origin)


async def publish_async(broadcaster: ExperimentBroadcaster, origin: str, count: int) -> None:
    for step in range(count):
        value = value_of(origin, step)
        await broadcaster.publish_metric(
            "loss", value, step=step, epoch=step // 10, phase="train", origin=origin
        )
        await broadcaster.publish_data(
            f"sensors_{origin}", {"sensor_1": value, "nested": {"depth": step}, "note": "text", "ok": True}
        )
        await broadcaster.publish_log("info", f"{origin} step {step}", origin=origin, step=step)
        await asyncio.sleep(0)
    report(origin)


def child(topic: str, origin: str, count: int) -> None:
    publish(ExperimentBroadcaster(base_topic=topic), origin, count)


async def tasks(broadcaster: ExperimentBroadcaster, count: int) -> None:
    await asyncio.gather(*(publish_async(broadcaster, f"task{i}", count) for i in range(4)))


def origins(topic: str, count: int) -> None:
    broadcaster = ExperimentBroadcaster(base_topic=topic)
    publish(broadcaster, "main", count)
    # Children start while the parent's pipeline is running: the fork child must get its own.
    children = []
    for method in ("fork", "spawn"):
        process = multiprocessing.get_context(method).Process(target=child, args=(topic, method, count))
        process.start()
        children.append(process)
    threads = [threading.Thread(target=publish, args=(broadcaster, f"thread{i}", count)) for i in range(4)]
    for thread in threads:
        thread.start()
    asyncio.run(tasks(broadcaster, count))
    for thread in threads:
        thread.join()
    for process in children:
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"{process.name} exited with {process.exitcode}")
    # Normal exit: the exit hooks export what is left.


def status(topic: str) -> None:
    done = LiveViewExperiment(name="done-run", base_topic=topic)
    broken = LiveViewExperiment(name="broken-run", base_topic=topic)
    with done:
        try:
            with broken:
                done.broadcaster.publish_metric_sync("grad_norm", float("nan"), step=1)
                report("main")
                sys.stdin.readline()  # the test has seen both experiments running
                done.broadcaster.publish_metric_sync("grad_norm", 0.25, step=2)
                raise RuntimeError("diverged")
        except RuntimeError:
            pass


def probe(topic: str, count: int, period: float) -> None:
    broadcaster = ExperimentBroadcaster(base_topic=topic)
    report("main")
    published = []
    for number in range(1, count + 1):
        broadcaster.publish_metric_sync("probe", number)
        published.append((number, time.time()))
        time.sleep(period)  # the pace of a training loop
    say({"published": published})
    sys.stdin.read()


if __name__ == "__main__":
    mode, topic_arg, *rest = sys.argv[1:]
    if mode == "origins":
        origins(topic_arg, int(rest[0]))
    elif mode == "status":
        status(topic_arg)
    elif mode == "probe":
        probe(topic_arg, int(rest[0]), float(rest[1]) / 1000)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
