"""The names otel-liveview writes: instruments, events and resource attributes, and the names
Prometheus gives them. The library, the terminal view, the alert rules and the tests of the
dashboard read them here; docs/naming.md says why each name is what it is.
"""

from __future__ import annotations

# -- instruments (OpenTelemetry names) ------------------------------------------------------------
METRIC = "liveview.metric"
METRIC_STEP = "liveview.metric.step"
METRIC_EPOCH = "liveview.metric.epoch"
METRIC_NONFINITE = "liveview.metric.nonfinite"
DATA = "liveview.data"
EXPERIMENT_STATUS = "liveview.experiment.status"
EXPERIMENT_INFO = "liveview.experiment.info"
EXPERIMENT_START_TIME = "liveview.experiment.start_time_seconds"
EXPERIMENT_END_TIME = "liveview.experiment.end_time_seconds"
EXPERIMENT_PLANNED = "liveview.experiment.planned"
LAUNCH_WORLD_SIZE = "liveview.launch.world_size"
LAUNCH_RESTARTS = "liveview.launch.restarts"
LAUNCH_STEP = "liveview.launch.step"
PUBLISHED = "liveview.published"  # counters
DROPPED = "liveview.dropped"

# Their names up to release 0.1.0, still read by the terminal view.
EXPERIMENT_PLANNED_UP_TO_0_1 = "liveview.experiment.total"
LAUNCH_RESTARTS_UP_TO_0_1 = "liveview.launch.restart_count"

GAUGES = (
    METRIC,
    METRIC_STEP,
    METRIC_EPOCH,
    METRIC_NONFINITE,
    DATA,
    EXPERIMENT_STATUS,
    EXPERIMENT_INFO,
    EXPERIMENT_START_TIME,
    EXPERIMENT_END_TIME,
    EXPERIMENT_PLANNED,
    LAUNCH_WORLD_SIZE,
    LAUNCH_RESTARTS,
    LAUNCH_STEP,
)
COUNTERS = (PUBLISHED, DROPPED)

# -- events (the event_name of log records) -------------------------------------------------------
METRIC_EVENT = "liveview.metric"
DATA_EVENT = "liveview.data"
STATUS_EVENT = "liveview.status"
INFO_EVENT = "liveview.info"

# -- resource attributes --------------------------------------------------------------------------
TOPIC = "liveview.topic"
LAUNCHER = "liveview.launcher"
RUN_ID = "liveview.run.id"
RANK = "liveview.rank"
LOCAL_RANK = "liveview.local_rank"
WORLD_SIZE = "liveview.world_size"
NODE_RANK = "liveview.node.rank"
NODE = "liveview.node.name"
RESTART_COUNT = "liveview.restart_count"
ARRAY_JOB_ID = "liveview.array.job_id"
ARRAY_TASK_ID = "liveview.array.task_id"
RAY_JOB_ID = "liveview.ray.job_id"
RAY_NODE_ID = "liveview.ray.node_id"
RAY_ACTOR_ID = "liveview.ray.actor_id"

# On every metric point too, so that PromQL selects by them without a target_info join (resource
# attributes reach Prometheus only there); Loki has them all as structured metadata already.
POINT_ATTRIBUTES = (RUN_ID, RANK, NODE)
RESOURCE_ATTRIBUTES = (
    TOPIC,
    LAUNCHER,
    RUN_ID,
    RANK,
    LOCAL_RANK,
    WORLD_SIZE,
    NODE_RANK,
    NODE,
    RESTART_COUNT,
    ARRAY_JOB_ID,
    ARRAY_TASK_ID,
    RAY_JOB_ID,
    RAY_NODE_ID,
    RAY_ACTOR_ID,
)


def prometheus(name: str) -> str:
    """The Prometheus name OTLP's translation gives an instrument or attribute (dots become
    underscores; a counter gets `_total`), as Prometheus 3 and the Collector write it."""
    return name.replace(".", "_") + ("_total" if name in COUNTERS else "")


__all__ = [
    "ARRAY_JOB_ID",
    "ARRAY_TASK_ID",
    "COUNTERS",
    "DATA",
    "DATA_EVENT",
    "DROPPED",
    "EXPERIMENT_END_TIME",
    "EXPERIMENT_INFO",
    "EXPERIMENT_PLANNED",
    "EXPERIMENT_PLANNED_UP_TO_0_1",
    "EXPERIMENT_START_TIME",
    "EXPERIMENT_STATUS",
    "GAUGES",
    "INFO_EVENT",
    "LAUNCHER",
    "LAUNCH_RESTARTS",
    "LAUNCH_RESTARTS_UP_TO_0_1",
    "LAUNCH_STEP",
    "LAUNCH_WORLD_SIZE",
    "LOCAL_RANK",
    "METRIC",
    "METRIC_EPOCH",
    "METRIC_EVENT",
    "METRIC_NONFINITE",
    "METRIC_STEP",
    "NODE",
    "NODE_RANK",
    "POINT_ATTRIBUTES",
    "PUBLISHED",
    "RANK",
    "RAY_ACTOR_ID",
    "RAY_JOB_ID",
    "RAY_NODE_ID",
    "RESOURCE_ATTRIBUTES",
    "RESTART_COUNT",
    "RUN_ID",
    "STATUS_EVENT",
    "TOPIC",
    "WORLD_SIZE",
    "prometheus",
]
