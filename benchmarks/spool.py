"""What the spool costs, in one run:

    python -m benchmarks.spool            # about a minute and a half
    python -m benchmarks.spool --quick    # a smoke run

1. The record format: real requests of an offline run (512 logs each, and metric exports), written
   as the spool frames them ([kind][u32 length][u32 crc32][protobuf]) and as OTLP JSON Lines (one
   `json_format.MessageToJson` line per request, the specification's file format): CPU per record
   to write and to read back into request bytes, and bytes per record.
2. Sender CPU per record with a spool configured and a healthy collector, against no spool: the
   steady-rate case of benchmarks.export (logs at a fixed rate to benchmarks.sink, then a flush),
   the two sides interleaved, the median of the runs.
3. Replay: an offline run of many logs, then `otel-liveview replay` into benchmarks.sink; records per
   second of wall time, from the command's start to its end (interpreter start included).
4. The road not taken: what writing each record in the publish call itself would add (the queued
   item marshalled and written, one `write()` per call), against the publish call as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from benchmarks.export import ROOT, Sink, steady

FULL = {"rate": 20_000, "seconds": 3.0, "runs": 5, "replay_records": 500_000, "calls": 200_000}
QUICK = {"rate": 5_000, "seconds": 1.0, "runs": 1, "replay_records": 20_000, "calls": 10_000}

OFFLINE_RUN = """
import sys, otel_liveview
broadcaster = otel_liveview.ExperimentBroadcaster(base_topic="bench")
for i in range(int(sys.argv[1])):
    broadcaster.publish_log_sync("info", "msg", i=i)
    if i % 50 == 0:
        broadcaster.publish_metric_sync("loss", 1.0 / (i + 1), step=i)
"""


def offline_spool(records: int, directory: Path) -> None:
    env = {
        **os.environ,
        "OTEL_LIVEVIEW_OFFLINE": "true",
        "OTEL_LIVEVIEW_SPOOL_DIR": str(directory),
        "OTEL_BLRP_MAX_QUEUE_SIZE": str(max(records, 32_768)),
        "OTEL_LIVEVIEW_EXIT_TIMEOUT": "120",
    }
    subprocess.run(
        [sys.executable, "-c", OFFLINE_RUN, str(records)], cwd=ROOT, env=env, check=True, timeout=600
    )


def spooled_requests(directory: Path) -> list[tuple[int, bytes]]:
    from otel_liveview._internal.spool import Record, claim, directory_segments, read_record

    found = []
    for path in directory_segments(str(directory)):
        segment = claim(path)
        assert segment is not None
        offset = 0
        while isinstance(record := read_record(segment, offset), Record):
            found.append((record.kind, record.payload))
            offset = record.end
        segment.close()
    return found


def format_costs(records: int) -> dict[str, Any]:
    from google.protobuf import json_format
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    from otel_liveview._internal.spool import HEADER, LOGS, frame, record_counts

    with tempfile.TemporaryDirectory() as folder:
        offline_spool(records, Path(folder))
        requests = spooled_requests(Path(folder))
    count = sum(sum(record_counts(kind, payload).values()) for kind, payload in requests)
    types = {LOGS: ExportLogsServiceRequest}
    # The sender holds the logs request as a message and the metric export as bytes: JSON needs a
    # message, so the metric bytes are parsed first (what JSON Lines would cost this sender).
    messages = [(types.get(kind, ExportMetricsServiceRequest), payload) for kind, payload in requests]

    started = time.process_time()
    framed = [frame(kind, payload) for kind, payload in requests]
    frame_cpu = time.process_time() - started

    parsed = [kind.FromString(payload) for kind, payload in messages]
    started = time.process_time()
    lines = []
    for (kind, payload), message in zip(requests, parsed, strict=True):
        if kind != LOGS:
            message = type(message).FromString(payload)
        lines.append(json_format.MessageToJson(message, indent=None) + "\n")
    json_cpu = time.process_time() - started

    started = time.process_time()
    for data in framed:  # what replay does: the header checked, the payload sent as it is
        HEADER.unpack_from(data)
        zlib.crc32(data[HEADER.size :])
    frame_read = time.process_time() - started
    started = time.process_time()
    for line, (message_type, _) in zip(lines, messages, strict=True):
        json_format.Parse(line, message_type()).SerializeToString()
    json_read = time.process_time() - started
    return {
        "requests": len(requests),
        "records": count,
        "frame_write_us": frame_cpu / count * 1e6,
        "json_write_us": json_cpu / count * 1e6,
        "frame_read_us": frame_read / count * 1e6,
        "json_read_us": json_read / count * 1e6,
        "frame_bytes": sum(map(len, framed)) / count,
        "json_bytes": sum(len(line.encode()) for line in lines) / count,
    }


def sender_cpu(sink: Sink, rate: int, seconds: float, runs: int) -> dict[str, Any]:
    results: dict[str, list[float]] = {"no spool": [], "spool": []}
    for _ in range(runs):
        for side in results:
            with tempfile.TemporaryDirectory() as folder:
                env = sink.env()
                if side == "spool":
                    env["OTEL_LIVEVIEW_SPOOL_DIR"] = folder
                spec = json.dumps({"rate": rate, "seconds": seconds})
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.spool", "--child", spec],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=True,
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                assert result["delivered"] == result["sent"], result
                assert not list(Path(folder).glob("*.seg")), "a healthy collector: nothing stays spooled"
                results[side].append(result["cpu_us"])
    medians = {side: statistics.median(values) for side, values in results.items()}
    return {
        **{f"{side}_us": value for side, value in medians.items()},
        "ratio": medians["spool"] / medians["no spool"],
    }


def replay_rate(sink: Sink, records: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp())
    try:
        offline_spool(records, folder)
        size = sum(path.stat().st_size for path in folder.glob("*.seg"))
        before = json.loads(_get(sink.endpoint + "/counts"))
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "otel_liveview.cli", "replay", str(folder), "--endpoint", sink.endpoint],
            cwd=ROOT,
            env=sink.env(),
            check=True,
            capture_output=True,
            timeout=600,
        )
        wall = time.perf_counter() - started
        after = json.loads(_get(sink.endpoint + "/counts"))
    finally:
        shutil.rmtree(folder)
    delivered = after["log_records"] - before["log_records"]
    return {
        "records": delivered,
        "seconds": wall,
        "records_per_s": delivered / wall,
        "mb": size / 1e6,
        "sink_core": (after["cpu_seconds"] - before["cpu_seconds"]) / wall,
    }


PUBLISH_WRITE = """
import json, marshal, os, sys, tempfile, time
import otel_liveview
from otel_liveview._internal.runtime import QUEUE

