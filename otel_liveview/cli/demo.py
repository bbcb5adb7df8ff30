"""`otel-liveview demo`: a realistic experiment publishing from a loop, an asyncio task, a thread and
a second process, so every LiveView panel has something to show.

With `--view` it needs no collector: the terminal view (otel_liveview.view) listens first, the library is
pointed at it through the standard OTEL_EXPORTER_OTLP_* variables (which the spawned worker
inherits), and the view draws while the experiment runs.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from types import ModuleType
from typing import TextIO

import otel_liveview
from otel_liveview import ExperimentBroadcaster, LiveViewExperiment
from otel_liveview._internal import config
from otel_liveview.cli import check
from otel_liveview.cli.extras import VIEW, absent

STEPS_PER_EPOCH = 50
TRAIN_STEPS = 20 * STEPS_PER_EPOCH
EVAL_ROUNDS = 40


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="run a demo experiment that publishes to the configured collector",
        description="Run a demo experiment: a training loop, an evaluation worker in a second process, "
        "a sensor stream from an asyncio task, system metrics from a thread and a learning-rate sweep "
        "that diverges. It publishes where the OTEL_EXPORTER_OTLP_* variables say (checked first), or "
        "with --view to a LiveView in this terminal, no collector needed.",
    )
    parser.add_argument(
        "--duration",
        type=config.positive_seconds,
        default=None,
        help="seconds to run (default: until Ctrl-C)",
    )
    parser.add_argument(
        "--topic", default="experiment:updates:root", help="base topic (default: %(default)s)"
    )
    parser.add_argument("--name", default="demo-mnist", help="experiment name (default: %(default)s)")
    parser.add_argument(
        "--step-seconds",
        type=config.positive_seconds,
        default=0.2,
        help="time per training step (default: %(default)s)",
    )
    parser.add_argument(
        "--view",
        action="store_true",
        help="show it in this terminal through an embedded view instead of sending it to a collector",
    )
    view = _view_module()
    if not isinstance(view, str):  # without the view extra, --view says what to install
        view.add_view_arguments(parser.add_argument_group("with --view"))
    parser.set_defaults(run=run)


def _view_module() -> ModuleType | str:
    """otel_liveview.cli.view, or the name of what its extra installs and is missing (rich, grpcio)."""
    try:
        from otel_liveview.cli import view
    except ModuleNotFoundError as error:
        missing = absent(error, VIEW)
        if missing is None:
            raise
        return missing
    return view


def run(args: argparse.Namespace) -> int:
    problem = check.configuration_error()  # before any process starts: one line, not a traceback
    if problem is not None:
        print(f"otel-liveview demo: {problem}", file=sys.stderr)
        return 2
    session = None
    if getattr(args, "view", False):
        view = _view_module()
        if isinstance(view, str):
            print(
                f"otel-liveview demo: --view needs {view}: pip install 'otel-liveview[view]'", file=sys.stderr
            )
            return 2
        opened = view.open_session(args)
        if isinstance(opened, int):
            return opened
        session = opened
        view.point_library_at(session)  # before the first publish: the pipeline reads it once
    progress = Progress(sys.stdout) if session is None else None  # the view owns the terminal
    try:
        outcome = run_experiment(args, progress)
    finally:
        if session is not None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the clean-up
            otel_liveview.shutdown()  # ship the rest while the view still listens, not at exit
            session.stop()
    if progress is not None:
        progress.end()
    print(outcome, flush=True)
    return 0


class Progress:
    """A status line per training step: rewritten in place on a terminal; into a pipe or a log
    (`docker compose logs`) a line per epoch, never a carriage return."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        try:
            self._tty = out.isatty()
        except (AttributeError, ValueError):
            self._tty = False
        self._open = False  # a line written in place, not yet ended

    def step(self, step: int, text: str) -> None:
        if self._tty:
            print(f"\r{text}", end="", file=self._out, flush=True)
            self._open = True
        elif step % STEPS_PER_EPOCH == 0:
            print(text, file=self._out, flush=True)

    def end(self) -> None:
        if self._open:
            print(file=self._out)
            self._open = False


