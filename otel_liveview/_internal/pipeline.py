"""One process's OpenTelemetry wiring: resource, sinks and export threads, built from `Settings`.

Globally installed SDK providers are reused rather than competed with; otherwise the pipeline builds
its own and leaves the global ones alone. `runtime` decides when a pipeline is built and stopped
(lazily, at exit, after a fork); this module says what one is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

from opentelemetry import _logs, metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_liveview import names
from otel_liveview._internal import encoding, events, launch, otlp
from otel_liveview._internal.bounded import quietly, within
from otel_liveview._internal.config import Settings
from otel_liveview._internal.metric_export import MetricExport
from otel_liveview._internal.otlp import OtlpSender, Outage
from otel_liveview._internal.queue import RecordQueue
from otel_liveview._internal.records import Item, MetricUpdate, QueuedItem
from otel_liveview._internal.sinks import (
    ConsoleLogSink,
    ConsoleMetricSink,
    LogSink,
    MetricSink,
    OtlpLogSink,
    OtlpMetricSink,
    SpoolLogSink,
    SpoolMetricSink,
)
from otel_liveview._internal.spool import Spool, default_directory
from otel_liveview._internal.spooling import WRITE_DELAY, Spooler
from otel_liveview._internal.tables import Tables
from otel_liveview._internal.worker import ExportWorker, LogShipper

if TYPE_CHECKING:  # pull mode needs the `pull` extra: imported only when it is on
    from otel_liveview._internal.pull import PullEndpoint

_log = logging.getLogger("otel_liveview")

try:
    VERSION = metadata.version("otel-liveview")
except metadata.PackageNotFoundError:  # running from a checkout
    VERSION = "0.0.0"


class Pipeline:
    """What one process exports with: its resource, the metric export (ours, or the application's
    MeterProvider reading the tables), the export thread for events and logs, the OTLP connections."""

    def __init__(
        self,
        *,
        settings: Settings,
        resource: Resource,
        meter_provider: Any = None,
        owns_meter_provider: bool = False,
        shipper: LogShipper | None = None,
        logger_provider: LoggerProvider | None = None,
        worker: ExportWorker | None = None,
        senders: Sequence[OtlpSender] = (),
        metric_exports: Sequence[MetricExport] = (),
        spooler: Spooler | None = None,
    ) -> None:
        self.settings = settings
        self.resource = resource
        self.meter_provider = meter_provider  # ours (a MetricExport), or the application's global one
        self.owns_meter_provider = owns_meter_provider
        self.shipper = shipper  # ours: events and logs straight to OTLP
        self.logger_provider = logger_provider  # the application's global one, when it installed one
        self.worker = worker  # None when OTEL_SDK_DISABLED
        self.senders = tuple(senders)  # the OTLP connections this pipeline opened
        self.metric_exports = tuple(metric_exports)  # ours; flush() reports whether they delivered
        self.spooler = spooler  # OTEL_LIVEVIEW_SPOOL_DIR / OTEL_LIVEVIEW_OFFLINE
        self.pull: PullEndpoint | None = (
            None  # the /metrics endpoint, when OTEL_LIVEVIEW_PROMETHEUS_PORT is set
        )

    @property
    def instance_id(self) -> str:
        return str(self.resource.attributes.get(SERVICE_INSTANCE_ID, ""))

    @classmethod
    def build(
        cls,
        settings: Settings,
        topic: str | None,
        *,
        tables: Tables,
        queue: RecordQueue[QueuedItem],
        updates: RecordQueue[MetricUpdate],
        outage: Outage,
    ) -> Pipeline:
        """Build and start the pipeline `settings` describe, fed by `tables` and the two queues;
        `outage` reports collector outages once for the whole process tree."""
        resource = make_resource(settings, topic)
        if settings.disabled:  # OTEL_SDK_DISABLED: broadcasters become no-ops, nothing is started
            return cls(settings=settings, resource=resource)
        tables.resize(settings.max_series, settings.max_stream_keys)
        queue.capacity = updates.capacity = settings.max_queue_size
        # Wake the export thread for a full batch, or before a small queue fills up; for metric
        # updates (sent once per interval) when their queue is half full.
        queue.wake_at = min(settings.max_export_batch_size, max(1, settings.max_queue_size // 2))
        updates.wake_at = max(1, settings.max_queue_size // 2)
        senders: list[OtlpSender] = []
        # The launch's run, rank and node on every metric point (docs/naming.md says why).
        identity = launch.point_attributes(resource.attributes)
        _publish_launch(resource.attributes, tables)

        spooler = _spooler(settings, tables, senders, outage)
        meter_provider: Any = metrics.get_meter_provider()
        owns_meter_provider = not isinstance(meter_provider, MeterProvider)
        metric_exports: tuple[MetricExport, ...] = ()
        if owns_meter_provider:  # the tables go straight to OTLP, without an SDK MeterProvider
            sinks = metric_sinks(settings, resource, senders, identity, outage, spooler)
            export = MetricExport(tables, sinks, interval=settings.metric_export_interval)
            export.start()
            meter_provider, metric_exports = export, (export,)
        else:  # the application's provider, its readers and exporters, read the tables
            register_instruments(
                meter_provider.get_meter("otel_liveview", VERSION), tables, identity=identity
            )

        installed = _logs.get_logger_provider()
        logger_provider: LoggerProvider | None = None
        shipper = None
        after_batch: Callable[[float | None], bool] | None
        if isinstance(installed, LoggerProvider):  # the application's, with its own exporters
            logger_provider = installed
            logger = installed.get_logger("otel_liveview", VERSION)

            def emit(items: Sequence[Item]) -> None:
                events.emit_all(items, tables, lambda kind, calls, record: logger.emit(**record))

            after_batch = None
        else:  # records go straight into OTLP requests: no SDK logger needed
            shipper = LogShipper(
                sinks=log_sinks(settings, senders, outage, spooler),
                resource=encoding.resource(resource.attributes),
                scope=encoding.scope("otel_liveview", VERSION),
                attribute_limit=settings.max_attributes,
                tables=tables,
                batch_size=settings.max_export_batch_size,
            )
            emit, after_batch = shipper.emit, shipper.ship

        # With a spool, what is queued is written every WRITE_DELAY (what a SIGKILL can lose); the
        # spool's thread keeps the schedule delay for the requests.
        delay = settings.schedule_delay if spooler is None else min(settings.schedule_delay, WRITE_DELAY)
        worker = ExportWorker(
            queue=queue,
            updates=updates,
            emit=emit,
            after_batch=after_batch,
            tables=tables,
            batch_size=settings.max_export_batch_size,
            delay=delay,
            updates_interval=settings.metric_export_interval,
        )
        worker.start()
        if spooler is not None:
            spooler.start()
        pipeline = cls(
            settings=settings,
            resource=resource,
            meter_provider=meter_provider,
            owns_meter_provider=owns_meter_provider,
            shipper=shipper,
            logger_provider=logger_provider,
            worker=worker,
            senders=senders,
            metric_exports=metric_exports,
            spooler=spooler,
        )
        if settings.prometheus_port is not None:
            pipeline.pull = _start_pull(settings, resource, pipeline.instance_id, identity)
        return pipeline

    def flush(self, timeout: float) -> bool:
        """Export everything published so far; False if `timeout` seconds were not enough.

        Bounded: a dead or slow collector costs the caller at most `timeout` seconds, never an error.
        """
        if self.worker is None:
            return True
        deadline = time.monotonic() + timeout
        with contextlib.ExitStack() as hurry:
            for sender in self.senders:
                hurry.enter_context(sender.hurried())
            drained = self.worker.flush(deadline)
            flushed = within(deadline, self._flush_providers) and drained
            if self.spooler is None:
                return flushed
            self.spooler.flush(deadline)  # what is not sent by then stays in the spool
            return self.spooler.took_all() and flushed

    def shutdown(self, timeout: float) -> bool:
        """Export what is left (within `timeout` seconds) and stop.

        One attempt per request: what a dead collector cannot take is counted, not waited for.
        """
        if self.worker is None:
            return True
        if self.pull is not None:
            self.pull.close()
        deadline = time.monotonic() + timeout
        for sender in self.senders:
            sender.abort()
        drained = self.worker.stop(timeout)
        closed = within(deadline, self._close_providers) and drained
        if self.spooler is not None:  # sealed: the next process, or replay, sends what is left
            closed = self.spooler.close(deadline) and closed
        return closed

    def pause(self, timeout: float) -> bool:
        """Wait (up to `timeout`) for the exports in flight and hold further ones until `resume()`:
        taken around fork(), since an export cut in two by a fork is retried by the parent although
        the receiver got it, and that duplicates data."""
        if self.worker is None or not self.worker.pause(timeout):
            return False
        if self.spooler is not None and not self.spooler.pause(timeout):
            self.worker.resume()
            return False
        return True

    def resume(self) -> None:
        if self.spooler is not None:
            self.spooler.resume()
        if self.worker is not None:
            self.worker.resume()

    def release_after_fork(self) -> None:
        """In a forked child: let go of the parent's spool segments (without unlocking them)."""
        if self.spooler is not None:
            self.spooler.spool.after_fork()

    def stop_inherited(self) -> None:
        """Stop what a forked child inherited of its parent's pipeline (its metric export thread)."""
        if self.owns_meter_provider:
            quietly(lambda deadline: self.meter_provider.shutdown(timeout_millis=1000), 0.0)

    def _flush_providers(self, deadline: float) -> None:
        millis = max(0.0, deadline - time.monotonic()) * 1000
        if self.logger_provider is not None:
            self.logger_provider.force_flush(int(millis))
        if not self.meter_provider.force_flush(millis):
            raise RuntimeError("metric flush failed")
        if not all(export.last_ok for export in self.metric_exports):
            raise RuntimeError("the metric export was not delivered")

    def _close_providers(self, deadline: float) -> None:
        if self.shipper is not None:
            self.shipper.shutdown()
        if self.owns_meter_provider:
            self.meter_provider.shutdown(max(0.0, deadline - time.monotonic()) * 1000)
        else:
            self._flush_providers(deadline)


