"""One rank of a data-parallel training run, for the rank-aware dashboard and alerts: every rank runs
the same LiveViewExperiment and steps at 20 steps/s, but for the straggler (LIVEVIEW_TEST_SLOW_RANK, at
a quarter of the pace) and the rank that fails (LIVEVIEW_TEST_FAILING_RANK, at step 10; it stays up so
the others are not torn down by the launcher). Each rank prints `rank R pid P step S` per 10 steps and stops
when the file LIVEVIEW_TEST_STOP exists (or after 300 s). With LIVEVIEW_TEST_EXPERIMENT_RANK, only that
rank runs the experiment; the others publish their metrics alone. With LIVEVIEW_TEST_BARRIER (a
folder), every step ends in a collective that waits for all ranks; with LIVEVIEW_TEST_NO_STEPS, the
metric has no step; LIVEVIEW_TEST_STEP_SECONDS sets the pace."""

from __future__ import annotations

import contextlib
import os
import time
import types
from pathlib import Path

from otel_liveview import ExperimentBroadcaster, LiveViewExperiment, flush

STEP_SECONDS = 0.05


def main() -> None:
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK") or os.environ["SLURM_PROCID"])  # mpirun or srun
    slow = rank == int(os.environ.get("LIVEVIEW_TEST_SLOW_RANK", "-1"))
    failing = rank == int(os.environ.get("LIVEVIEW_TEST_FAILING_RANK", "-1"))
    stop = Path(os.environ["LIVEVIEW_TEST_STOP"])
    topic = os.environ["LIVEVIEW_TEST_TOPIC"]
    deadline = time.monotonic() + 300
    only = os.environ.get("LIVEVIEW_TEST_EXPERIMENT_RANK")  # only this rank runs the experiment
    barrier = Path(os.environ["LIVEVIEW_TEST_BARRIER"]) if "LIVEVIEW_TEST_BARRIER" in os.environ else None
    steps = os.environ.get("LIVEVIEW_TEST_NO_STEPS") is None
    pace = float(os.environ.get("LIVEVIEW_TEST_STEP_SECONDS", STEP_SECONDS))
    experiment = (
        LiveViewExperiment("ddp", base_topic=topic, totals={"train": {"steps": 100_000}}, lr=0.1)
        if only is None or int(only) == rank
        else contextlib.nullcontext(
            types.SimpleNamespace(broadcaster=ExperimentBroadcaster(base_topic=topic))
        )
    )
    try:
        with experiment as run:
            step = 0
            while not stop.exists() and time.monotonic() < deadline:
                if barrier is not None and not _all_reached(barrier, rank, step, stop):
                    break
                if steps:
                    run.broadcaster.publish_metric_sync("loss", 1 / (step + 1), step=step, phase="train")
                else:
                    run.broadcaster.publish_metric_sync("loss", 1 / (step + 1), phase="train")
                if failing and step == 10:
                    raise FloatingPointError("loss diverged to NaN")
                if step % 10 == 0:
                    print(f"rank {rank} pid {os.getpid()} step {step}", flush=True)
                step += 1
                time.sleep(pace * (4 if slow else 1))
    except FloatingPointError:
        while not stop.exists() and time.monotonic() < deadline:  # failed, but alive: like a hung rank
            time.sleep(0.05)
    flush(10.0)


def _all_reached(barrier: Path, rank: int, step: int, stop: Path) -> bool:
    """A collective, as data-parallel training does one per step: this rank's step is written, then
    it waits for every rank to reach it (a paused rank holds them all). False once stopped."""
    mine = barrier / str(rank)
    (barrier / f"{rank}.tmp").write_text(str(step))
    (barrier / f"{rank}.tmp").replace(mine)
    world = int(os.environ.get("OMPI_COMM_WORLD_SIZE") or os.environ["SLURM_NTASKS"])
    while not stop.exists():
        reached = [barrier / str(other) for other in range(world)]
        if all(path.exists() and int(path.read_text() or -1) >= step for path in reached):
            return True
        time.sleep(0.005)
    return False


if __name__ == "__main__":
    main()
