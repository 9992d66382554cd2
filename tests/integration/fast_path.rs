//! The stateless fast path for `execute_query` (src/mcp/fast_path.rs) answers exactly as
//! rmcp's own handler does, and leaves every other request to rmcp.

use crate::common::*;
use serde_json::{Value, json};

fn execute_query(id: u64, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "execute_query", "arguments": arguments}})
}

/// A reply without its timings (`duration_ms` differs from call to call).
fn without_timings(mut reply: Value) -> Value {
    let result = &mut reply["result"];
    if let Some(s) = result["structuredContent"].as_object_mut() {
        s.remove("duration_ms");
    }
    if let Some(text) = result["content"][0]["text"].as_str() {
        let mut inner: Value = serde_json::from_str(text).unwrap();
        if let Some(o) = inner.as_object_mut() {
            o.remove("duration_ms");
        }
        result["content"][0]["text"] = inner;
    }
    reply
}

/// `pgmcp_mcp_fast_path_calls_total` as the server's /metrics shows it.
async fn fast_path_calls(server: &TestServer) -> f64 {
    let text = reqwest::get(server.url("/metrics"))
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

#[tokio::test]
async fn execute_query_replies_exactly_as_rmcp_does() {
    let fast = TestServer::start().await;
    // Session mode never takes the fast path: rmcp's handler answers there.
    let rmcp = TestServer::start_with(|c| c.stateless_http = false).await;
    let f = fast.client(Some(SEATTLE)).await;
    let r = rmcp.client(Some(SEATTLE)).await;
    let before = fast_path_calls(&fast).await;
    let cases = [
        json!({"sql": "SELECT store_id, count(*) FROM retail.orders GROUP BY 1 ORDER BY 1"}),
        json!({"sql": "SELECT $1::int + 1 AS n, $2::text AS t, now()::date = current_date AS d",
               "params": [41, "x"]}),
        json!({"sql": "SELECT g FROM generate_series(1, 10) g", "max_rows": 3}),
        json!({"sql": "DELETE FROM retail.orders"}),
        json!({"sql": "SELECT * FROM retail.no_such_table"}),
        json!({"sql": "SELECT 1", "max_rows": 0}),
    ];
    for (i, args) in cases.iter().enumerate() {
        let id = 100 + i as u64;
        let (fast_status, _, fast_reply) = f.post_raw(execute_query(id, args.clone())).await;
        let (rmcp_status, _, rmcp_reply) = r.post_raw(execute_query(id, args.clone())).await;
        assert_eq!((fast_status, rmcp_status), (200, 200), "{args}");
        let (fast_reply, rmcp_reply) = (fast_reply.unwrap(), rmcp_reply.unwrap());
        assert_eq!(fast_reply["id"], json!(id));
        assert_eq!(
            without_timings(fast_reply),
            without_timings(rmcp_reply),
            "{args}"
        );
    }
    assert_eq!(
        fast_path_calls(&fast).await - before,
        cases.len() as f64,
        "every case took the fast path"
    );
}

#[tokio::test]
async fn other_requests_are_left_to_rmcp() {
    let server = TestServer::start().await;
    let mut c = server.client(Some(SEATTLE)).await;
    let before = fast_path_calls(&server).await;

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
        fast_path_calls(&server).await,
        before,
        "none of these took the fast path"
    );
}
