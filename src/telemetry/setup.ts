// Starts the OpenTelemetry Node SDK when an OTLP endpoint is configured: the resource
// (service.name, version, instance id), OTLP http/protobuf exporters for traces and
// metrics, a batch span processor, W3C trace-context propagation and the sampler, all as
// the standard OTEL_* variables say (the SDK reads them itself). With no endpoint nothing
// starts, and every span and instrument stays the API's no-op.
//
// One default differs from the SDK's: without OTEL_TRACES_SAMPLER, 10% of root traces are
// kept, not all. A warm run is well under a millisecond of the server's time and makes
// about ten spans; tracing every one costs about a third of the throughput (bench/tracing.ts),
// a tenth of them about 2%. Callers that send a sampled traceparent are always traced.
import { randomUUID } from 'node:crypto'
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics'
import { NodeSDK } from '@opentelemetry/sdk-node'
import {
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace'
import {
  ATTR_SERVICE_INSTANCE_ID,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
} from '@opentelemetry/semantic-conventions'

export interface TelemetryConfig {
  /** Tracing and metrics are exported only when an OTLP endpoint is set. */
  enabled: boolean
  serviceName: string
  serviceVersion: string
  /** How often metrics are exported (OTEL_METRIC_EXPORT_INTERVAL). */
  metricIntervalMs: number
  /**
   * The share of root traces kept when OTEL_TRACES_SAMPLER is not set (null: it is set, and
   * the SDK follows it). A caller's sampled `traceparent` is always followed.
   */
  defaultSampleRatio: number | null
}

export interface Telemetry {
  readonly enabled: boolean
  /** Exports what is buffered, then stops; safe to call twice. */
  shutdown(): Promise<void>
}

const OFF: Telemetry = { enabled: false, shutdown: async () => {} }

export function startTelemetry(config: TelemetryConfig): Telemetry {
  if (!config.enabled) return OFF
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: config.serviceName,
      [ATTR_SERVICE_VERSION]: config.serviceVersion,
      [ATTR_SERVICE_INSTANCE_ID]: randomUUID(),
    }),
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter() })],
    ...(config.defaultSampleRatio === null
      ? {}
      : {
          sampler: new ParentBasedSampler({
            root: new TraceIdRatioBasedSampler(config.defaultSampleRatio),
          }),
        }),
    metricReaders: [
      new PeriodicExportingMetricReader({
        exporter: new OTLPMetricExporter(),
        exportIntervalMillis: config.metricIntervalMs,
      }),
    ],
    // Spans are blockgate's own (src/telemetry): no monkey-patching instrumentations.
    instrumentations: [],
  })
  sdk.start()
  let stopping: Promise<void> | null = null
  return {
    enabled: true,
    shutdown: () => (stopping ??= sdk.shutdown().catch(() => {})),
  }
}