otel_liveview.configure(metrics_exporter="none", logs_exporter="none")
broadcaster = otel_liveview.ExperimentBroadcaster(base_topic="bench")
calls = int(sys.argv[1])
broadcaster.publish_log_sync("info", "warm-up")
started = time.perf_counter()
for i in range(calls):
    broadcaster.publish_log_sync("info", "msg", i=i)
publish = time.perf_counter() - started
items = [("log", time.time_ns(), "bench", 9, "INFO", "msg", {"i": i}) for i in range(calls)]
with tempfile.TemporaryFile() as file:
    fd = file.fileno()
    started = time.perf_counter()
    for item in items:
        os.write(fd, marshal.dumps(item))
    write = time.perf_counter() - started
print(json.dumps({"publish_us": publish / calls * 1e6, "write_us": write / calls * 1e6}))
"""


def publish_write_cost(calls: int) -> dict[str, float]:
    """What a write in the publish call itself would add (the queued item marshalled and written, one
    `write()` per call), against the publish call as it is; in a process of its own."""
    out = subprocess.run(
        [sys.executable, "-c", PUBLISH_WRITE, str(calls)],
        cwd=ROOT,
        env={**os.environ, "OTEL_LIVEVIEW_SPOOL_DIR": ""},
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    result["ratio"] = (result["publish_us"] + result["write_us"]) / result["publish_us"]
    return result


def _get(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as reply:
        return bytes(reply.read())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(steady("library", spec["rate"], spec["seconds"])))
        return 0
    plan = QUICK if args.quick else FULL
    formats = format_costs(int(plan["replay_records"]) // 10)
    print(
        f"format, {formats['records']:,} records in {formats['requests']} requests: "
        f"framed protobuf {formats['frame_write_us']:.2f} µs/record to write, "
        f"{formats['frame_read_us']:.2f} to read, {formats['frame_bytes']:.0f} bytes/record; "
        f"OTLP JSON Lines {formats['json_write_us']:.2f} µs/record to write, "
        f"{formats['json_read_us']:.2f} to read, {formats['json_bytes']:.0f} bytes/record",
        flush=True,
    )
    sink = Sink()
    try:
        cost = sender_cpu(sink, int(plan["rate"]), float(plan["seconds"]), int(plan["runs"]))
        print(
            f"sender CPU at {plan['rate']:,} logs/s, healthy collector (median of {plan['runs']}): "
            f"no spool {cost['no spool_us']:.2f} µs/record, spool configured {cost['spool_us']:.2f} "
            f"µs/record: {cost['ratio']:.2f}x",
            flush=True,
        )
        replayed = replay_rate(sink, int(plan["replay_records"]))
        print(
            f"replay: {replayed['records']:,} log records ({replayed['mb']:.0f} MB of segments) in "
            f"{replayed['seconds']:.2f} s: {replayed['records_per_s']:,.0f} records/s "
            f"(the sink used {replayed['sink_core']:.2f} of a core)",
            flush=True,
        )
    finally:
        sink.close()
    written = publish_write_cost(int(plan["calls"]))
    print(
        f"a write in the publish call: publish_log_sync {written['publish_us']:.2f} µs, "
        f"+ {written['write_us']:.2f} µs to marshal and write its item: {written['ratio']:.1f}x the call",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
