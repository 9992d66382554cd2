//! The stateless fast path for the hottest message, `tools/call` of `execute_query`.
//!
//! In stateless mode rmcp answers each POST by building a service, spawning its serve loop
//! and a handler task, and passing the request and the reply through channels; parsing the
//! JSON-RPC message through its untagged enums alone was ~7 % of the server's CPU. For the one
//! call an assistant makes over and over, this layer answers in the HTTP task instead, through
//! the same tool code (`PgMcpServer::call_execute_query`: tenant, rate limit, span, metrics,
//! history) and rmcp's own result types, so the reply is byte-for-byte the shape rmcp sends.
//!
//! Host and Origin were already checked for both paths by `http::host` and `http::origin`. It
//! takes a request only when every other check rmcp would make is certain to pass; anything
//! else (another method or tool, `_meta`, a protocol version rmcp would negotiate per
//! request, SEP-2243 `Mcp-*` headers, a body it cannot read) goes to rmcp unchanged, which
//! then answers or refuses as it always does. `PG_MCP_FAST_PATH=false` switches it off; a
//! contract test compares its replies byte for byte with stateless rmcp's.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::{ProtocolVersion, RequestId, ServerJsonRpcMessage, ServerResult};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::mcp::PgMcpServer;
use crate::state::AppState;
use crate::tools::query::ExecuteQueryArgs;

/// rmcp's default request-body limit; larger bodies are left to rmcp.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Whether rmcp serves this protocol version statelessly without per-request metadata: a
/// version it knows that is older than the one that made SEP-2243 headers standard.
fn plain_stateless_version(version: &str) -> bool {
    ProtocolVersion::KNOWN_VERSIONS
        .iter()
        .any(|v| v.as_str() == version)
        && version < ProtocolVersion::STANDARD_HEADERS.as_str()
}

/// A `tools/call` request with nothing this path does not handle (unknown fields: rmcp).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolCall {
    jsonrpc: String,
    id: RequestId,
    method: String,
    params: ToolCallParams,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolCallParams {
    name: String,
    #[serde(default)]
    arguments: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Middleware on `/mcp` (inside the tenant middleware, stateless mode only). `shutdown` is the
/// token that ends rmcp's handlers when the grace period is over; it ends these calls too.
pub async fn fast_path(
    State((state, shutdown)): State<(Arc<AppState>, CancellationToken)>,
    request: Request,
    next: Next,
) -> Response {
    if !state.config().stateless_http
        || !state.config().fast_path
        || !headers_qualify(request.headers())
    {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_none_or(|n| n > MAX_BODY_BYTES) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        // The client went away or sent less than it declared.
        return (
            StatusCode::BAD_REQUEST,
            "Bad Request: the request body could not be read",
        )
            .into_response();
    };
    let Some((id, args)) = parse_execute_query(&bytes) else {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    };
    metrics::counter!("pgmcp_mcp_fast_path_calls_total").increment(1);
    let server = PgMcpServer::new(state);
    let outcome = tokio::select! {
        outcome = server.call_execute_query(Some(&parts), args) => outcome,
        // Dropping the call drops its connection; PostgreSQL then cancels the query.
        _ = shutdown.cancelled() => {
            return (StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down").into_response();
        }
    };
    let message = match outcome {
        Ok(result) => {
            let mut result = ServerResult::CallToolResult(result);
            result.strip_result_type_for_legacy_peer();
            ServerJsonRpcMessage::response(result, id)
        }
        Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
    };
    match serde_json::to_vec(&message) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A JSON-RPC `tools/call` of `execute_query` whose arguments deserialize; else None.
fn parse_execute_query(body: &[u8]) -> Option<(RequestId, ExecuteQueryArgs)> {
    let call: ToolCall = serde_json::from_slice(body).ok()?;
    if call.jsonrpc != "2.0" || call.method != "tools/call" || call.params.name != "execute_query" {
        return None;
    }
    let arguments = serde_json::Value::Object(call.params.arguments.unwrap_or_default());
    let args = serde_json::from_value(arguments).ok()?;
    Some((call.id, args))
}

/// True when rmcp's header checks for a stateless POST are certain to pass.
fn headers_qualify(headers: &HeaderMap) -> bool {
    for name in headers.keys() {
        let name = name.as_str();
        if name.starts_with("mcp-") && name != "mcp-protocol-version" {
            return false; // Mcp-Session-Id, SEP-2243 Mcp-Method / Mcp-Name / Mcp-Param-*
        }
    }
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(version) = text("mcp-protocol-version")
        && !plain_stateless_version(version)
    {
        return false;
    }
    let content_type_is_json = text(header::CONTENT_TYPE.as_str()).is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("application/json"))
    });
    content_type_is_json && accepts_json_and_sse(headers)
}

/// Both media types listed, with no quality parameters (those are left to rmcp).
fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for entry in value.split(',') {
            let entry = entry.trim();
            if entry.contains(';') {
                return false;
            }
            json |= entry.eq_ignore_ascii_case("application/json");
            sse |= entry.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && sse
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    const BASE: [(&str, &str); 3] = [
        ("host", "127.0.0.1:8000"),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];

    #[test]
    fn plain_stateless_posts_qualify() {
        assert!(headers_qualify(&headers(&BASE)));
        for version in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] {
            let mut with_version = BASE.to_vec();
            with_version.push(("mcp-protocol-version", version));
            assert!(headers_qualify(&headers(&with_version)), "{version}");
        }
    }

    #[test]
    fn anything_rmcp_must_judge_goes_to_rmcp() {
        for extra in [
            ("mcp-session-id", "abc"),
            ("mcp-method", "tools/call"),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-protocol-version", "1999-01-01"),
        ] {
            let mut h = BASE.to_vec();
            h.push(extra);
            assert!(!headers_qualify(&headers(&h)), "{extra:?}");
        }
        let with = |name: &'static str, value: &'static str| {
            let h: Vec<_> = BASE
                .iter()
                .map(|&(k, v)| if k == name { (k, value) } else { (k, v) })
                .collect();
            headers_qualify(&headers(&h))
        };
        assert!(!with("content-type", "text/plain"));
        assert!(!with("accept", "application/json"), "SSE not accepted");
        assert!(!with("accept", "application/json;q=0, text/event-stream"));
    }

    #[test]
    fn only_plain_execute_query_calls_are_taken() {
        let call = |v: serde_json::Value| {
            parse_execute_query(v.to_string().as_bytes()).map(|(id, a)| (id, a.sql))
        };
        let ok = call(
            serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "execute_query", "arguments": {"sql": "SELECT 1"}}}),
        );
        assert_eq!(ok.map(|(_, sql)| sql).as_deref(), Some("SELECT 1"));
        for other in [
            serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": "list_tables", "arguments": {}}}),
            serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
            serde_json::json!({"jsonrpc": "2.0", "method": "tools/call",
                "params": {"name": "execute_query", "arguments": {"sql": "SELECT 1"}}}),
            serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": "execute_query", "arguments": {"sql": "SELECT 1"},
                           "_meta": {"progressToken": 1}}}),
            serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": "execute_query", "arguments": {"sql": 5}}}),
            serde_json::json!([{"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": "execute_query", "arguments": {"sql": "SELECT 1"}}}]),
        ] {
            assert!(call(other.clone()).is_none(), "{other}");
        }
    }
}
