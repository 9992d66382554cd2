//! `health_check` and `get_metrics`: the operations facts over MCP (seeds 000 and 004).

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::Result;
use crate::state::AppState;
use crate::tools::Call;

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct HealthCheckArgs {}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct GetMetricsArgs {
    /// How many of the slowest recent queries to include (default 5, at most 50).
    pub slowest: Option<usize>,
}

/// The seed's health shape: is_healthy, status, timestamp, uptime_seconds, checks.
pub async fn health_check(state: &AppState) -> Result<Value> {
    let mut statuses = Vec::new();
    for db in state.databases.all() {
        statuses.push(db.status().await);
    }
    let healthy = statuses.iter().filter(|s| s.healthy).count();
    let all_healthy = healthy == statuses.len();
    let rss = resident_memory_bytes();
    Ok(json!({
        "is_healthy": all_healthy,
        "status": if all_healthy { "healthy" } else { "unhealthy" },
        "timestamp": chrono::Utc::now(),
        "uptime_seconds": state.started_at.elapsed().as_secs(),
        "server_version": env!("CARGO_PKG_VERSION"),
        "checks": {
            "connections": {
                "is_healthy": all_healthy,
                "total_connections": statuses.len(),
                "healthy_connections": healthy,
                "databases": statuses,
            },
            "memory": {
                "is_healthy": true,
                "resident_bytes": rss,
            },
        },
    }))
}

/// Totals, success rate, latency figures and the slowest recent queries: the caller's own
/// tenant's only, whoever calls (SQL text is tenant data).
pub async fn get_metrics(call: &Call<'_>, args: GetMetricsArgs) -> Result<Value> {
    let (state, tenant) = (call.state, call.tenant);
    let slowest = args.slowest.unwrap_or(5).min(50);
    let mut stats = state.history.stats(Some(tenant.id()), slowest);
    stats["uptime_seconds"] = json!(state.started_at.elapsed().as_secs());
    stats["history_capacity"] = json!(state.history.capacity());
    stats["slowest_queries_scope"] = json!("own tenant");
    let mut pools = Vec::new();
    for db in state.databases.all() {
        pools.push(json!({
            "database": db.name,
            "size": db.pool.size(),
            "idle": db.pool.num_idle(),
            "max": db.max_connections,
        }));
    }
    stats["pools"] = json!(pools);
    Ok(stats)
}

/// Current resident set size from /proc (Linux); `None` elsewhere.
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
