//! What every measured call runs, on both paths: a point lookup by primary key, over order
//! ids the tenant can see (so row-level security returns exactly one row).

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::client::McpSession;

/// The statement every call runs (a point lookup by primary key).
pub const POINT_SQL: &str =
    "SELECT order_id, customer_id, store_id, order_date FROM retail.orders WHERE order_id = $1";
/// How the ids the tenant can see are picked.
const IDS_SQL: &str = "SELECT order_id FROM retail.orders LIMIT 1000";

/// The id call `i` of worker `worker` looks up: workers start at different places, so they
/// do not all hit the same rows at once.
pub fn pick<T>(ids: &[T], worker: usize, i: usize) -> &T {
    &ids[(worker.wrapping_mul(7919) + i) % ids.len()]
}

/// The order ids a tenant can see, as the server returns them (JSON, for the MCP path) and
/// as i64 (for the direct path).
pub struct TenantIds {
    pub json: Vec<Value>,
    pub ints: Vec<i64>,
    /// Whether the server issued an `Mcp-Session-Id` (session mode) or not (stateless).
    pub sessions: bool,
}

/// The order ids `tenant` can see at `url`, read with one `execute_query`.
pub async fn tenant_ids(url: &str, tenant: &Uuid) -> Result<TenantIds> {
    let mut s = McpSession::open(url, tenant)
        .await
        .with_context(|| format!("cannot open an MCP session at {url}"))?;
    let sessions = s.has_session_id();
    let result = s
        .execute_query(json!({ "sql": IDS_SQL }))
        .await
        .context("picking order ids")?;
    s.close().await;
    let json: Vec<Value> = result["rows"]
        .as_array()
        .map(|rows| rows.iter().map(|r| r[0].clone()).collect())
        .unwrap_or_default();
    let ints = json
        .iter()
        .map(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| anyhow!("order_id {v} is not an integer"))
        })
        .collect::<Result<Vec<i64>>>()?;
    if ints.is_empty() {
        bail!(
            "tenant {tenant} sees no rows in retail.orders: seed the database (pg-mcp seed) or pick another --tenant"
        );
    }
    Ok(TenantIds {
        json,
        ints,
        sessions,
    })
}
