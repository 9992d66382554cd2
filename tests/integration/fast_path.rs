//! The stateless fast path for `execute_query` (src/mcp/fast_path.rs) answers exactly as
//! rmcp's own handler does, and leaves every other request to rmcp.

use crate::common::mcp_client::{assert_forbidden, seattle_post};
use crate::common::*;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn execute_query(id: u64, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "execute_query", "arguments": arguments}})
}

/// `pgmcp_mcp_fast_path_calls_total` as the server's /metrics shows it.
/// `base` is the server's root URL, e.g. `http://127.0.0.1:8000`.
async fn fast_path_calls(base: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("pgmcp_mcp_fast_path_calls_total"))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(_, v)| v.parse::<f64>().unwrap())
        .sum()
}

/// A server on `bind` (IPv4 or IPv6 loopback), run by the same `server::serve` as the binary.
async fn serve_on(bind: &str, fast_path: bool) -> (std::net::SocketAddr, CancellationToken) {
    let mut config = test_config();
    config.fast_path = fast_path;
    let state = pg_mcp::state::AppState::new(config).unwrap();
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        pg_mcp::server::serve(listener, state, async move { token.cancelled().await })
            .await
            .unwrap()
    });
    (addr, stop)
}

/// One raw POST: status, content type and the body bytes with each `duration_ms` value
/// blanked (it differs from call to call); nothing else is normalised.
async fn post_bytes(addr: std::net::SocketAddr, body: &Value) -> (u16, String, String) {
    let resp = seattle_post(&format!("http://{addr}/mcp"), body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    let text = resp.text().await.unwrap();
    let blanked = blank_numbers(&text, "duration_ms");
    (status, content_type, blank_fence_tags(&blanked))
}

/// Blanks the hash in `untrusted-data-<hash>` fence tags: it hashes the answer, whose
/// duration differs between the two servers.
fn blank_fence_tags(text: &str) -> String {
    let tag = "untrusted-data-";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(tag) {
        out.push_str(&rest[..at + tag.len()]);
        let tail = &rest[at + tag.len()..];
        let hash = tail
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(tail.len());
        out.push('h');
        rest = &tail[hash..];
    }
    out.push_str(rest);
    out
}

/// Replaces the number after every `"<key>":` (or `\"<key>\":` inside the text content) by 0.
fn blank_numbers(text: &str, key: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(key) {
        let (head, tail) = rest.split_at(at + key.len());
        out.push_str(head);
        let colon = tail.find(':').map_or(0, |i| i + 1);
        out.push_str(&tail[..colon]);
        let number = tail[colon..]
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e' || c == '-'))
            .unwrap_or(tail.len() - colon);
        out.push('0');
        rest = &tail[colon + number..];
    }
    out.push_str(rest);
    out
}

/// The contract: for the calls the fast path takes, its reply (status, content type, body
/// bytes) is the reply stateless rmcp gives with the fast path switched off, over IPv4 and
/// IPv6 loopback (the default allowed hosts include the bare `::1`).
#[tokio::test]
async fn execute_query_replies_byte_for_byte_as_stateless_rmcp() {
    let cases = [
        json!({"sql": "SELECT store_id, count(*) FROM retail.orders GROUP BY 1 ORDER BY 1"}),
        json!({"sql": "SELECT $1::int + 1 AS n, $2::text AS t, now()::date = current_date AS d",
               "params": [41, "x"]}),
        json!({"sql": "SELECT g FROM generate_series(1, 10) g", "max_rows": 3}),
        json!({"sql": "SELECT 'quote \" and \\ and é' AS s"}),
        json!({"sql": "DELETE FROM retail.orders"}),
        json!({"sql": "SELECT * FROM retail.no_such_table"}),
        json!({"sql": "SELECT 1", "max_rows": 0}),
    ];
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let (fast, stop_fast) = serve_on(bind, true).await;
        let (plain, stop_plain) = serve_on(bind, false).await;
        let base = format!("http://{fast}");
        let before = fast_path_calls(&base).await;
        for (i, args) in cases.iter().enumerate() {
            let call = execute_query(100 + i as u64, args.clone());
            let from_fast = post_bytes(fast, &call).await;
            let from_rmcp = post_bytes(plain, &call).await;
            assert_eq!(from_fast.0, 200, "{bind} {args}: {}", from_fast.2);
            assert_eq!(from_fast, from_rmcp, "{bind} {args}");
        }
        assert_eq!(
            fast_path_calls(&base).await - before,
            cases.len() as f64,
            "{bind}: every case took the fast path"
        );
        stop_fast.cancel();
        stop_plain.cancel();
    }
}

#[tokio::test]
async fn other_requests_are_left_to_rmcp() {
    let server = TestServer::start().await;
    let mut c = server.client(Some(SEATTLE)).await;
    let before = fast_path_calls(&server.url("")).await;

    // `_meta` on the call.
    let (status, _, reply) = c
        .post_raw(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "execute_query", "arguments": {"sql": "SELECT 1"},
                       "_meta": {"progressToken": "p1"}}}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        reply.unwrap()["result"]["structuredContent"]["rows"],
        json!([[1]])
    );

    // Arguments of the wrong type: rmcp's own "failed to deserialize parameters" result.
    let (_, _, reply) = c.post_raw(execute_query(2, json!({"sql": 5}))).await;
    let result = &reply.unwrap()["result"];
    assert_eq!(result["isError"], json!(true), "{result}");
    assert!(
        result["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("failed to deserialize parameters"),
        "{result}"
    );

    // Another tool.
    assert!(
        !c.call("list_tables", json!({"schema": "retail"}))
            .await
            .is_error
    );

    assert_eq!(
        fast_path_calls(&server.url("")).await,
        before,
        "none of these took the fast path"
    );
}

/// Host is checked once for both MCP paths: a foreign Host gets 403 with a JSON error whether
/// or not the fast path is on, and no call reaches a tool.
#[tokio::test]
async fn a_foreign_host_is_refused_on_both_paths() {
    for fast_path in [true, false] {
        let (addr, stop) = serve_on("127.0.0.1:0", fast_path).await;
        let call = execute_query(1, json!({"sql": "SELECT 1"}));
        let resp = seattle_post(&format!("http://{addr}/mcp"), &call)
            .header("host", "evil.example.com")
            .send()
            .await
            .unwrap();
        assert_forbidden(
            resp,
            "PG_MCP_ALLOWED_HOSTS",
            &format!("fast path {fast_path}"),
        )
        .await;
        stop.cancel();
    }
}
