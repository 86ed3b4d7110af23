"""Tracing (W3C traceparent carried HTTP -> event -> Kafka header -> consumer) and Prometheus metrics."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Receive, Scope, Send

_propagator = TraceContextTextMapPropagator()
tracer = trace.get_tracer("fangpin")

HTTP_REQUESTS = Counter("fangpin_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
HTTP_SECONDS = Histogram("fangpin_http_request_seconds", "HTTP request duration", ["service", "method", "route"])
EVENTS_APPENDED = Counter("fangpin_events_appended_total", "Events appended to the store", ["service", "event_type"])
EVENTS_PUBLISHED = Counter("fangpin_events_published_total", "Events the relay published", ["service"])
EVENTS_CONSUMED = Counter("fangpin_events_consumed_total", "Consumed events by outcome", ["service", "outcome"])
RELAY_REPUBLISHES = Counter("fangpin_relay_republish_total", "Times the store was published again", ["service"])


def setup_tracing(service: str, extra_processor: SpanProcessor | None = None, otlp_endpoint: str | None = None) -> TracerProvider:
    """Install the process's tracer provider once; later calls only add processors."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": f"fangpin-{service}"}))
        trace.set_tracer_provider(provider)
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    if extra_processor is not None:
        provider.add_span_processor(extra_processor)
    return provider


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def span_from_traceparent(name: str, traceparent: str | None, kind: SpanKind, **attributes) -> Iterator[trace.Span]:
    parent = _propagator.extract({"traceparent": traceparent}) if traceparent else otel_context.Context()
    with tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes) as span:
        yield span


class TracingAndMetricsMiddleware:
    """A server span per request (continuing the caller's traceparent) and request metrics."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        method, path = scope["method"], scope["path"]
        status = {"code": 500}
        started = time.perf_counter()
        with span_from_traceparent(
            f"{method} {path}", headers.get("traceparent"), SpanKind.SERVER,
            **{"http.method": method, "http.target": path, "fangpin.service": self.service},
        ) as span:
            traceparent = current_traceparent()

            async def send_with_trace(message):
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                    if traceparent:
                        message.setdefault("headers", [])
                        message["headers"] = list(message["headers"]) + [(b"traceparent", traceparent.encode())]
                await send(message)

            await self.app(scope, receive, send_with_trace)
            span.set_attribute("http.status_code", status["code"])
        route = scope.get("route")
        route_path = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(self.service, method, route_path, str(status["code"])).inc()
        HTTP_SECONDS.labels(self.service, method, route_path).observe(time.perf_counter() - started)
