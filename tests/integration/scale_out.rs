//! Replicas behind nginx (`infra/nginx/pg-mcp.conf` with an upstream of two servers): one
//! replica is stopped with SIGTERM while clients call through nginx, and no call fails. The
//! replica drains (PG_MCP_SHUTDOWN_DRAIN_SECS): it keeps serving with `Connection: close`, so
//! nginx's keep-alive connections to it end after a reply, never under a request nginx is
//! sending (nginx does not resend a POST); then its listener closes and nginx, refused,
//! sends the calls to the other replica.
//!
//! The race the drain removes is rare (1 call in ~9,000 at c = 8 in `scripts/bench.sh scale`
//! before it), so this test checks the outcome; `shutdown.rs` checks the mechanism.

use std::time::{Duration, Instant};

use crate::common::mcp_client::stateless_query;
use crate::common::nginx::{Nginx, nginx_binary};
use crate::common::process::ServerProcess;
use crate::common::{HEAD_OFFICE, require};
use serde_json::{Value, json};

/// Calls `SELECT 1` through `url` until `until`: (calls that succeeded, failures described).
async fn caller(url: String, until: Instant) -> (u64, Vec<String>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut ok = 0;
    let mut failed = Vec::new();
    while Instant::now() < until {
        match stateless_query(&http, &url, HEAD_OFFICE, "SELECT 1 AS one").await {
            Ok(r)
                if r.reply
                    .as_ref()
                    .is_some_and(|m| m["result"]["isError"] == json!(false)) =>
            {
                ok += 1
            }
            Ok(r) => failed.push(format!(
                "HTTP {}: {}",
                r.status,
                &r.body[..r.body.len().min(300)]
            )),
            Err(e) => failed.push(e),
        }
    }
    (ok, failed)
}

#[tokio::test]
async fn sigterm_to_a_replica_behind_nginx_fails_no_call() {
    let nginx_binary = require::dependency(
        "scale_out::sigterm_to_a_replica_behind_nginx_fails_no_call",
        &require::NGINX,
        nginx_binary(),
    );
    let settings = [
        ("PG_MCP_SHUTDOWN_DRAIN_SECS", "2".to_string()),
        ("PG_MCP_SHUTDOWN_GRACE_SECS", "3".to_string()),
        ("PG_MCP_RATE_LIMIT_PER_MINUTE", "0".to_string()),
        ("PG_MCP_LOG_LEVEL", "warn".to_string()),
    ];
    let mut stopping = ServerProcess::start(&settings).await;
    let staying = ServerProcess::start(&settings).await;
    let nginx = Nginx::start_upstreams(&nginx_binary, &[stopping.port(), staying.port()]).await;
    let url = nginx.url("/mcp");

    let started = Instant::now();
    let until = started + Duration::from_secs(7);
    let callers: Vec<_> = (0..4)
        .map(|_| tokio::spawn(caller(url.clone(), until)))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stopping.sigterm();
    let exited = stopping.wait_exit(Duration::from_secs(10)).await;
    let stopped_after = started.elapsed();

    let mut ok = 0;
    let mut failed = Vec::new();
    for c in callers {
        let (o, f) = c.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    let status = exited.unwrap_or_else(|| {
        panic!(
            "the stopped replica still runs; log:\n{}",
            stopping.log_tail()
        )
    });
    assert!(status.success(), "exit status {status}");
    assert!(
        stopped_after < until - started,
        "the replica should stop while the callers still call (after {stopped_after:?})"
    );
    assert!(
        failed.is_empty(),
        "{} of {} calls failed through nginx while a replica drained, e.g. {:?}\n--- nginx\n{}",
        failed.len(),
        ok + failed.len() as u64,
        &failed[..failed.len().min(3)],
        nginx.logs()
    );
    assert!(ok > 100, "only {ok} calls were made");
    // The survivor served to the end.
    let health: Value = reqwest::get(staying.url("/health/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], json!("ready"), "{health}");
    eprintln!("{ok} calls through nginx, none failed; the replica stopped {stopped_after:?} in");
}
