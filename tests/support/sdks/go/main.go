// Publishes one gauge and one log record through the OpenTelemetry Go SDK's OTLP exporters, then
// shuts the providers down (which flushes them) and exits non-zero if any export failed.
//
// Usage: publisher METRIC VALUE LOG_BODY. The exporters read the standard OTEL_EXPORTER_OTLP_*
// variables (endpoint, compression, timeout); OTEL_EXPORTER_OTLP_PROTOCOL, which the Go exporters
// leave to the program, picks them: http/protobuf (the default) or grpc.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// The log processor reports a failed export through the global error handler only; a failed export
// must fail the run.
var (
	mu       sync.Mutex
	reported []error
)

func main() {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, err)
	}))
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: publisher METRIC VALUE LOG_BODY")
		os.Exit(2)
	}
	value, err := strconv.ParseFloat(os.Args[2], 64)
	if err == nil {
		err = publish(context.Background(), protocol(), os.Args[1], value, os.Args[3])
	}
	mu.Lock()
	defer mu.Unlock()
	if err == nil && len(reported) > 0 {
		err = reported[0]
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "go publisher:", err)
		os.Exit(1)
	}
}

func protocol() string {
	if value := os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); value != "" {
		return value
	}
	return "http/protobuf"
}

func exporters(ctx context.Context, protocol string) (sdkmetric.Exporter, sdklog.Exporter, error) {
	switch protocol {
	case "http/protobuf":
		metrics, err := otlpmetrichttp.New(ctx)
		if err != nil {
			return nil, nil, err
		}
		logs, err := otlploghttp.New(ctx)
		return metrics, logs, err
	case "grpc":
		metrics, err := otlpmetricgrpc.New(ctx)
		if err != nil {
			return nil, nil, err
		}
		logs, err := otlploggrpc.New(ctx)
		return metrics, logs, err
	}
	return nil, nil, fmt.Errorf("unknown protocol %q", protocol)
}

func publish(ctx context.Context, protocol, metricName string, value float64, body string) error {
	metricExporter, logExporter, err := exporters(ctx, protocol)
	if err != nil {
		return err
	}
	// The reader's Shutdown collects and exports once; no periodic export is needed.
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metricExporter)))
	gauge, err := meters.Meter("otel-liveview-sdk-check").Float64Gauge(metricName)
	if err != nil {
		return err
	}
	gauge.Record(ctx, value)

	loggers := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(logExporter)))
	var record log.Record
	record.SetBody(attribute.StringValue(body))
	record.SetSeverity(log.SeverityInfo)
	record.AddAttributes(attribute.String("sdk", "go"))
	loggers.Logger("otel-liveview-sdk-check").Emit(ctx, record)

	metricErr := meters.Shutdown(ctx)
	logErr := loggers.Shutdown(ctx)
	if metricErr != nil {
		return fmt.Errorf("metrics: %w", metricErr)
	}
	if logErr != nil {
		return fmt.Errorf("logs: %w", logErr)
	}
	return nil
}
