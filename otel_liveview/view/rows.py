"""What the board gives the screen: immutable rows, one type per panel, and the snapshot of them all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from otel_liveview._internal.config import Settings

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Limits:
    metric_rows: int = 500
    history: int = 40
    streams: int = 64
    stream_keys: int = Settings.max_stream_keys  # the first keys of a stream, as the library keeps
    experiments: int = 64
    publishers: int = 256
    logs: int = 20
    alive_seconds: float = 5.0  # a publisher is alive if it exported this recently


@dataclass(frozen=True)
class MetricRow:
    name: str
    labels: Labels  # without metric and topic
    topic: str
    instance: str
    pid: int | None
    kind: str  # "liveview", "gauge", "sum", "histogram" (mean), "summary" (mean)
    value: float | None  # latest finite value
    nonfinite: str | None  # "nan", "inf", "-inf" while the latest value is not finite
    step: float | None
    epoch: float | None
    history: tuple[float, ...]  # oldest first; NaN marks a non-finite sample
    age: float  # seconds since the value last changed


@dataclass(frozen=True)
class StreamRow:
    topic: str
    stream: str
    values: tuple[tuple[str, Any], ...]  # key -> latest value, keys sorted
    events: int  # liveview.data events received
    age: float


@dataclass(frozen=True)
class ExperimentRow:
    topic: str
    experiment: str
    status: str
    error: str | None
    pid: int | None
    age: float  # seconds since the status was last confirmed
    elapsed: float | None = None  # seconds since the start, or the run's duration once it ended
    info: tuple[tuple[str, str], ...] = ()  # the run's configuration, as liveview.experiment.info has it
    progress: tuple[tuple[str, str, float | None, float], ...] = ()  # (phase, unit, done, total)
    ranks: tuple[RankRow, ...] = ()  # the processes of its launch, when a launcher started it
    world_size: int | None = None


@dataclass(frozen=True)
class RankRow:
    """One process of a launched run: its place, its experiment status (None if it reports none,
    as when only rank 0 runs the experiment), its furthest step on the experiment's topic."""

    rank: str
    node: str
    status: str | None
    step: float | None
    alive: bool


@dataclass(frozen=True)
class PublisherRow:
    instance: str
    service: str
    pid: int | None
    host: str
    topic: str
    sdk: str
    alive: bool
    age: float  # seconds since its last export
    published: tuple[tuple[str, float], ...]  # kind -> total
    dropped: tuple[tuple[str, str, float], ...]  # (kind, reason) -> total
    rank: str = ""  # "rank 3 on gpu-07" for a launched process, else ""


@dataclass(frozen=True)
class LogLine:
    time_unix_nano: int
    severity_number: int
    severity: str
    body: str
    service: str
    pid: int | None
    attributes: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Snapshot:
    experiments: tuple[ExperimentRow, ...]
    metrics: tuple[MetricRow, ...]
    streams: tuple[StreamRow, ...]
    logs: tuple[LogLine, ...]  # oldest first
    publishers: tuple[PublisherRow, ...]
    errors: tuple[LogLine, ...]  # the latest ERROR and FATAL logs, oldest first
    totals: dict[str, int]  # requests, points, records, rejected, ...
    cut: dict[str, int]  # rows dropped to stay within Limits, by table
    rejections: tuple[str, ...]  # the latest reasons a request was refused


__all__ = [
    "ExperimentRow",
    "Labels",
    "Limits",
    "LogLine",
    "MetricRow",
    "PublisherRow",
    "RankRow",
    "Snapshot",
    "StreamRow",
]
