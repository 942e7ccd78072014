"""Sends known telemetry with the real OpenTelemetry Python SDK, then flushes and exits.

usage: otel_sdk_client.py PROTOCOL ENDPOINT COUNT RUN_ID
  PROTOCOL  grpc | http
  ENDPOINT  grpc: host:port; http: base URL (http://host:port)
  COUNT     how many log records, spans and metric data points (one counter series per i)
  RUN_ID    a tag put on everything, so the receiving side can pick out this run

Each log record has body "sdk-log <RUN_ID> <i>" and attributes run.id, seq; each span is named
"sdk-span-<i>"; each counter series has attribute seq=i and value i+1.
"""
import sys

from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
import logging

protocol, endpoint, count, run_id = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if protocol == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    logs_exp = OTLPLogExporter(endpoint=endpoint, insecure=True)
    spans_exp = OTLPSpanExporter(endpoint=endpoint, insecure=True)
    metrics_exp = OTLPMetricExporter(endpoint=endpoint, insecure=True)
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    logs_exp = OTLPLogExporter(endpoint=endpoint + "/v1/logs")
    spans_exp = OTLPSpanExporter(endpoint=endpoint + "/v1/traces")
    metrics_exp = OTLPMetricExporter(endpoint=endpoint + "/v1/metrics")

resource = Resource.create({"service.name": "sdk-client", "run.id": run_id})

logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(BatchLogRecordProcessor(logs_exp))
set_logger_provider(logger_provider)
log = logging.getLogger("sdk-client")
log.setLevel(logging.INFO)
log.propagate = False
log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))

tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(BatchSpanProcessor(spans_exp))
trace.set_tracer_provider(tracer_provider)
tracer = trace.get_tracer("sdk-client")

reader = PeriodicExportingMetricReader(metrics_exp, export_interval_millis=3_600_000)
meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
metrics.set_meter_provider(meter_provider)
counter = metrics.get_meter("sdk-client").create_counter("sdk.requests")

for i in range(count):
    log.info("sdk-log %s %d", run_id, i, extra={"run.id": run_id, "seq": i})
    with tracer.start_as_current_span(f"sdk-span-{i}") as span:
        span.set_attribute("run.id", run_id)
        span.set_attribute("seq", i)
    counter.add(i + 1, {"run.id": run_id, "seq": i})

ok = logger_provider.force_flush(10_000) and tracer_provider.force_flush(10_000)
logger_provider.shutdown()
tracer_provider.shutdown()
# One final collection and export; a force_flush as well would send the cumulative points twice.
meter_provider.shutdown()
sys.exit(0 if ok else 1)
