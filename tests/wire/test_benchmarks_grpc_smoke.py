"""The OTLP/gRPC client benchmark works end to end (a few calls). Timing figures are printed, never asserted."""

from __future__ import annotations

from tests.support.processes import run_module


def test_the_grpc_client_benchmark_prints_both_requests() -> None:
    out = run_module("benchmarks.grpc", "--requests", "20", timeout=120)
    print(out)
    header, *rows = out.splitlines()
    assert header.split()[:2] == ["request", "bytes"]
    assert [row[:22].strip() for row in rows] == ["512 log records", "metric export"]
    for row in rows:
        ratio = float(row[22:].split()[3])  # h2 CPU / grpcio CPU: a number, whatever the machine
        assert ratio > 0
