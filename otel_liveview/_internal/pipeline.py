"""The process-wide OpenTelemetry wiring: resource, providers, exporters, fork and exit handling.

Set up once per process, lazily at the first publish (or by `configure()`). Globally installed SDK
providers are reused rather than competed with; otherwise the library builds its own and leaves the
global ones alone. A forked child starts over: fresh `service.instance.id`, empty tables and queue.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from opentelemetry import _logs, metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_liveview import names
from otel_liveview._internal import config, encoding, events, launch, otlp
from otel_liveview._internal.config import Settings
from otel_liveview._internal.metric_export import MetricExport
from otel_liveview._internal.otlp import OtlpSender, Outage

if TYPE_CHECKING:  # pull mode needs the `pull` extra: imported only when it is on
    from otel_liveview._internal.pull import PullEndpoint
from otel_liveview._internal.queue import RecordQueue
from otel_liveview._internal.records import Item, MetricUpdate, QueuedItem
from otel_liveview._internal.sinks import (
    ConsoleLogSink,
    ConsoleMetricSink,
    LogSink,
    MetricSink,
    OtlpLogSink,
    OtlpMetricSink,
)
from otel_liveview._internal.tables import TABLES, Tables
from otel_liveview._internal.worker import ExportWorker, LogShipper

_log = logging.getLogger("otel_liveview")

try:
    VERSION = metadata.version("otel-liveview")
except metadata.PackageNotFoundError:  # running from a checkout
    VERSION = "0.0.0"

# Callers put events and logs on QUEUE, metric updates (for their events) on UPDATES; the export
# worker drains both and sleeps on one event. Process-wide, reset after fork.
QUEUE: RecordQueue[QueuedItem] = RecordQueue(capacity=32_768, wake_at=512)
UPDATES: RecordQueue[MetricUpdate] = RecordQueue(capacity=32_768, wake_at=16_384, wake=QUEUE.wake)


@dataclass
class Pipeline:
    settings: Settings
    resource: Resource
    meter_provider: Any  # ours (a MetricExport), or the application's global one
    owns_meter_provider: bool
    shipper: LogShipper | None  # ours: events and logs straight to OTLP
    logger_provider: LoggerProvider | None  # the application's global one when it installed one
    worker: ExportWorker | None  # None when OTEL_SDK_DISABLED
    senders: tuple[OtlpSender, ...] = ()  # the OTLP connections this pipeline opened
    metric_exporters: tuple[MetricExport, ...] = ()  # ours; flush() reports whether they delivered
    pull: PullEndpoint | None = (
        None  # the pull-mode endpoint (otel_liveview._internal.pull), when OTEL_LIVEVIEW_PROMETHEUS_PORT is set
    )

    @property
    def instance_id(self) -> str:
        return str(self.resource.attributes.get(SERVICE_INSTANCE_ID, ""))


_lock = threading.RLock()
_pipeline: Pipeline | None = None
_settings: Settings | None = None  # from configure(), kept for lazy start and forked children
_exit_hooks_pid: int | None = None
_stale: list[Pipeline] = []  # inherited over fork; stopped when the child starts its own
_OUTAGE = Outage()  # one warning per signal and collector outage for the process tree, whatever the pipeline


def _remove_outage_markers_at_exit() -> None:
    """At the very end of the exit (multiprocessing's last finalizers run after it joined its
    children, whatever imported what first), the tree's first process removes its outage markers."""
    try:
        from multiprocessing import util

        util.Finalize(None, _OUTAGE.forget, exitpriority=-100)
    except Exception:  # multiprocessing unavailable: at interpreter exit
        atexit.register(_OUTAGE.forget)


_remove_outage_markers_at_exit()


def active() -> Pipeline | None:
    return _pipeline


def configure(**settings: Any) -> Pipeline:
    """Set up (or set up again) this process's pipeline with explicit settings."""
    global _settings
    new_settings = config.load(**settings)
    with _lock:
        if _pipeline is not None:
            shutdown(timeout=new_settings.exit_timeout)
        _settings = new_settings
        return _start(new_settings, topic=None)


def ensure(topic: str | None = None) -> Pipeline:
    """The running pipeline, started from the environment on first use."""
    pipeline = _pipeline
    if pipeline is not None:
        return pipeline
    with _lock:
        if _pipeline is not None:
            return _pipeline
        return _start(_settings or config.load(), topic)


