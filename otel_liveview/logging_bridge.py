"""A `logging.Handler` that sends standard-library log records down the same path as publish_log."""

from __future__ import annotations

import logging

from otel_liveview.broadcaster import ExperimentBroadcaster

# Records from the exporters themselves must not loop back into the pipeline they report on: the
# OTLP/HTTP (urllib3) and OTLP/gRPC (h2, which logs through hpack) clients, the embedded view's
# receiver (grpc).
_OWN_LOGGERS = frozenset(("opentelemetry", "otel_liveview", "urllib3", "h2", "hpack", "hyperframe", "grpc"))


class LiveViewHandler(logging.Handler):
    """Attach to any logger: ``logging.getLogger().addHandler(LiveViewHandler(broadcaster))``.

    The record keeps its own time; `logger.name`, the code location and any exception become
    attributes. Never raises into the caller: a record that cannot be sent is counted as dropped.
    """

    def __init__(self, broadcaster: ExperimentBroadcaster | None = None, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.broadcaster = broadcaster or ExperimentBroadcaster()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.partition(".")[0] in _OWN_LOGGERS:
            return
        try:
            attributes: dict[str, object] = {
                "logger.name": record.name,
                "code.function.name": record.funcName,
                "code.file.path": record.pathname,
                "code.line.number": record.lineno,
            }
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                attributes["exception.type"] = type(error).__name__
                attributes["exception.message"] = str(error)
                attributes["exception.stacktrace"] = self.formatException(record.exc_info)
            self.broadcaster.emit_log_record(
                int(record.created * 1e9), record.levelno, record.getMessage(), attributes
            )
        except Exception:
            self.handleError(record)

    @staticmethod
    def formatException(exc_info: object) -> str:
        return logging.Formatter().formatException(exc_info)  # type: ignore[arg-type]


__all__ = [
    "LiveViewHandler",
]
