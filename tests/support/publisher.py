"""A publishing experiment for the wire-level tests, run as its own process.

    python -m tests.support.publisher TOPIC COUNT ORIGIN...

ORIGIN is one of main, threads (4 threads), tasks (4 asyncio tasks), fork, forkserver, spawn
(a multiprocessing child each) and osfork (a bare os.fork() child). Every origin publishes COUNT
logs, COUNT data samples and COUNT values of metric "seq_<origin>", each tagged with its origin,
sequence number and pid, then the process exits normally without flushing: exit hooks must ship it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import threading

from otel_liveview import ExperimentBroadcaster


def publish(broadcaster: ExperimentBroadcaster, origin: str, count: int) -> None:
    pid = os.getpid()
    for seq in range(count):
        broadcaster.publish_log_sync("info", f"{origin} {seq}", origin=origin, seq=seq, pid=pid)
        broadcaster.publish_data_sync("wire", {"origin": origin, "seq": seq, "pid": pid, "value": seq / 2})
        broadcaster.publish_metric_sync(f"seq_{origin}", seq, step=seq, phase="test")


async def publish_async(broadcaster: ExperimentBroadcaster, origin: str, count: int) -> None:
    pid = os.getpid()
    for seq in range(count):
        await broadcaster.publish_log("info", f"{origin} {seq}", origin=origin, seq=seq, pid=pid)
        await broadcaster.publish_data("wire", {"origin": origin, "seq": seq, "pid": pid, "value": seq / 2})
        await broadcaster.publish_metric(f"seq_{origin}", seq, step=seq, phase="test")
        await asyncio.sleep(0)


def child(topic: str, origin: str, count: int) -> None:
    publish(ExperimentBroadcaster(base_topic=topic), origin, count)


async def tasks(broadcaster: ExperimentBroadcaster, count: int) -> None:
    await asyncio.gather(*(publish_async(broadcaster, f"task{i}", count) for i in range(4)))


def main(topic: str, count: int, origins: list[str]) -> None:
    broadcaster = ExperimentBroadcaster(base_topic=topic)
    processes = []
    for origin in origins:
        if origin == "main":
            publish(broadcaster, "main", count)
        elif origin == "threads":
            threads = [
                threading.Thread(target=publish, args=(broadcaster, f"thread{i}", count)) for i in range(4)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        elif origin == "tasks":
            asyncio.run(tasks(broadcaster, count))
        elif origin in ("fork", "forkserver", "spawn"):
            context = multiprocessing.get_context(origin)
            process = context.Process(target=child, args=(topic, origin, count))
            process.start()
            processes.append(process)
        elif origin == "osfork":
            pid = os.fork()
            if pid == 0:
                publish(broadcaster, "osfork", count)
                sys.exit(0)  # a normal exit: atexit hooks run in the child too
            processes.append(pid)
        else:
            raise SystemExit(f"unknown origin {origin!r}")
    for process in processes:
        if isinstance(process, int):
            _, status = os.waitpid(process, 0)
            assert os.waitstatus_to_exitcode(status) == 0
        else:
            process.join()
            assert process.exitcode == 0, (process, process.exitcode)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