def _start(settings: Settings, topic: str | None) -> Pipeline:
    global _pipeline
    for stale in _stale:  # the parent's providers, carried over by fork: stop their threads
        threading.Thread(target=_quietly_shutdown, args=(stale,), daemon=True).start()
    _stale.clear()
    resource = make_resource(settings, topic)
    if settings.disabled:  # OTEL_SDK_DISABLED: broadcasters become no-ops, nothing is started
        _pipeline = Pipeline(settings, resource, None, False, None, None, None)
        return _pipeline
    TABLES.resize(settings.max_series, settings.max_stream_keys)
    QUEUE.capacity = UPDATES.capacity = settings.max_queue_size
    # Wake the export thread for a full batch, or before a small queue fills up; for metric
    # updates (sent once per interval) when their queue is half full.
    QUEUE.wake_at = min(settings.max_export_batch_size, max(1, settings.max_queue_size // 2))
    UPDATES.wake_at = max(1, settings.max_queue_size // 2)
    senders: list[OtlpSender] = []

    meter_provider: Any = metrics.get_meter_provider()
    owns_meter_provider = not isinstance(meter_provider, MeterProvider)
    # The launch's run, rank and node on every metric point (docs/naming.md says why).
    identity = launch.point_attributes(resource.attributes)
    _publish_launch(resource.attributes)
    own_export: tuple[MetricExport, ...] = ()
    if owns_meter_provider:  # the tables go straight to OTLP, without an SDK MeterProvider
        sinks = metric_sinks(settings, resource, senders, identity)
        export = MetricExport(TABLES, sinks, interval=settings.metric_export_interval)
        export.start()
        meter_provider, own_export = export, (export,)
    else:  # the application's provider, its readers and exporters, read the tables
        register_instruments(meter_provider.get_meter("otel_liveview", VERSION), identity=identity)

    installed = _logs.get_logger_provider()
    logger_provider: LoggerProvider | None = None
    shipper = None
    if isinstance(installed, LoggerProvider):  # the application's, with its own exporters
        logger_provider = installed
        logger = installed.get_logger("otel_liveview", VERSION)

        def emit(items: Sequence[Item]) -> None:
            events.emit_all(items, TABLES, lambda kind, calls, record: logger.emit(**record))

        after_batch = None
    else:  # records go straight into OTLP requests: no SDK logger needed
        shipper = LogShipper(
            log_sinks(settings, senders),
            encoding.resource(resource.attributes),
            encoding.scope("otel_liveview", VERSION),
            settings.max_attributes,
            TABLES,
            batch_size=settings.max_export_batch_size,
        )
        emit, after_batch = shipper.emit, shipper.ship

    worker = ExportWorker(
        QUEUE,
        UPDATES,
        emit,
        after_batch,
        TABLES,
        batch_size=settings.max_export_batch_size,
        delay=settings.schedule_delay,
        updates_interval=settings.metric_export_interval,
    )
    worker.start()
    _pipeline = Pipeline(
        settings,
        resource,
        meter_provider,
        owns_meter_provider,
        shipper,
        logger_provider,
        worker,
        tuple(senders),
        own_export,
    )
    if settings.prometheus_port is not None:  # pull mode; imported only then (the `pull` extra)
        try:
            from otel_liveview._internal import pull
        except ModuleNotFoundError as missing:  # a warning, never an exception into the experiment
            _log.warning(
                "otel-liveview: pull mode (OTEL_LIVEVIEW_PROMETHEUS_PORT) needs %s: "
                "pip install 'otel-liveview[pull]'; no /metrics endpoint is served",
                missing.name,
            )
        else:
            _pipeline.pull = pull.start(settings, resource, _pipeline.instance_id, identity)
    _install_exit_hooks()
    return _pipeline


def make_resource(settings: Settings, topic: str | None) -> Resource:
    """The resource of docs/naming.md; OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME are merged by the SDK."""
    attributes: dict[str, Any] = {
        SERVICE_INSTANCE_ID: str(uuid.uuid4()),
        "process.pid": os.getpid(),
        "host.name": socket.gethostname(),
    }
    attributes.update(settings.resource_attributes)
    topic = settings.topic or topic
    if topic:
        attributes[names.TOPIC] = topic
    # What the launcher says (rank, run, node) gives way to OTEL_RESOURCE_ATTRIBUTES and configure().
    resource = Resource(launch.detect().attributes()).merge(Resource.create(attributes))
    if settings.service_name:
        resource = resource.merge(Resource({SERVICE_NAME: settings.service_name}))
    elif not _service_name_from_env():
        resource = resource.merge(Resource({SERVICE_NAME: "otel-liveview"}))
    return resource


def _service_name_from_env() -> bool:
    if os.environ.get("OTEL_SERVICE_NAME"):
        return True
    pairs = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",")
    return any(pair.split("=", 1)[0].strip() == SERVICE_NAME for pair in pairs)


def metric_sinks(
    settings: Settings, resource: Resource, senders: list[OtlpSender], identity: Mapping[str, str]
) -> list[MetricSink]:
    """The sinks OTEL_METRICS_EXPORTER names, for the tables (an empty list for `none`); `identity`
    goes on every point."""
    sinks: list[MetricSink] = []
    for name in settings.metrics_exporter:
        if name == "otlp":
            sender = OtlpSender(otlp.resolve(settings, "metrics"), _OUTAGE)
            senders.append(sender)
            scope = encoding.scope("otel_liveview", VERSION)
            encoder = encoding.MetricsEncoder(
                encoding.resource(resource.attributes), scope, resource.schema_url, identity=identity
            )
            sinks.append(OtlpMetricSink(sender, encoder))
        else:
            console_scope = InstrumentationScope("otel_liveview", VERSION)
            sinks.append(ConsoleMetricSink(resource, console_scope, identity=identity))
    return sinks


def log_sinks(settings: Settings, senders: list[OtlpSender]) -> list[LogSink]:
    """The sinks OTEL_LOGS_EXPORTER names, for events and logs (an empty list for `none`)."""
    sinks: list[LogSink] = []
    for name in settings.logs_exporter:
        if name == "otlp":
            sender = OtlpSender(otlp.resolve(settings, "logs"), _OUTAGE)
            senders.append(sender)
            sinks.append(OtlpLogSink(sender))
        else:
            sinks.append(ConsoleLogSink())
    return sinks


def register_instruments(meter: Any, tables: Tables = TABLES, *, identity: Mapping[str, str] = {}) -> None:
    """The tables as observable instruments of an application's MeterProvider, `identity` (the
    launch's run, rank and node) on every point."""
    for name, table in tables.gauges().items():
        meter.create_observable_gauge(
            name, callbacks=[_report(table.items, identity)], description=tables.description(name)
        )
    for name, (description, counts) in tables.counters().items():
        meter.create_observable_counter(
            name, callbacks=[_report(counts.items, identity)], description=description
        )


def _report(
    read: Callable[[], Iterable[tuple[Any, float]]], identity: Mapping[str, str]
) -> Callable[[CallbackOptions], list[Observation]]:
    owner = os.getpid()

    def callback(options: CallbackOptions) -> list[Observation]:
        if os.getpid() != owner:  # a provider inherited over fork must not report the child's values
            return []
        if identity:
            return [Observation(value, {**dict(key), **identity}) for key, value in read()]
        return [Observation(value, dict(key)) for key, value in read()]

    return callback


def _publish_launch(resource: Mapping[str, Any]) -> None:
    """The launch's numbers as gauges, for the queries that need values: ranks alive of the world
    size, restarts, a rank's furthest step."""
    TABLES.launch_step.enabled = names.RUN_ID in resource or names.RANK in resource
    for table, name in (
        (TABLES.world_size, names.WORLD_SIZE),
        (TABLES.restart_count, names.RESTART_COUNT),
    ):
        if isinstance(resource.get(name), int):
            table.set((), float(resource[name]))


def flush(timeout: float = 10.0) -> bool:
    """Export everything published so far; False if `timeout` seconds were not enough.

    Bounded: a dead or slow collector costs the caller at most `timeout` seconds, never an error.
    """
    pipeline = _pipeline
    if pipeline is None or pipeline.worker is None:
        return True
    deadline = time.monotonic() + timeout
    with contextlib.ExitStack() as hurry:
        for sender in pipeline.senders:
            hurry.enter_context(sender.hurried())
        drained = pipeline.worker.flush(deadline)
        return _within(deadline, _flush_providers, pipeline) and drained


def _flush_providers(pipeline: Pipeline, deadline: float) -> None:
    millis = max(0.0, deadline - time.monotonic()) * 1000
    if pipeline.logger_provider is not None:
        pipeline.logger_provider.force_flush(int(millis))
    if not pipeline.meter_provider.force_flush(millis):
        raise RuntimeError("metric flush failed")
    if not all(exporter.last_ok for exporter in pipeline.metric_exporters):
        raise RuntimeError("the metric export was not delivered")


# OTEL_LIVEVIEW_EXIT_TIMEOUT is one allowance for the way out, from the end of the experiment to the
# interpreter's exit: the flush at the end of an experiment spends from it, the exit hook gets what
# is left. (pid, seconds spent): a child process starts with the whole allowance.
_exit_spent: tuple[int, float] = (0, 0.0)


def flush_at_end(timeout: float | None = None) -> bool:
    """The flush when an experiment ends: within `timeout` seconds (None: no limit of its own) and
    within what is left of the exit allowance, which it spends, so that the exit waits only for the rest."""
    pipeline = _pipeline
    if pipeline is None:
        return True
    left = exit_time_left(pipeline.settings)
    started = time.monotonic()
    try:
        return flush(left if timeout is None else min(timeout, left))
    finally:
        _spend_exit_time(time.monotonic() - started)


def renew_exit_time() -> None:
    """An experiment starts: its end will be the end of the experiment the allowance counts from."""
    global _exit_spent
    _exit_spent = (os.getpid(), 0.0)


def exit_time_left(settings: Settings) -> float:
    pid, spent = _exit_spent
    return max(0.0, settings.exit_timeout - spent) if pid == os.getpid() else settings.exit_timeout


def _spend_exit_time(seconds: float) -> None:
    global _exit_spent
    with _lock:  # experiments ending at once in several threads
        pid, spent = _exit_spent
        _exit_spent = (os.getpid(), (spent if pid == os.getpid() else 0.0) + seconds)


def shutdown(timeout: float | None = None) -> bool:
    """Export what is left (within `timeout` seconds) and stop this process's pipeline.

    One attempt per request: what a dead collector cannot take is counted, not waited for.
    """
    global _pipeline
    with _lock:
        pipeline, _pipeline = _pipeline, None
    if pipeline is None or pipeline.worker is None:
        return True
    if pipeline.pull is not None:
        pipeline.pull.close()
    timeout = pipeline.settings.exit_timeout if timeout is None else timeout
    deadline = time.monotonic() + timeout
    for sender in pipeline.senders:
        sender.abort()
    drained = pipeline.worker.stop(timeout)
    finished = _within(deadline, _close_providers, pipeline)
    return drained and finished


def _close_providers(pipeline: Pipeline, deadline: float) -> None:
    if pipeline.shipper is not None:
        pipeline.shipper.shutdown()
    if pipeline.owns_meter_provider:
        pipeline.meter_provider.shutdown(max(0.0, deadline - time.monotonic()) * 1000)
    else:
        _flush_providers(pipeline, deadline)


def _within(deadline: float, work: Callable[[Pipeline, float], None], pipeline: Pipeline) -> bool:
    """Run `work(pipeline, deadline)` on a daemon thread and wait for it until `deadline` (a dead
    collector can't hold us). True if it finished in time without an error."""
    outcome: list[bool] = []
    thread = threading.Thread(target=lambda: outcome.append(_quietly(work, pipeline, deadline)), daemon=True)
    try:
        thread.start()
    except RuntimeError:  # no new thread at exit (CPython 3.12.0, 3.12.1): the work keeps its own deadline
        return _quietly(work, pipeline, deadline)
    thread.join(max(0.0, deadline - time.monotonic()))
    return bool(outcome and outcome[0])


def _quietly(work: Callable[[Pipeline, float], None], pipeline: Pipeline, deadline: float) -> bool:
    try:
        work(pipeline, deadline)
        return True
    except Exception:
        _log.debug("flushing or shutting down the pipeline failed", exc_info=True)
        return False


def _quietly_shutdown(pipeline: Pipeline) -> None:
    if pipeline.owns_meter_provider:
        _quietly(lambda p, _: p.meter_provider.shutdown(timeout_millis=1000), pipeline, 0.0)


def _install_exit_hooks() -> None:
    """Export at interpreter exit, and at the end of multiprocessing children (which skip atexit)."""
    global _exit_hooks_pid
    if _exit_hooks_pid == os.getpid():
        return
    _exit_hooks_pid = os.getpid()
    atexit.register(_at_exit)
    try:
        from multiprocessing import util

        util.Finalize(None, _at_exit, exitpriority=-100)
    except Exception:  # multiprocessing unavailable: atexit alone
        pass


def _at_exit() -> None:
    pipeline = _pipeline
    if pipeline is not None:
        shutdown(timeout=exit_time_left(pipeline.settings))


_paused: ExportWorker | None = None
FORK_WAIT = 2.0  # seconds a fork() waits for the export in flight


def _before_fork() -> None:
    global _paused
    pipeline = _pipeline
    if pipeline is not None and pipeline.worker is not None and pipeline.worker.pause(FORK_WAIT):
        _paused = pipeline.worker


def _after_fork_in_parent() -> None:
    global _paused
    if _paused is not None:
        _paused.resume()
        _paused = None


def _after_fork_in_child() -> None:
    global _pipeline, _exit_hooks_pid, _lock, _paused
    _paused = None
    _lock = threading.RLock()  # the parent may have held it while forking
    if _pipeline is not None:
        if _pipeline.pull is not None:
            _pipeline.pull.release_after_fork()
        _stale.append(_pipeline)
    _pipeline = None
    _exit_hooks_pid = None
    TABLES.clear()
    QUEUE.reset()
    UPDATES.reset(wake=QUEUE.wake)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )
