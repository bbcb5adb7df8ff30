// Publishes one gauge and one log record through the OpenTelemetry JavaScript SDK's OTLP exporters,
// then shuts the providers down (which flushes them) and exits non-zero if an export failed.
//
// Usage: node publish.js METRIC VALUE LOG_BODY. The exporters read the standard OTEL_EXPORTER_OTLP_*
// variables (endpoint, compression, ...); OTEL_EXPORTER_OTLP_PROTOCOL, which each exporter package
// leaves to the program, picks the package: http/protobuf (the default), http/json or grpc.
'use strict';

const { MeterProvider, PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics');
const { BatchLogRecordProcessor, LoggerProvider } = require('@opentelemetry/sdk-logs');
const { SeverityNumber } = require('@opentelemetry/api-logs');

const EXPORTERS = {
  'http/protobuf': ['@opentelemetry/exporter-metrics-otlp-proto', '@opentelemetry/exporter-logs-otlp-proto'],
  'http/json': ['@opentelemetry/exporter-metrics-otlp-http', '@opentelemetry/exporter-logs-otlp-http'],
  grpc: ['@opentelemetry/exporter-metrics-otlp-grpc', '@opentelemetry/exporter-logs-otlp-grpc'],
};

function exporters(protocol) {
  const modules = EXPORTERS[protocol];
  if (!modules) throw new Error(`unknown protocol ${JSON.stringify(protocol)}`);
  return [new (require(modules[0]).OTLPMetricExporter)(), new (require(modules[1]).OTLPLogExporter)()];
}

// The SDK reports export failures through its diagnostic logger only; a failed export must fail the run.
function failOnExportError(exporter, signal) {
  const exportOnce = exporter.export.bind(exporter);
  exporter.export = (items, done) =>
    exportOnce(items, (result) => {
      if (result.code !== 0) failures.push(`${signal}: ${result.error ? result.error.message : 'failed'}`);
      done(result);
    });
  return exporter;
}

const failures = [];

async function main() {
  if (process.argv.length !== 5) throw new Error('usage: node publish.js METRIC VALUE LOG_BODY');
  const [metric, value, body] = process.argv.slice(2);
  const [metricExporter, logExporter] = exporters(process.env.OTEL_EXPORTER_OTLP_PROTOCOL || 'http/protobuf');
  // Long intervals: the single export of each signal happens at shutdown.
  const reader = new PeriodicExportingMetricReader({
    exporter: failOnExportError(metricExporter, 'metrics'),
    exportIntervalMillis: 60000,
  });
  const meters = new MeterProvider({ readers: [reader] });
  meters.getMeter('otel-liveview-sdk-check').createGauge(metric).record(Number(value));

  const loggers = new LoggerProvider({
    processors: [new BatchLogRecordProcessor({ exporter: failOnExportError(logExporter, 'logs') })],
  });
  loggers.getLogger('otel-liveview-sdk-check').emit({
    body,
    severityNumber: SeverityNumber.INFO,
    severityText: 'INFO',
    attributes: { sdk: 'node' },
  });

  await meters.shutdown();
  await loggers.shutdown();
  if (failures.length) throw new Error(failures.join('; '));
}

main().catch((error) => {
  console.error(`node publisher: ${error.message}`);
  process.exit(1);
});
