//! Logs, metrics and traces.
//!
//! - Logs: `tracing` to stderr (stdout stays free for the stdio transport), `pretty` or `json`.
//! - Metrics: a Prometheus recorder (`metrics-exporter-prometheus`) rendered by `/metrics`.
//!   Labels never carry tenant ids or SQL.
//! - Traces: OpenTelemetry over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (see
//!   `otel`); the standard `OTEL_*` variables apply.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Makes ring the process-wide TLS crypto provider. HTTP clients (OTLP export, embeddings) are
/// built without a bundled provider to avoid a second crypto library; idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// At a plain `info`, rmcp's own lifecycle lines (a service started and finished for every
/// stateless request) would fill the log; they are kept at `warn` unless asked for by name
/// (`PG_MCP_LOG_LEVEL=info,rmcp=info`).
fn default_directives(level: &str) -> String {
    if level.trim().eq_ignore_ascii_case("info") {
        "info,rmcp=warn".to_string()
    } else {
        level.to_string()
    }
}

/// Installs the subscriber once (`json`: one JSON object per line). Returns the OpenTelemetry
/// provider to flush at shutdown.
pub fn init(json: bool, level: &str) -> Option<crate::otel::OtelGuard> {
    install_crypto_provider();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_directives(level)))
        .unwrap_or_else(|_| EnvFilter::new(default_directives("info")));
    let (otel_layer, guard) = match crate::otel::layer() {
        Some((layer, guard)) => (Some(layer), Some(guard)),
        None => (None, None),
    };
    let registry = tracing_subscriber::registry().with(filter).with(otel_layer);
    let result = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    if result.is_err() {
        // Already installed (tests start several servers in one process).
        return None;
    }
    guard
}

/// Histograms keep their raw samples until upkeep folds them into buckets: without it a server
/// that is never scraped grows by every sample. Starts (once per process) a task that runs
/// upkeep every few seconds; call it from inside the Tokio runtime.
pub fn spawn_metrics_upkeep() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    STARTED.call_once(|| {
        let handle = prometheus();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
    });
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let ms = [
            0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0,
        ]
        .map(|v| v / 1000.0);
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &ms)
            .expect("valid buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be global (embedding applications); then ours only renders.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// One finished tool call.
pub fn record_tool_call(
    tool: &'static str,
    outcome: &'static str,
    total: Duration,
    db_ms: Option<f64>,
    rows: Option<u64>,
) {
    counter!("pgmcp_tool_calls_total", "tool" => tool, "outcome" => outcome).increment(1);
    histogram!("pgmcp_tool_duration_seconds", "tool" => tool).record(total.as_secs_f64());
    if let Some(ms) = db_ms {
        histogram!("pgmcp_db_duration_seconds", "tool" => tool).record(ms / 1000.0);
    }
    if let Some(rows) = rows {
        counter!("pgmcp_rows_returned_total", "tool" => tool).increment(rows);
    }
    if outcome == "RATE_LIMIT_EXCEEDED" {
        counter!("pgmcp_rate_limited_total").increment(1);
    }
}

/// One finished HTTP request (route is the matched route template, never the raw path).
pub fn record_http(route: &'static str, status: u16, elapsed: Duration) {
    counter!("pgmcp_http_requests_total", "route" => route, "status" => status_label(status))
        .increment(1);
    histogram!("pgmcp_http_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
}

/// Common statuses as static labels (no allocation on the hot path).
fn status_label(status: u16) -> metrics::SharedString {
    match status {
        200 => "200".into(),
        202 => "202".into(),
        400 => "400".into(),
        401 => "401".into(),
        403 => "403".into(),
        404 => "404".into(),
        405 => "405".into(),
        429 => "429".into(),
        500 => "500".into(),
        503 => "503".into(),
        other => other.to_string().into(),
    }
}

/// Embedding query cache counters (absolute values from the cache).
pub fn record_embedding_cache(hits: u64, misses: u64) {
    counter!("pgmcp_embedding_cache_hits_total").absolute(hits);
    counter!("pgmcp_embedding_cache_misses_total").absolute(misses);
}