def _start_pull(
    settings: Settings, resource: Resource, instance: str, identity: Mapping[str, str]
) -> PullEndpoint | None:
    """Pull mode, imported only when it is on (the `pull` extra); a warning without the extra."""
    try:
        from otel_liveview._internal import pull
    except ModuleNotFoundError as missing:  # a warning, never an exception into the experiment
        _log.warning(
            "otel-liveview: pull mode (OTEL_LIVEVIEW_PROMETHEUS_PORT) needs %s: "
            "pip install 'otel-liveview[pull]'; no /metrics endpoint is served",
            missing.name,
        )
        return None
    return pull.start(settings, resource, instance, dict(identity))


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


def _spooler(settings: Settings, tables: Tables, senders: list[OtlpSender], outage: Outage) -> Spooler | None:
    """The spool, when OTEL_LIVEVIEW_SPOOL_DIR is set or the run is offline (default folder then), with
    connections of its own for the OTLP signals it sends again."""
    if settings.spool_dir is None and not settings.offline:
        outage.spooling = None
        return None
    directory = settings.spool_dir or default_directory()
    outage.spooling = directory
    if settings.offline:
        _log.info(
            "otel-liveview: offline: spooling to %s (send it with: otel-liveview replay %s)",
            directory,
            directory,
        )
    spool = Spool(directory, max_bytes=settings.spool_max_bytes, count=tables.count_dropped)
    by_signal: dict[str, OtlpSender] = {}
    if not settings.offline:
        for signal, exporters in (("metrics", settings.metrics_exporter), ("logs", settings.logs_exporter)):
            if "otlp" in exporters:
                by_signal[signal] = OtlpSender(otlp.resolve(settings, signal), outage)
                senders.append(by_signal[signal])
    return Spooler(
        spool,
        by_signal,
        offline=settings.offline,
        batch_size=settings.max_export_batch_size,
        delay=settings.schedule_delay,
    )


