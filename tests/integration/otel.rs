//! OpenTelemetry: a real OTLP/HTTP receiver sees the tool-call span, parented by the HTTP
//! request span, which continues the caller's W3C `traceparent`.
//!
//! One test in this module on purpose: the tracing subscriber is process-wide (nextest runs
//! each test in its own process; under plain `cargo test` other tests' spans are exported too).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_call_span_continues_the_incoming_trace() {
    // A small OTLP/HTTP receiver.
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let sink = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                let req = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                for rs in req.resource_spans {
                    for ss in rs.scope_spans {
                        sink.lock().unwrap().extend(ss.spans);
                    }
                }
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // SAFETY: set before any thread reads the environment for OTel; this test is alone in its process.
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"));
        std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
        std::env::set_var("OTEL_SERVICE_NAME", "pg-mcp-test");
    }
    let guard = pg_mcp::telemetry::init(false, "info");
    assert!(
        guard.is_some(),
        "OTLP export is on when the endpoint is set"
    );

    let server = TestServer::start().await;
    let mut client = server.client(Some(SEATTLE)).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span = "00f067aa0ba902b7";
    client.headers.push((
        "traceparent".into(),
        format!("00-{trace_id}-{parent_span}-01"),
    ));
    client
        .call("execute_query", json!({"sql": "SELECT 1"}))
        .await
        .ok();

    let deadline = Instant::now() + Duration::from_secs(15);
    let (tool, http) = loop {
        let got = spans.lock().unwrap().clone();
        let tool = got
            .iter()
            .find(|s| s.name == "tool_call" && hex(&s.trace_id) == trace_id)
            .cloned();
        let http = got
            .iter()
            .find(|s| {
                s.name == "http_request"
                    && hex(&s.trace_id) == trace_id
                    && hex(&s.parent_span_id) == parent_span
            })
            .cloned();
        if let (Some(t), Some(h)) = (tool, http) {
            break (t, h);
        }
        assert!(
            Instant::now() < deadline,
            "spans not exported; got {:?}",
            got.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        tool.parent_span_id, http.span_id,
        "the tool span is a child of the request span"
    );
    let attr = |name: &str| {
        tool.attributes
            .iter()
            .find(|a| a.key == name)
            .and_then(|a| a.value.as_ref())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default()
    };
    assert!(attr("tool").contains("execute_query"));
    assert!(attr("outcome").contains("OK"));
    assert!(attr("tenant").contains(SEATTLE));
    drop(guard);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
