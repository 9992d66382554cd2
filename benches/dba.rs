//! DBA tool figures: each operator tool over MCP on the demo database, as an operator (the
//! admin token in header mode on loopback), p50/p90/p99 over repeated calls; the target is
//! under 200 ms p50 for each.
//!
//! Run with `scripts/bench.sh dba`: the demo database, migrated with the monitoring role
//! (PG_MCP_MONITOR_PASSWORD from scripts/dev-db.sh). The operator is also Seattle's tenant:
//! index_advice plans in the operator's tenant transaction.

// Shared with benches/schema.rs, which uses all of it.
#[path = "common/inproc.rs"]
#[allow(dead_code)]
mod inproc;

use std::time::{Duration, Instant};

use inproc::{Client, Server, report};
use serde_json::{Value, json};

const TOKEN: &str = "dba-bench-admin-token-0123456789abcdef";
const TARGET_P50_MS: f64 = 200.0;
const SAMPLES: usize = 50;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    pg_mcp::telemetry::install_crypto_provider();
    if std::env::var("PG_MCP_MONITOR_PASSWORD").is_err() {
        anyhow::bail!(
            "set PG_MCP_MONITOR_PASSWORD (scripts/bench.sh dba does, from scripts/dev-db.sh env)"
        );
    }
    let server = Server::start(|c| {
        c.admin_token = Some(TOKEN.to_string().into());
    })
    .await?;
    let mut operator = Client::connect_with(&server.url, Some(TOKEN)).await?;
    let calls: [(&str, Value); 7] = [
        ("db_activity", json!({})),
        ("db_locks", json!({})),
        ("table_health", json!({})),
        ("index_health", json!({})),
        ("top_queries", json!({})),
        (
            "index_advice",
            json!({"sql": "SELECT o.order_id, c.email FROM retail.orders o JOIN retail.customers c USING (customer_id) WHERE o.order_date >= $1::date ORDER BY o.order_date", "params": ["2024-06-01"]}),
        ),
        ("db_overview", json!({})),
    ];
    println!(
        "DBA tools over MCP, {SAMPLES} calls each after 3 warm-up calls (target p50 < {TARGET_P50_MS} ms)"
    );
    for (tool, args) in calls {
        for _ in 0..3 {
            operator.call(tool, args.clone()).await?;
        }
        let mut samples = Vec::with_capacity(SAMPLES);
        let mut summary = String::new();
        for _ in 0..SAMPLES {
            let started = Instant::now();
            let answer = operator.call(tool, args.clone()).await?;
            samples.push(started.elapsed());
            summary = answer["summary"].as_str().unwrap_or_default().to_string();
        }
        report(tool, samples, Some(TARGET_P50_MS));
        println!("    {}", summary.chars().take(160).collect::<String>());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
