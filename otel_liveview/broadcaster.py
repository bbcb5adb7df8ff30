"""The publishing API experiment code calls (a drop-in for the LiveView broadcaster).

Publishing never waits for the network. A metric is a write into a last-value table that the SDK
reads at export time; events and logs are small tuples on a bounded queue that the export thread
turns into OpenTelemetry log records. Bad input raises a clear error; a full queue or table drops
the item and counts it in `liveview.dropped`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Mapping
from typing import Any, SupportsFloat

from otel_liveview._internal import mapping
from otel_liveview._internal.runtime import QUEUE, RUNTIME, UPDATES, Runtime
from otel_liveview._internal.tables import TABLES, Key

_MAX_CACHED_KEYS = 10_000
_NONFINITE = ("nan", "inf", "-inf")
_STATUSES = ("initializing", "running", "completed", "failed", "aborted")
_FINISHED = ("completed", "failed", "aborted")
_HOST = socket.gethostname()

_now = time.time_ns
_seconds = time.time  # metric points: a float packs straight into the event's time column
_queue = QUEUE
_put_update = UPDATES.put  # the queues live as long as the process (runtime.py)
_metric_table = TABLES.metric
_step_table = TABLES.step
_epoch_table = TABLES.epoch
_published_metrics = TABLES.published_counter("metric")
_published_data = TABLES.published_counter("data")
_published_logs = TABLES.published_counter("log")
_published_status = TABLES.published_counter("status")


class ExperimentBroadcaster:
    """Publishes metrics, data streams and logs under one topic, from any thread, task or process."""

    def __init__(self, base_topic: str = "experiment:updates:root") -> None:
        if not isinstance(base_topic, str) or not base_topic:
            raise ValueError("base_topic must be a non-empty string")
        self.base_topic = mapping.label_value(base_topic)
        # (name, *kwargs) -> (sorted label pairs, whether some keyword arguments are not labels)
        self._keys: dict[Any, tuple[Key, bool]] = {}
        self._runtime: Runtime = RUNTIME
        if self._runtime.ensure(self.base_topic).settings.disabled:
            # OTEL_SDK_DISABLED: every publish call returns at once, arguments unchecked.
            for method in _PUBLISHERS:
                setattr(self, method, _ignore)

    def __getstate__(self) -> dict[str, Any]:
        # Sent to a spawned or forkserver child, it publishes through that process's runtime, which
        # starts at the first publish there (after multiprocessing has set the child up).
        return {name: value for name, value in vars(self).items() if name != "_runtime"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._runtime = RUNTIME

    # -- metrics ---------------------------------------------------------------------------------

    def publish_metric_sync(
        self,
        name: str,
        value: SupportsFloat,
        step: SupportsFloat | None = None,
        epoch: SupportsFloat | None = None,
        **attributes: object,
    ) -> None:
        """Record `value` as the current value of metric `name`.

        `step` and `epoch` go to their own gauges; str/bool keyword arguments become labels; the
        update (time, value, step, epoch and the other keyword arguments) also goes into the series'
        next `liveview.metric` event. Raises TypeError for a value (or step, epoch) that is not a
        number, ValueError for one beyond float range.
        """
        pipeline = self._runtime.current or self._runtime.ensure(
            self.base_topic
        )  # read once: shutdown may clear it
        number = value if type(value) is float else mapping.metric_value(name, value)
        if step is not None:
            step = mapping.metric_value(name, step, "step")
        if epoch is not None:
            epoch = mapping.metric_value(name, epoch, "epoch")
        cache_key = (name, *attributes.items()) if attributes else name
        try:
            key, mixed = self._keys[cache_key]
        except (KeyError, TypeError):
            key, mixed = self._intern(name, attributes, cache_key)
        if number - number == 0.0:  # finite: inf - inf and nan - nan are nan
            if not _metric_table.set(key, number):
                TABLES.count_dropped("metric", "cardinality")
                return
            if key in TABLES.nonfinite_seen:
                self._mark_nonfinite(key, None)
        else:
            self._mark_nonfinite(key, mapping.nonfinite_label(number))
        if step is not None:
            _step_table.set(key, step)
        if epoch is not None:
            _epoch_table.set(key, epoch)
        _published_metrics.add()
        if pipeline.settings.metric_events:
            extra = {k: v for k, v in attributes.items() if not mapping.is_label(v)} if mixed else None
            if not _put_update(("metric", _seconds(), key, number, step, epoch, extra)):
                TABLES.count_dropped("metric", "queue_full")

    async def publish_metric(
        self,
        name: str,
        value: SupportsFloat,
        step: SupportsFloat | None = None,
        epoch: SupportsFloat | None = None,
        **attributes: object,
    ) -> None:
        self.publish_metric_sync(name, value, step, epoch, **attributes)

    def _intern(self, name: Any, attributes: dict[str, Any], cache_key: Any) -> tuple[Key, bool]:
        labels = {
            mapping.attribute_key(k): mapping.label_value(v)
            for k, v in attributes.items()
            if mapping.is_label(v)
        }
        labels["metric"] = mapping.metric_name(name)
        labels["topic"] = self.base_topic
        mixed = not all(mapping.is_label(v) for v in attributes.values())
        interned = tuple(sorted(labels.items())), mixed
        if len(self._keys) < _MAX_CACHED_KEYS:
            with contextlib.suppress(TypeError):  # unhashable keyword values: publishable, not cacheable
                self._keys[cache_key] = interned
        return interned

    def _mark_nonfinite(self, key: Key, current: str | None) -> None:
        """liveview.metric.nonfinite{value=...} is 1 for the current non-finite kind, 0 otherwise."""
        TABLES.nonfinite_seen.add(key)
        for kind in _NONFINITE:
            TABLES.nonfinite.set(tuple(sorted((*key, ("value", kind)))), 1.0 if kind == current else 0.0)

    # -- data streams ------------------------------------------------------------------------------

    def publish_data_sync(self, stream_name: str, data: Mapping[Any, Any]) -> None:
        """Publish one sample of a named data stream: the dict as an event, numeric leaves as gauges."""
        if self._runtime.current is None:
            self._runtime.ensure(self.base_topic)
        if type(stream_name) is not str or not stream_name:
            mapping.stream_name(stream_name)  # raises the precise error
        if not isinstance(data, Mapping):
            raise TypeError(f"data for stream {stream_name!r} must be a dict, not {type(data).__name__}")
        # A shallow copy: the caller may reuse its dict for the next sample.
        if _queue.put(("data", _now(), self.base_topic, stream_name[: mapping.MAX_LABEL_LENGTH], dict(data))):
            _published_data.add()
        else:
            TABLES.count_dropped("data", "queue_full")

    async def publish_data(self, stream_name: str, data: Mapping[Any, Any]) -> None:
        self.publish_data_sync(stream_name, data)

    # -- logs --------------------------------------------------------------------------------------

    def publish_log_sync(self, level: str | int, message: object, **attributes: object) -> None:
        """Publish a log record; `level` is debug/info/warning/error/critical (any case) or a logging
        level number."""
        if self._runtime.current is None:
            self._runtime.ensure(self.base_topic)
        number, text = _SEVERITY_CACHE.get(level) or mapping.severity(level)
        if _queue.put(("log", _now(), self.base_topic, number, text, message, attributes)):
            _published_logs.add()
        else:
            TABLES.count_dropped("log", "queue_full")

    async def publish_log(self, level: str | int, message: object, **attributes: object) -> None:
        self.publish_log_sync(level, message, **attributes)

    def emit_log_record(
        self, timestamp_ns: int, level: int, message: str, attributes: dict[str, Any]
    ) -> None:
        """Queue a log record with its own timestamp (the logging bridge's way in)."""
        if self._runtime.current is None:
            self._runtime.ensure(self.base_topic)
        number, text = mapping.severity(level)
        if _queue.put(("log", timestamp_ns, self.base_topic, number, text, message, attributes)):
            _published_logs.add()
        else:
            TABLES.count_dropped("log", "queue_full")

    # -- experiment status ---------------------------------------------------------------------------

    def publish_status(self, experiment: str, status: str, error: str | None = None) -> None:
        """Set liveview.experiment.status (1 for `status`, 0 for the other states); emit liveview.status."""
        if status not in _STATUSES:
            raise ValueError(f"unknown experiment status {status!r}; use one of {', '.join(_STATUSES)}")
        if self._runtime.current is None:
            self._runtime.ensure(self.base_topic)
        name = ("experiment", mapping.label_value(str(experiment)))
        topic = ("topic", self.base_topic)
        for state in _STATUSES:
            TABLES.status.set((name, ("status", state), topic), 1.0 if state == status else 0.0)
        if status == "running":  # the start, as process_start_time_seconds has it: seconds since the epoch
            TABLES.start_time.set((name, topic), time.time())
            TABLES.end_time.values.pop((name, topic), None)  # a run of the same name again
        elif status in _FINISHED:
            TABLES.end_time.set((name, topic), time.time())
        _published_status.add()
        if not _queue.put(("status", _now(), self.base_topic, experiment, status, error)):
            TABLES.count_dropped("status", "queue_full")

    def publish_info_sync(self, experiment: str, info: Mapping[Any, Any]) -> None:
        """Publish an experiment's configuration: gauge liveview.experiment.info {experiment, topic,
        host, pid, key=value...} = 1 (nested dicts flattened to dotted keys, values as text, the first
        64 keys) and event liveview.info with the whole dict."""
        if not isinstance(info, Mapping):
            raise TypeError(f"info for experiment {experiment!r} must be a dict, not {type(info).__name__}")
        if self._runtime.current is None:
            self._runtime.ensure(self.base_topic)
        labels = {"host": _HOST, "pid": str(os.getpid())}
        labels.update(mapping.info_labels(info))
        labels["experiment"] = mapping.label_value(str(experiment))
        labels["topic"] = self.base_topic
        TABLES.info.set(tuple(sorted(labels.items())), 1.0)
        TABLES.published_counter("info").add()  # created on first use: most processes publish none
        if not _queue.put(("info", _now(), self.base_topic, experiment, dict(info))):
            TABLES.count_dropped("info", "queue_full")

    async def publish_info(self, experiment: str, info: Mapping[Any, Any]) -> None:
        self.publish_info_sync(experiment, info)

    def publish_total_sync(
        self,
        experiment: str,
        phase: str,
        steps: SupportsFloat | None = None,
        epochs: SupportsFloat | None = None,
    ) -> None:
        """Declare how far a phase of an experiment goes: gauge liveview.experiment.planned
        {experiment, phase, unit="steps"|"epochs", topic}. Progress is the phase's step (or epoch)
        of publish_metric against it."""
        if type(phase) is not str or not phase:
            raise ValueError("phase must be a non-empty string, e.g. 'train' or 'eval'")
        if steps is None and epochs is None:
            raise ValueError(f"declare steps or epochs (or both) for phase {phase!r}")
        if self._runtime.current is None:
            self._runtime.ensure(self.base_topic)
        base = {"experiment": mapping.label_value(str(experiment)), "phase": mapping.label_value(phase)}
        base["topic"] = self.base_topic
        for unit, total in (("steps", steps), ("epochs", epochs)):
            if total is not None:
                value = mapping.metric_value(f"total {unit}", total)
                if not value > 0:
                    raise ValueError(f"total {unit} for phase {phase!r} must be positive, not {total!r}")
                TABLES.planned.set(tuple(sorted({**base, "unit": unit}.items())), value)

    async def publish_total(
        self,
        experiment: str,
        phase: str,
        steps: SupportsFloat | None = None,
        epochs: SupportsFloat | None = None,
    ) -> None:
        self.publish_total_sync(experiment, phase, steps, epochs)

    # -- lifecycle -----------------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Export everything published so far (this process); False if `timeout` was not enough."""
        return self._runtime.flush(timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Export what is left and stop this process's pipeline (a later publish starts a new one)."""
        return self._runtime.shutdown(timeout)


_PUBLISHERS = (
    "publish_metric_sync",
    "publish_data_sync",
    "publish_log_sync",
    "emit_log_record",
    "publish_status",
    "publish_info_sync",
    "publish_total_sync",
)


def _ignore(*args: object, **kwargs: object) -> None:
    return None


_SEVERITY_CACHE: dict[Any, tuple[int, str]] = {}
for _name in mapping.SEVERITIES:
    for _spelling in (_name, _name.upper(), _name.capitalize()):
        _SEVERITY_CACHE[_spelling] = mapping.SEVERITIES[_name]


__all__ = [
    "ExperimentBroadcaster",
]
