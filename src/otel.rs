//! OpenTelemetry trace export over OTLP/HTTP, on only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! the traces-specific variable) is set. The standard `OTEL_*` variables apply (service name,
//! resource attributes, headers, timeout). Spans are batched and exported from a background
//! thread, so a collector that is down never slows or breaks requests. Incoming W3C
//! `traceparent` headers are continued.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::HeaderExtractor;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Flushes and shuts the exporter down when dropped.
pub struct OtelGuard {
    provider: SdkTracerProvider,
}

impl Drop for OtelGuard {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

pub fn enabled() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|k| std::env::var(k).is_ok_and(|v| !v.trim().is_empty()))
}

/// The tracing layer that exports spans, or `None` when no endpoint is configured.
pub fn layer<S>() -> Option<(
    tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
    OtelGuard,
)>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    if !enabled() {
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("pg-mcp: OpenTelemetry export disabled: {e}");
            return None;
        }
    };
    let service_name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "pg-mcp".into());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service_name).build())
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let tracer = provider.tracer("pg-mcp");
    Some((
        tracing_opentelemetry::layer().with_tracer(tracer),
        OtelGuard { provider },
    ))
}

/// Makes `span` a child of the trace named by the request's `traceparent`, if any.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if !enabled() || !headers.contains_key("traceparent") {
        return;
    }
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(parent);
}
