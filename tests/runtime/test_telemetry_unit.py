"""Tracing costs nothing per message when nothing exports it, and is whole when something does."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pixsim_billing.app import create_app
from pixsim_runtime import telemetry
from pixsim_runtime.broker import make_broker
from pixsim_runtime.instrumentation import PixsimTelemetryMiddleware
from pixsim_runtime.settings import BaseServiceSettings
from pixsim_runtime.telemetry import init_telemetry, instrumented, traced


def test_without_an_exporter_no_span_is_recorded_and_the_broker_skips_its_tracing(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    provider = init_telemetry("quiet")
    assert not traced(provider)
    assert not provider.get_tracer("t").start_span("s").is_recording()
    assert make_broker(BaseServiceSettings(), provider).middlewares == []
    # the HTTP server and httpx are instrumented only if their spans are recorded or metrics exported
    # (the tests export metrics to a reader of their own)
    monkeypatch.setattr(telemetry, "_metrics_exported", False)
    assert not instrumented(provider)
    assert not getattr(create_app(tracer_provider=provider), "_is_instrumented_by_opentelemetry", False)
    monkeypatch.setattr(telemetry, "_metrics_exported", True)
    assert instrumented(provider) and create_app(tracer_provider=provider)._is_instrumented_by_opentelemetry


def test_with_an_exporter_spans_are_recorded_and_messages_traced():
    spans = InMemorySpanExporter()
    provider = init_telemetry("loud", processor=SimpleSpanProcessor(spans))
    assert traced(provider) and traced(TracerProvider())
    provider.get_tracer("t").start_span("s").end()
    assert [s.name for s in spans.get_finished_spans()] == ["s"]
    [middleware] = make_broker(BaseServiceSettings(), provider).middlewares
    assert isinstance(middleware, PixsimTelemetryMiddleware)
    assert instrumented(provider) and create_app(tracer_provider=provider)._is_instrumented_by_opentelemetry
