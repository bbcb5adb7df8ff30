// Publishes one gauge and one log record through the OpenTelemetry Java SDK's OTLP exporters, set up
// by the SDK's autoconfiguration from the standard OTEL_EXPORTER_OTLP_* variables (endpoint,
// protocol, compression, ...), then shuts the SDK down and exits non-zero if an export failed.
//
// Usage: java Publish METRIC VALUE LOG_BODY

import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.logs.Severity;
import io.opentelemetry.sdk.OpenTelemetrySdk;
import io.opentelemetry.sdk.autoconfigure.AutoConfiguredOpenTelemetrySdk;
import io.opentelemetry.sdk.common.CompletableResultCode;
import io.opentelemetry.sdk.logs.data.LogRecordData;
import io.opentelemetry.sdk.logs.export.LogRecordExporter;
import java.util.Collection;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

public final class Publish {
  private static final String SCOPE = "otel-liveview-sdk-check";
  // The batch log processor's flush succeeds whatever its export did: the exporter tells.
  private static final AtomicBoolean logsFailed = new AtomicBoolean();

  public static void main(String[] args) {
    String metric = args[0];
    double value = Double.parseDouble(args[1]);
    String body = args[2];
    OpenTelemetrySdk sdk =
        AutoConfiguredOpenTelemetrySdk.builder()
            // defaults the environment may override: no traces (the view takes none)
            .addPropertiesSupplier(() -> Map.of("otel.traces.exporter", "none"))
            .addLogRecordExporterCustomizer((exporter, config) -> new FailureRecording(exporter))
            .build()
            .getOpenTelemetrySdk();

    sdk.getMeter(SCOPE).gaugeBuilder(metric).build().set(value);
    sdk.getSdkLoggerProvider()
        .get(SCOPE)
        .logRecordBuilder()
        .setBody(body)
        .setSeverity(Severity.INFO)
        .setSeverityText("INFO")
        .setAttribute(AttributeKey.stringKey("sdk"), "java")
        .emit();

    // The metric reader's flush result is its export's; failures show here, not only in the log.
    boolean metrics = flushed(sdk.getSdkMeterProvider().forceFlush());
    boolean logs = flushed(sdk.getSdkLoggerProvider().forceFlush()) && !logsFailed.get();
    sdk.shutdown().join(30, TimeUnit.SECONDS);
    if (!metrics || !logs) {
      System.err.println("java publisher: export failed (metrics " + metrics + ", logs " + logs + ")");
      System.exit(1);
    }
  }

  private static boolean flushed(CompletableResultCode result) {
    return result.join(30, TimeUnit.SECONDS).isSuccess();
  }

  private static final class FailureRecording implements LogRecordExporter {
    private final LogRecordExporter exporter;

    FailureRecording(LogRecordExporter exporter) {
      this.exporter = exporter;
    }

    @Override
    public CompletableResultCode export(Collection<LogRecordData> logs) {
      CompletableResultCode result = exporter.export(logs);
      result.whenComplete(() -> logsFailed.compareAndSet(false, !result.isSuccess()));
      return result;
    }

    @Override
    public CompletableResultCode flush() {
      return exporter.flush();
    }

    @Override
    public CompletableResultCode shutdown() {
      return exporter.shutdown();
    }
  }
}
