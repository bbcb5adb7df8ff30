"""The library's machinery, not its API: settings, tables, the queue, records, OTLP encoding and transport.

A publish goes `broadcaster` -> `tables` (metrics) or the queue (events, logs) -> `worker`, which builds
records (`events`), encodes them (`encoding`) and sends them (`otlp`). `pipeline` wires it together
once per process. Nothing here is public: import from `otel_liveview`.
"""