def metric_sinks(
    settings: Settings,
    resource: Resource,
    senders: list[OtlpSender],
    identity: Mapping[str, str],
    outage: Outage,
    spooler: Spooler | None = None,
) -> list[MetricSink]:
    """The sinks OTEL_METRICS_EXPORTER names, for the tables (an empty list for `none`); `identity`
    goes on every point."""
    sinks: list[MetricSink] = []
    for name in settings.metrics_exporter:
        if name == "otlp":
            scope = encoding.scope("otel_liveview", VERSION)
            encoder = encoding.MetricsEncoder(
                encoding.resource(resource.attributes), scope, resource.schema_url, identity=identity
            )
            if spooler is not None:
                sinks.append(SpoolMetricSink(spooler, encoder))
                continue
            sender = OtlpSender(otlp.resolve(settings, "metrics"), outage)
            senders.append(sender)
            sinks.append(OtlpMetricSink(sender, encoder))
        else:
            console_scope = InstrumentationScope("otel_liveview", VERSION)
            sinks.append(ConsoleMetricSink(resource, console_scope, identity=identity))
    return sinks


def log_sinks(
    settings: Settings, senders: list[OtlpSender], outage: Outage, spooler: Spooler | None = None
) -> list[LogSink]:
    """The sinks OTEL_LOGS_EXPORTER names, for events and logs (an empty list for `none`)."""
    sinks: list[LogSink] = []
    for name in settings.logs_exporter:
        if name == "otlp" and spooler is not None:
            sinks.append(SpoolLogSink(spooler))
        elif name == "otlp":
            sender = OtlpSender(otlp.resolve(settings, "logs"), outage)
            senders.append(sender)
            sinks.append(OtlpLogSink(sender))
        else:
            sinks.append(ConsoleLogSink())
    return sinks


def register_instruments(meter: Any, tables: Tables, *, identity: Mapping[str, str] | None = None) -> None:
    """The tables as observable instruments of an application's MeterProvider, `identity` (the
    launch's run, rank and node) on every point."""
    identity = identity or {}
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


def _publish_launch(resource: Mapping[str, Any], tables: Tables) -> None:
    """The launch's numbers as gauges, for the queries that need values: ranks alive of the world
    size, restarts, a rank's furthest step."""
    tables.launch_step.enabled = names.RUN_ID in resource or names.RANK in resource
    for table, name in (
        (tables.world_size, names.WORLD_SIZE),
        (tables.restart_count, names.RESTART_COUNT),
    ):
        if isinstance(resource.get(name), int):
            table.set((), float(resource[name]))