def run_experiment(args: argparse.Namespace, status: Progress | None = None) -> str:
    """The experiment itself; "done" or "interrupted". `status` shows the training steps."""
    deadline = math.inf if args.duration is None else time.monotonic() + args.duration
    stop = threading.Event()
    evaluator = multiprocessing.get_context("spawn").Process(
        target=evaluation_worker, args=(args.topic, args.duration), daemon=True
    )
    try:
        with LiveViewExperiment(
            name=args.name,
            base_topic=args.topic,
            totals={
                "train": {"steps": TRAIN_STEPS, "epochs": TRAIN_STEPS // STEPS_PER_EPOCH},
                "eval": {"steps": EVAL_ROUNDS},
            },
            dataset="mnist",
            model={"arch": "mlp", "hidden": [256, 128], "dropout": 0.1},
            optimizer={"name": "adam", "lr": 1e-3},
            batch_size=64,
            seed=1234,
        ) as experiment:
            broadcaster = experiment.broadcaster
            threading.Thread(target=system_metrics, args=(broadcaster, stop), daemon=True).start()
            threading.Thread(target=diverging_sweep, args=(args.topic, stop), daemon=True).start()
            sensors = threading.Thread(
                target=lambda: asyncio.run(sensor_stream(broadcaster, stop)), daemon=True
            )
            sensors.start()
            evaluator.start()
            train(broadcaster, deadline, args.step_seconds, stop, status)
    except KeyboardInterrupt:
        return "interrupted"
    finally:
        stop.set()
        if evaluator.pid is not None:  # started
            evaluator.join(timeout=5)
    return "done"


def train(
    broadcaster: ExperimentBroadcaster,
    deadline: float,
    step_seconds: float,
    stop: threading.Event,
    status: Progress | None = None,
) -> None:
    """A training loop: noisy falling loss, rising accuracy, a cosine learning-rate schedule."""
    broadcaster.publish_log_sync("info", "training started", steps_per_epoch=STEPS_PER_EPOCH)
    step = 0
    while step < TRAIN_STEPS and time.monotonic() < deadline and not stop.is_set():
        epoch = step // STEPS_PER_EPOCH
        progress = step / (STEPS_PER_EPOCH * 20)
        loss = 2.5 * math.exp(-3 * progress) + 0.05 + random.gauss(0, 0.04)
        accuracy = min(0.99, 1 - 0.9 * math.exp(-4 * progress) + random.gauss(0, 0.01))
        lr = 1e-3 * 0.5 * (1 + math.cos(math.pi * (progress % 1)))
        broadcaster.publish_metric_sync("loss", loss, step=step, epoch=epoch, phase="train")
        broadcaster.publish_metric_sync("accuracy", accuracy, step=step, epoch=epoch, phase="train")
        broadcaster.publish_metric_sync("learning_rate", lr, step=step, epoch=epoch, phase="train")
        broadcaster.publish_log_sync("debug", f"step {step} loss {loss:.4f}", step=step)
        if step and step % STEPS_PER_EPOCH == 0:
            broadcaster.publish_log_sync("info", f"epoch {epoch} finished", epoch=epoch, loss=round(loss, 4))
        if random.random() < 0.02:
            broadcaster.publish_log_sync(
                "warning", "gradient norm spiked", step=step, grad_norm=random.uniform(5, 50)
            )
        if random.random() < 0.005:
            broadcaster.publish_log_sync("error", "data loader retried a corrupt batch", step=step)
        if status is not None:
            status.step(
                step,
                f"step {step:6d}  epoch {epoch:3d}  loss {loss:.4f}  accuracy {accuracy:.3f}  lr {lr:.2e}",
            )
        step += 1
        stop.wait(step_seconds)


async def sensor_stream(broadcaster: ExperimentBroadcaster, stop: threading.Event) -> None:
    """A 10 Hz sensor rig published from an asyncio task."""
    started = time.monotonic()
    while not stop.is_set():
        t = time.monotonic() - started
        await broadcaster.publish_data(
            "sensors",
            {
                "temperature": 21 + 3 * math.sin(t / 30) + random.gauss(0, 0.1),
                "pressure": 101.3 + random.gauss(0, 0.05),
                "arm": {"x": math.cos(t), "y": math.sin(t)},
                "status": "ok",
            },
        )
        await asyncio.sleep(0.1)


def system_metrics(broadcaster: ExperimentBroadcaster, stop: threading.Event) -> None:
    """CPU, memory and (where nvidia-smi exists) GPU use, from a thread."""
    previous = _cpu_times()
    while not stop.wait(1.0):
        current = _cpu_times()
        if previous and current:
            busy = (current[0] - previous[0]) / max(1e-9, current[1] - previous[1])
            broadcaster.publish_metric_sync("cpu_percent", 100 * busy, phase="system")
        previous = current
        rss = _rss_mb()
        if rss is not None:
            broadcaster.publish_metric_sync("memory_mb", rss, phase="system")
        for index, utilisation in enumerate(_gpu_utilisation()):
            broadcaster.publish_metric_sync("gpu_percent", utilisation, phase="system", gpu=str(index))


def _cpu_times() -> tuple[float, float] | None:
    try:
        with open("/proc/stat") as stat:
            fields = [float(v) for v in stat.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def _rss_mb() -> float | None:
    try:
        with open(f"/proc/{os.getpid()}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _gpu_utilisation() -> list[float]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        output = subprocess.run(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=2,
        ).stdout
        return [float(line) for line in output.split()]
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return []


def diverging_sweep(topic: str, stop: threading.Event) -> None:
    """A second, short experiment whose learning rate is too high: its loss turns NaN and it fails,
    so the error panels have something to show."""
    if stop.wait(0.5):
        return
    try:
        with LiveViewExperiment("demo-lr-sweep-0.5", base_topic=topic, lr=0.5, parent="demo-mnist") as run:
            loss = 1.0
            for step in range(15):
                loss = loss * 3 if step < 14 else math.nan
                run.broadcaster.publish_metric_sync("sweep_loss", loss, step=step, phase="sweep")
                time.sleep(0.05)
            run.broadcaster.publish_log_sync("error", "loss is NaN: learning rate 0.5 diverged", step=14)
            raise FloatingPointError("loss diverged to NaN at step 14 (lr=0.5)")
    except FloatingPointError:
        pass  # recorded as the experiment's failure; the demo goes on


def evaluation_worker(topic: str, duration: float | None) -> None:
    """A second process with the same topic: periodic evaluation, like a parallel worker."""
    broadcaster = ExperimentBroadcaster(base_topic=topic)
    deadline = math.inf if duration is None else time.monotonic() + duration
    round_ = 0
    try:
        while round_ < EVAL_ROUNDS and time.monotonic() < deadline:
            accuracy = min(0.98, 0.5 + 0.04 * round_ + random.gauss(0, 0.01))
            broadcaster.publish_metric_sync("accuracy", accuracy, step=round_, phase="eval")
            broadcaster.publish_log_sync(
                "info", f"evaluation round {round_}: accuracy {accuracy:.3f}", round=round_
            )
            round_ += 1
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    sys.exit(run(parser.parse_args(["demo", *sys.argv[1:]])))


__all__ = [
    "EVAL_ROUNDS",
    "STEPS_PER_EPOCH",
    "TRAIN_STEPS",
    "Progress",
    "diverging_sweep",
    "evaluation_worker",
    "register",
    "run",
    "run_experiment",
    "sensor_stream",
    "system_metrics",
    "train",
]
