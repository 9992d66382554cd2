//! Read replicas (issue 15): a streaming standby started from the same local binaries
//! (`pg_basebackup`), named in PG_MCP_DATABASE_READ_URLS. Read-only calls go to it, under the
//! same row-level security; `/health` shows its health and replay lag; when it is killed in
//! the middle of a load, only calls already on it fail, cleanly, and the rest run on the
//! primary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::mcp_client::McpClient;
use crate::common::standby::Standby;
use crate::common::{SEATTLE, TestServer, wait_until};

/// The port of the server that answered, and whether it is in recovery.
async fn where_it_ran(client: &mut McpClient) -> (i64, bool) {
    let row = client
        .query("SELECT inet_server_port(), pg_is_in_recovery()")
        .await
        .ok();
    let row = &row["rows"][0];
    (row[0].as_i64().unwrap(), row[1].as_bool().unwrap())
}

async fn replica_status(server: &TestServer) -> Value {
    let health: Value = server.get("/health").await.json().await.unwrap();
    health["databases"][0]["replicas"][0].clone()
}

#[tokio::test]
async fn reads_go_to_a_standby_and_survive_losing_it() {
    let mut standby = Standby::start("replicas::reads_go_to_a_standby_and_survive_losing_it").await;
    let replica_url = standby.app_url();
    let server = TestServer::start_with(|c| {
        c.database_read_urls = vec![replica_url.clone().into()];
        c.replica_check_secs = 1;
        c.tenant_max_concurrent_calls = 8;
        c.rate_limit_per_minute = 0;
        c.pool_size = 8;
    })
    .await;
    let status = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || {
            let status = replica_status(&server).await;
            (status["healthy"] == true).then_some(status)
        },
    )
    .await
    .expect("the standby becomes healthy");
    assert_eq!(status["name"], format!("127.0.0.1:{}", standby.port()));
    assert!(status["lag_seconds"].as_f64().unwrap() >= 0.0, "{status}");

    // Reads run on the standby, under the tenant's row-level security.
    let mut seattle = McpClient::connect(&server.url("/mcp"), Some(SEATTLE)).await;
    for _ in 0..3 {
        assert_eq!(
            where_it_ran(&mut seattle).await,
            (i64::from(standby.port()), true)
        );
    }
    let stores = seattle
        .query("SELECT array_agg(DISTINCT store_id) FROM retail.orders")
        .await
        .scalar();
    assert_eq!(stores, json!([1]), "only Seattle's rows on the standby too");

    // Eight clients call back to back; the standby is killed in the middle.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (url, stop, ok, failed, failures) = (
                server.url("/mcp"),
                stop.clone(),
                ok.clone(),
                failed.clone(),
                failures.clone(),
            );
            tokio::spawn(async move {
                let mut client = McpClient::connect(&url, Some(SEATTLE)).await;
                while !stop.load(Ordering::Relaxed) {
                    let out = client.query("SELECT count(*) FROM retail.orders").await;
                    if out.is_error {
                        failed.fetch_add(1, Ordering::Relaxed);
                        failures.lock().unwrap().push(out.text.clone());
                    } else {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before_kill = ok.load(Ordering::Relaxed);
    standby.kill();
    let killed_at = ok.load(Ordering::Relaxed);
    // Every client gets calls through again (on the primary), soon.
    let recovered = wait_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        async || (ok.load(Ordering::Relaxed) >= killed_at + 40).then_some(()),
    )
    .await;
    let ok_after_kill = ok.load(Ordering::Relaxed) - killed_at;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let failed = failed.load(Ordering::Relaxed);
    let failures = failures.lock().unwrap().clone();
    println!(
        "standby killed under load: {before_kill} calls before, {ok_after_kill} after, {failed} failed"
    );
    assert!(
        before_kill > 0 && recovered.is_some(),
        "calls ran before ({before_kill}) and after ({ok_after_kill}) the kill"
    );
    assert!(
        failed <= 8,
        "only calls in flight on the standby may fail, at most one per client: {failed} failed: {failures:?}"
    );
    for text in &failures {
        let code = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| v["error_code"].as_str().map(str::to_string));
        assert!(
            matches!(code.as_deref(), Some("CONNECTION_ERROR" | "QUERY_FAILED")),
            "a clean, coded error: {text}"
        );
    }

    // Reads now run on the primary, and /health says why.
    let (port, in_recovery) = where_it_ran(&mut seattle).await;
    assert!(
        !in_recovery && port != i64::from(standby.port()),
        "on the primary"
    );
    let status = replica_status(&server).await;
    assert_eq!(status["healthy"], false, "{status}");
    assert!(status["last_error"].is_string(), "{status}");
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("pgmcp_replica_lag_seconds"),
        "the lag gauge is exported"
    );
}
