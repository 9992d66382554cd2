//! `--large-result`: one `execute_query` over a 1,000,000-row query instead of the load
//! test, to show the server's memory stays bounded (it reads the row cap + 1 and stops).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;
use uuid::Uuid;

use crate::client::McpSession;
use crate::procstat::{read_mem, reset_peak};
use crate::report::{fmt_mb, mb, verdict};

/// The `--large-result` query.
const LARGE_SQL: &str = "SELECT g, md5(g::text) FROM generate_series(1, 1000000) g";

/// Runs the query as `tenant` at `url` and prints the outcome and the server's (`pid`) RSS.
pub async fn run(url: &str, tenant: &Uuid, pid: Option<u32>) -> Result<()> {
    let mut session = McpSession::open(url, tenant)
        .await
        .with_context(|| format!("cannot open an MCP session at {url}"))?;
    let before = read_mem(pid);
    let reset = reset_peak(pid);

    // Sample RSS while the call runs (VmHWM gives the exact peak; this shows the shape).
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut max_rss = 0;
            while sampling.load(Ordering::Relaxed) {
                if let Some(m) = read_mem(pid) {
                    max_rss = max_rss.max(m.rss_kb);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            max_rss
        })
    };

    let started = Instant::now();
    let outcome = session.execute_query(json!({ "sql": LARGE_SQL })).await;
    let elapsed = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let sampled_max = sampler.await.unwrap_or(0);
    let after = read_mem(pid);
    session.close().await;

    println!("pg-mcp large-result check");
    println!("  statement     {LARGE_SQL}");
    match outcome {
        Ok(v) => {
            println!("  rows returned {}", v["row_count"]);
            println!("  truncated     {}", v["truncated"]);
            println!("  server time   {} ms (duration_ms)", v["duration_ms"]);
        }
        Err(e) => println!("  tool error    {e:#}"),
    }
    println!(
        "  call time     {:.1} ms (client, HTTP round trip included)",
        elapsed.as_secs_f64() * 1000.0
    );
    println!(
        "  server RSS    before {}, after {}, max sampled {}",
        fmt_mb(before.map(|m| m.rss_kb)),
        fmt_mb(after.map(|m| m.rss_kb)),
        if pid.is_some() {
            format!("{:.1} MB", mb(sampled_max))
        } else {
            "n/a".to_string()
        }
    );
    println!(
        "  server peak   {} (VmHWM{})",
        fmt_mb(after.map(|m| m.hwm_kb)),
        if reset {
            ", reset just before the call"
        } else {
            " since server start"
        }
    );
    let peak = after.map(|m| m.hwm_kb);
    println!(
        "  {:<4} peak server RSS < 100 MB during the 1,000,000-row query",
        verdict(peak.map(|k| mb(k) < 100.0))
    );
    Ok(())
}
