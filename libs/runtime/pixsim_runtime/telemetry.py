"""OpenTelemetry set-up: one call per process; exporters chosen by the standard OTEL_* variables."""

from __future__ import annotations

import os

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

_httpx_instrumented = False
_meter_provider: MeterProvider | None = None
_metrics_exported = False


def init_telemetry(
    service_name: str, exporter: SpanExporter | None = None, *, processor: SpanProcessor | None = None
) -> TracerProvider:
    """A TracerProvider for this process, also set as the global one, with httpx traced.

    `exporter` (batched) or `processor` win (tests pass an in-memory one). Otherwise `OTEL_TRACES_EXPORTER` decides:
    `otlp` (endpoint from `OTEL_EXPORTER_OTLP_ENDPOINT`), `console`, or `none` (the default when
    no OTLP endpoint is configured, so `make run` needs no collector).
    """
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    if processor is None and (exporter := exporter or _exporter_from_env()) is not None:
        processor = BatchSpanProcessor(exporter)
    # Nothing exports the spans: record none (spans stay non-recording, nearly free), and `traced()`
    # tells the broker to leave out its per-message tracing middleware.
    provider = TracerProvider(resource=resource, sampler=None if processor is not None else ALWAYS_OFF)
    if processor is not None:
        provider.add_span_processor(processor)
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(provider)
    init_metrics(resource)
    global _httpx_instrumented
    # Instrumentation is process-wide; done once, and only if its spans or metrics go somewhere (it
    # costs a few % of each provider call otherwise).
    if not _httpx_instrumented and instrumented(provider):
        HTTPXClientInstrumentor().instrument(tracer_provider=provider)
        _httpx_instrumented = True
    return provider


def traced(provider: TracerProvider | None) -> bool:
    """False when the provider records no span at all (no exporter was configured)."""
    return provider is not None and provider.sampler is not ALWAYS_OFF


def instrumented(provider: TracerProvider | None) -> bool:
    """Whether library instrumentation (the HTTP server, httpx) is worth its cost: its spans are recorded,
    or its metrics exported."""
    return traced(provider) or _metrics_exported


def init_metrics(resource: Resource | None = None, reader: MetricReader | None = None) -> MeterProvider:
    """The process's MeterProvider (set once, globally): `reader` if given (tests), else OTLP when
    `OTEL_METRICS_EXPORTER=otlp` or an OTLP endpoint is configured, else none."""
    global _meter_provider, _metrics_exported
    if _meter_provider is None:
        readers = [reader] if reader is not None else _metric_readers_from_env()
        _metrics_exported = bool(readers)
        _meter_provider = MeterProvider(resource=resource or Resource.create({}), metric_readers=readers)
        metrics.set_meter_provider(_meter_provider)
    return _meter_provider


def _metric_readers_from_env() -> list[MetricReader]:
    default = "otlp" if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") else "none"
    if os.environ.get("OTEL_METRICS_EXPORTER", default).strip().lower() != "otlp":
        return []
    if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    return [PeriodicExportingMetricReader(OTLPMetricExporter())]


def _exporter_from_env() -> SpanExporter | None:
    default = "otlp" if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") else "none"
    name = os.environ.get("OTEL_TRACES_EXPORTER", default).strip().lower()
    if name == "otlp":
        protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter()
    if name == "console":
        return ConsoleSpanExporter()
    return None
