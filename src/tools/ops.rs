//! `health_check` and `get_metrics`: the operations facts over MCP (seeds 000 and 004).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::registry::DatabaseStatus;
use crate::error::Result;
use crate::history::{HistoryEntry, HistoryFilter, HistoryStats, stats_of};
use crate::state::AppState;
use crate::tools::{Call, to_json};

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct HealthCheckArgs {}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct GetMetricsArgs {
    /// How many of the slowest recent queries to include (default 5, at most 50).
    pub slowest: Option<usize>,
}

/// The answer of `health_check` (seed 000's shape).
#[derive(Debug, Serialize, JsonSchema)]
pub struct HealthOutput {
    pub is_healthy: bool,
    /// `healthy` or `unhealthy`.
    pub status: String,
    pub timestamp: chrono::DateTime<chrono::Utc>,
    pub uptime_seconds: u64,
    pub server_version: String,
    pub checks: HealthChecks,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HealthChecks {
    pub connections: ConnectionsCheck,
    pub memory: MemoryCheck,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ConnectionsCheck {
    pub is_healthy: bool,
    pub total_connections: usize,
    pub healthy_connections: usize,
    pub databases: Vec<DatabaseStatus>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct MemoryCheck {
    pub is_healthy: bool,
    /// Resident set size of the server process (Linux); null elsewhere.
    pub resident_bytes: Option<u64>,
}

/// Pool figures of one database.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PoolFigures {
    pub database: String,
    pub size: u32,
    pub idle: usize,
    pub max: u32,
}

/// The answer of `get_metrics` (seed 004's per-query metrics).
#[derive(Debug, Serialize, JsonSchema)]
pub struct MetricsOutput {
    #[serde(flatten)]
    pub stats: HistoryStats,
    pub uptime_seconds: u64,
    pub history_capacity: usize,
    /// Whose calls every figure covers: always the caller's own tenant.
    pub slowest_queries_scope: String,
    /// `audit_log` (every server sharing the database, across restarts) or `memory` (this
    /// process only: the audit log is off or cannot be read).
    pub source: crate::audit::HistorySource,
    pub pools: Vec<PoolFigures>,
}

/// The seed's health shape: is_healthy, status, timestamp, uptime_seconds, checks.
pub async fn health_check(state: &AppState) -> Result<Value> {
    let mut statuses = Vec::new();
    for db in state.databases.all() {
        statuses.push(db.status().await);
    }
    let healthy = statuses.iter().filter(|s| s.healthy).count();
    let all_healthy = healthy == statuses.len();
    to_json(HealthOutput {
        is_healthy: all_healthy,
        status: if all_healthy { "healthy" } else { "unhealthy" }.to_string(),
        timestamp: chrono::Utc::now(),
        uptime_seconds: state.started_at.elapsed().as_secs(),
        server_version: env!("CARGO_PKG_VERSION").to_string(),
        checks: HealthChecks {
            connections: ConnectionsCheck {
                is_healthy: all_healthy,
                total_connections: statuses.len(),
                healthy_connections: healthy,
                databases: statuses,
            },
            memory: MemoryCheck {
                is_healthy: true,
                resident_bytes: resident_memory_bytes(),
            },
        },
    })
}

/// Totals, success rate, latency figures and the slowest recent queries: the caller's own
/// tenant's only, whoever calls (SQL text is tenant data).
pub async fn get_metrics(call: &Call<'_>, args: GetMetricsArgs) -> Result<Value> {
    let (state, tenant) = (call.state, call.tenant);
    let slowest = args.slowest.unwrap_or(5).min(50);
    // The window: the tenant's last PG_MCP_QUERY_HISTORY_SIZE calls (10,000 at most).
    let filter = HistoryFilter {
        tenant: Some(tenant.id().to_string()),
        limit: Some(state.history.capacity().clamp(1, 10_000)),
        ..Default::default()
    };
    let (entries, source, _) = state.audit.recent(&state.history, &filter).await;
    let oldest_first: Vec<&HistoryEntry> = entries.iter().rev().collect();
    to_json(MetricsOutput {
        stats: stats_of(&oldest_first, slowest),
        source,
        uptime_seconds: state.started_at.elapsed().as_secs(),
        history_capacity: state.history.capacity(),
        slowest_queries_scope: "own tenant".to_string(),
        pools: state
            .databases
            .all()
            .into_iter()
            .map(|db| PoolFigures {
                database: db.name.clone(),
                size: db.pool.size(),
                idle: db.pool.num_idle(),
                max: db.max_connections,
            })
            .collect(),
    })
}

/// Current resident set size from /proc (Linux); `None` elsewhere.
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
